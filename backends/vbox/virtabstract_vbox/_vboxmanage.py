"""The VBoxManage transport: find the executable and run it safely.

* Arguments are always a list handed to :func:`subprocess.run` (never a shell).
* Every call has a timeout: a hang becomes :class:`~virtabstract.errors.OperationTimeout`.
* Failures are mapped by :func:`virtabstract_vbox._errors.map_vboxmanage_failure`.
* Guest passwords go through ``--passwordfile`` (a 0600 temp file, deleted after
  the call): they never appear on a command line (visible in ``ps``) or in a log.

Test seam: :class:`VBoxManage` takes an optional *runner*, a callable
``runner(argv, timeout) -> (returncode, stdout, stderr)`` that replaces
:func:`subprocess.run` (argv includes the executable). It must behave like the
process: the same exit status and text streams, :class:`subprocess.TimeoutExpired`
when the call would not finish in *timeout* seconds, :class:`OSError` when it
cannot be started. The backend accepts it as the Python-only connect option
``vboxmanage_runner=callable`` (the test suite runs its fake VBoxManage in-process
that way); it is not a URL option.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from virtabstract.errors import BackendError, BackendUnavailable, OperationTimeout

from ._errors import map_vboxmanage_failure

__all__ = ["DEFAULT_TIMEOUT", "Runner", "VBoxManage", "find_vboxmanage", "password_file"]

log = logging.getLogger("virtabstract.vbox")

DEFAULT_TIMEOUT = 120.0
"""Seconds a VBoxManage call may take before it is killed."""

Runner = Callable[[Sequence[str], float], tuple[int, str, str]]
"""``runner(argv, timeout) -> (returncode, stdout, stderr)``: how a command line is executed (see the module doc)."""


def _candidates(platform: str, environ: Mapping[str, str]) -> list[Path]:
    """Where VBoxManage lives on *platform* (``sys.platform`` value), most specific first."""
    found: list[Path] = []
    if platform.startswith("win"):
        for var in ("VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH"):
            base = environ.get(var)
            if base:
                found.extend(Path(part) / "VBoxManage.exe" for part in base.split(os.pathsep) if part)
        for var in ("ProgramFiles", "ProgramW6432", "ProgramFiles(x86)"):
            base = environ.get(var)
            if base:
                found.append(Path(base) / "Oracle" / "VirtualBox" / "VBoxManage.exe")
        found.append(Path("C:/Program Files/Oracle/VirtualBox/VBoxManage.exe"))
    elif platform == "darwin":
        found.append(Path("/Applications/VirtualBox.app/Contents/MacOS/VBoxManage"))
        found.append(Path("/usr/local/bin/VBoxManage"))
    else:
        found.extend(
            [Path("/usr/bin/VBoxManage"), Path("/usr/local/bin/VBoxManage"), Path("/opt/VirtualBox/VBoxManage")]
        )
    return found


def find_vboxmanage(
    override: str | None = None,
    *,
    platform: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> str:
    r"""Return the path of VBoxManage.

    Order: *override* (the ``vboxmanage=`` option); then ``PATH`` (``VBoxManage`` or
    ``vboxmanage``); then the install locations of the platform: ``VBOX_MSI_INSTALL_PATH``
    and ``Program Files\\Oracle\\VirtualBox`` on Windows, ``/Applications/VirtualBox.app/
    Contents/MacOS`` on macOS, ``/usr/bin`` and ``/opt/VirtualBox`` on Linux.

    :raises BackendUnavailable: nothing found.
    """
    platform = platform or sys.platform
    env = os.environ if environ is None else environ
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        which = shutil.which(override)
        if which:
            return which
        raise BackendUnavailable(f"vboxmanage={override!r} is not an executable file")
    search_path = env.get("PATH")
    for name in ("VBoxManage", "vboxmanage"):
        which = shutil.which(name, path=search_path)
        if which:
            return which
    for candidate in _candidates(platform, env):
        if candidate.is_file():
            return str(candidate)
    raise BackendUnavailable(
        "VBoxManage was not found: install VirtualBox (https://www.virtualbox.org/wiki/Downloads), "
        "put VBoxManage on PATH, or pass vboxmanage=/path/to/VBoxManage"
    )


@contextmanager
def password_file(secret: str) -> Iterator[str]:
    """Yield the path of a temp file (mode 0600) holding *secret*; delete it afterwards."""
    fd, path = tempfile.mkstemp(prefix="virtabstract-vbox-", suffix=".pw")
    try:
        os.chmod(path, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secret)
        yield path
    finally:
        try:
            os.unlink(path)
        except OSError:  # pragma: no cover - already gone
            log.debug("password file %s already removed", path)


class VBoxManage:
    """Runs VBoxManage commands: ``vbm.run(["showvminfo", uuid, "--machinereadable"])``."""

    def __init__(
        self,
        executable: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        env: Mapping[str, str] | None = None,
        runner: Runner | None = None,
    ) -> None:
        self.executable = executable
        self.timeout = timeout
        self.env = dict(env) if env is not None else None
        self.runner: Runner = runner if runner is not None else self._subprocess
        """Executes one command line (default: a child process; see the module doc for the seam)."""
        self.calls = 0
        """How many commands ran (for tests and diagnostics)."""

    def run(self, args: Sequence[str], *, timeout: float | None = None, check: bool = True) -> tuple[int, str, str]:
        """Run ``VBoxManage *args``; return ``(returncode, stdout, stderr)``.

        :param timeout: seconds (default :attr:`timeout`).
        :param check: raise the mapped error when the exit status is not 0.
        :raises OperationTimeout: the process did not finish in time (it is killed).
        :raises BackendError: it could not be started, or failed with an unmapped error.
        """
        argv = [self.executable, *args]
        limit = self.timeout if timeout is None else timeout
        self.calls += 1
        log.debug("VBoxManage %s", " ".join(args))
        try:
            returncode, stdout, stderr = self.runner(argv, limit)
        except subprocess.TimeoutExpired as exc:
            raise OperationTimeout(
                f"VBoxManage {' '.join(args[:2])} did not finish within {limit:g}s", timeout=limit
            ) from exc
        except OSError as exc:
            raise BackendError(f"cannot run {self.executable}: {exc}", orig=exc) from exc
        if check and returncode != 0:
            raise map_vboxmanage_failure(list(args), returncode, stderr)
        return returncode, stdout, stderr

    def _subprocess(self, argv: Sequence[str], timeout: float) -> tuple[int, str, str]:
        """The default runner: a child process, no shell, no stdin, output decoded as UTF-8."""
        proc = subprocess.run(
            list(argv), capture_output=True, timeout=timeout, env=self.env, stdin=subprocess.DEVNULL, check=False
        )
        return proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")

    def out(self, *args: str, timeout: float | None = None) -> str:
        """Run and return stdout; raise the mapped error on failure."""
        return self.run(args, timeout=timeout)[1]
