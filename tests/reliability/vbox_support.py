"""A fake VirtualBox install for the reliability suite: the project's fake VBoxManage behind a recorder.

Two ways to run it, both recording every argv (a JSON list per line in ``argv.log``) so tests can assert
that each argument reached VBoxManage as exactly one argv item:

* ``fake.exe``: a real child process per call (the backend's production subprocess path: timeouts,
  killing a hung process, exec'd argv);
* ``fake.runner()``: the same fake in-process through the transport's ``vboxmanage_runner`` seam (the
  argv list is the one the subprocess path would exec), for tests that need many calls.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from functools import cache
from pathlib import Path
from typing import Any

from .support import REPO

FAKE = REPO / "tests" / "backends" / "vbox" / "fake_vboxmanage.py"
GUEST_USER = "vagrant"

_RECORDER = """\
import fcntl, json, os, sys
with open(os.environ["VBOX_ARGV_LOG"], "a", encoding="utf-8") as log:
    fcntl.flock(log, fcntl.LOCK_EX)
    log.write(json.dumps(sys.argv[1:]) + "\\n")
fake = os.environ["VBOX_FAKE_SCRIPT"]
sys.argv = [fake, *sys.argv[1:]]
sys.path.insert(0, os.path.dirname(fake))
import fake_vboxmanage  # imported, not run as a script: its bytecode is cached between calls
sys.exit(fake_vboxmanage.main())
"""


def fake_available() -> tuple[bool, str]:
    try:
        import virtabstract_vbox  # noqa: F401
    except ImportError as exc:
        return False, f"the vbox backend is not installed ({exc})"
    if not FAKE.is_file():
        return False, f"{FAKE} is missing"
    return True, ""


class RecordedVBox:
    """A fake VBoxManage (one version profile) whose every argv is recorded."""

    def __init__(self, root: Path, profile: str = "7.0", guest_password: str = "guest-pw") -> None:
        self.root = root
        self.state_path = root / "state.json"
        self.argv_log = root / "argv.log"
        folder = root / "VirtualBox VMs"
        folder.mkdir(parents=True)
        self.write({"profile": profile, "machine_folder": str(folder),
                    "guest_username": GUEST_USER, "guest_password": guest_password, "faults": {}})  # fmt: skip
        recorder = root / "recorder.py"
        recorder.write_text(_RECORDER)
        self.exe = root / "VBoxManage"
        self.exe.write_text(
            "#!/bin/sh\n"
            f"VBOX_FAKE_STATE='{self.state_path}' VBOX_ARGV_LOG='{self.argv_log}' VBOX_FAKE_SCRIPT='{FAKE}' "
            f"exec '{sys.executable}' '{recorder}' \"$@\"\n"
        )
        self.exe.chmod(self.exe.stat().st_mode | stat.S_IXUSR)
        self.argv_log.write_text("")

    def read(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())  # type: ignore[no-any-return]

    def write(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def update(self, func: Any) -> None:
        state = self.read()
        func(state)
        self.write(state)

    def runner(self) -> Any:
        """An in-process ``vboxmanage_runner`` that records argv like the executable does."""
        inner = _fake_module().InProcessRunner(self.state_path)
        log = self.argv_log

        def run(argv: Any, timeout: float) -> tuple[int, str, str]:
            with open(log, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(list(argv)[1:]) + "\n")
            return inner(argv, timeout)  # type: ignore[no-any-return]

        return run

    def connect(self, *, inprocess: bool = True, **options: Any) -> Any:
        import virtabstract

        options.setdefault("guest_username", GUEST_USER)
        options.setdefault("guest_password", "guest-pw")
        if inprocess and has_inprocess_runner():
            options["vboxmanage_runner"] = self.runner()
        else:
            options["vboxmanage"] = str(self.exe)
        return virtabstract.connect("vbox:///session?transport=vboxmanage", **options)

    def argvs(self) -> list[list[str]]:
        return [json.loads(line) for line in self.argv_log.read_text().splitlines() if line]


@cache
def _fake_module() -> Any:
    spec = importlib.util.spec_from_file_location("reliability_fake_vboxmanage", FAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def has_inprocess_runner() -> bool:
    """True when the fake offers ``InProcessRunner`` and the backend the ``vboxmanage_runner`` option."""
    try:
        from virtabstract_vbox import VBoxBackend  # type: ignore[attr-defined]
    except ImportError:
        try:
            from virtabstract_vbox._backend import VBoxBackend
        except ImportError:
            return False
    return hasattr(_fake_module(), "InProcessRunner") and "vboxmanage_runner" in VBoxBackend.accepted_options
