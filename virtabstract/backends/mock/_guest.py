r"""The mock's simulated guest OS: a small file system and programmable commands.

Every mock VM has a file system (persisted with the VM, so file-backed stores
keep it across processes) and runs commands through a :class:`GuestPrograms`
registry. Built-in commands behave like their real counterparts::

    echo, cat, uname, hostname, true, false, sleep, ls, mkdir, rm, touch, test, env,
    printenv, whoami, id, pwd, and sh/bash -c "…" (; && || | > >> < and exit N)
    Windows guests: cmd /c "…", powershell -Command "…", hostname, whoami, ver
    (echo, type, dir, mkdir/md, del, exit inside cmd/powershell lines)

Unknown commands exit 127 with ``"<name>: command not found"`` on stderr.
``sleep N`` sleeps on the backend's clock and raises
:class:`~virtabstract.errors.OperationTimeout` when N exceeds the exec timeout.

Register your own programs per connection::

    def myapp(cmd: GuestCommand) -> ProgramResult:
        cmd.files.write("/tmp/myapp.log", b"ran")
        return 0, "hello from myapp\\n", ""

    hv.backend.guest_programs.register("myapp", myapp)
    vm.guest.exec(["myapp", "--flag"])   # ExecResult(exit_code=0, stdout="hello from myapp\\n", …)

A program receives a :class:`GuestCommand` and returns an
:class:`~virtabstract.ExecResult`, an ``(exit_code, stdout, stderr)`` tuple, an
``int`` exit code, a ``str`` for stdout (exit 0), or ``None`` (exit 0, no output).
"""

from __future__ import annotations

import base64
import ntpath
import posixpath
import re
import shlex
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..._model import ExecResult, OSFamily
from ..._wait import Clock
from ...errors import GuestError, GuestFileNotFound, OperationTimeout, UsageError

__all__ = [
    "GuestCommand",
    "GuestFS",
    "GuestPrograms",
    "MockGuestProgram",
    "ProgramResult",
    "builtin_programs",
    "default_filesystem",
]

ProgramResult = ExecResult | tuple[int, str, str] | int | str | None
"""What a guest program may return (see the module docstring)."""

MockGuestProgram = Callable[["GuestCommand"], ProgramResult]
"""A guest program: called with a :class:`GuestCommand`, returns a :data:`ProgramResult`."""

_WIN_ABS = re.compile(r"^[A-Za-z]:\\")


class GuestFS:
    r"""The file system of one guest (a working copy; changes are journaled for the store).

    Paths are absolute: ``/etc/hostname`` on Linux/BSD guests, ``C:\\Temp\\x.txt``
    (or ``C:/Temp/x.txt``) on Windows guests, where paths are case-insensitive.
    """

    def __init__(self, files: Mapping[str, str], dirs: Iterable[str], *, windows: bool) -> None:
        self.windows = windows
        self._files: dict[str, str] = dict(files)
        self._dirs: set[str] = set(dirs)
        self.journal: list[tuple[str, str, str]] = []
        """Changes as ``(op, key, base64)`` with op ``write``/``append``/``delete``/``mkdir``/``rmdir``."""

    # -- paths -------------------------------------------------------------------------

    def key(self, path: str) -> str:
        """The normalised form of *path*; raise :class:`~virtabstract.errors.GuestError` if it is not absolute."""
        if self.windows:
            text = path.replace("/", "\\")
            if re.match(r"^[A-Za-z]:$", text):
                text += "\\"
            if not _WIN_ABS.match(text):
                raise GuestError(f"{path!r} is not an absolute Windows path such as 'C:\\\\Temp\\\\file.txt'")
            return ntpath.normpath(text).lower()
        if not path.startswith("/"):
            raise GuestError(f"{path!r} is not an absolute path")
        key = posixpath.normpath(path)
        return "/" + key.lstrip("/")

    def parent(self, key: str) -> str:
        """The directory containing *key* (the root is its own parent)."""
        return ntpath.dirname(key) if self.windows else posixpath.dirname(key)

    # -- queries -----------------------------------------------------------------------

    def is_file(self, path: str) -> bool:
        """True when *path* is a file."""
        return self.key(path) in self._files

    def is_dir(self, path: str) -> bool:
        """True when *path* is a directory."""
        return self.key(path) in self._dirs

    def exists(self, path: str) -> bool:
        """True when *path* is a file or a directory."""
        key = self.key(path)
        return key in self._files or key in self._dirs

    def read(self, path: str) -> bytes:
        """The content of a file.

        :raises GuestFileNotFound: nothing is there.
        :raises GuestError: it is a directory.
        """
        key = self.key(path)
        if key in self._dirs:
            raise GuestError(f"{path!r} is a directory")
        if key not in self._files:
            raise GuestFileNotFound(f"no such file in the guest: {path!r}")
        return base64.b64decode(self._files[key])

    def listdir(self, path: str) -> list[str]:
        """Names in a directory, sorted."""
        key = self.key(path)
        if key not in self._dirs:
            if key in self._files:
                raise GuestError(f"{path!r} is not a directory")
            raise GuestFileNotFound(f"no such directory in the guest: {path!r}")
        names = {k for k in (*self._files, *self._dirs) if k != key and self.parent(k) == key}
        split = ntpath.basename if self.windows else posixpath.basename
        return sorted(split(k) for k in names)

    # -- changes -----------------------------------------------------------------------

    def write(self, path: str, data: bytes, *, append: bool = False) -> None:
        """Create or replace (or append to) a file; its directory must exist.

        :raises GuestError: the parent directory does not exist, or *path* is a directory.
        """
        key = self.key(path)
        if key in self._dirs:
            raise GuestError(f"cannot write {path!r}: it is a directory")
        parent = self.parent(key)
        if parent not in self._dirs:
            raise GuestError(f"cannot write {path!r}: directory {parent!r} does not exist")
        if append:
            # Journal only the appended bytes (O_APPEND|O_CREAT): replayed onto the stored file, concurrent
            # appenders (each working on its own copy) all keep their lines, as in a real guest.
            current = base64.b64decode(self._files[key]) if key in self._files else b""
            self._files[key] = base64.b64encode(current + data).decode()
            self.journal.append(("append", key, base64.b64encode(data).decode()))
            return
        encoded = base64.b64encode(data).decode()
        self._files[key] = encoded
        self.journal.append(("write", key, encoded))

    def mkdir(self, path: str, *, parents: bool = False) -> None:
        """Create a directory (and its parents with *parents*)."""
        key = self.key(path)
        if key in self._dirs:
            if parents:
                return
            raise GuestError(f"cannot create directory {path!r}: it exists")
        if key in self._files:
            raise GuestError(f"cannot create directory {path!r}: a file is there")
        parent = self.parent(key)
        if parent not in self._dirs:
            if not parents:
                raise GuestError(f"cannot create directory {path!r}: {parent!r} does not exist")
            self.mkdir(parent, parents=True)
        self._dirs.add(key)
        self.journal.append(("mkdir", key, ""))

    def remove(self, path: str, *, recursive: bool = False) -> None:
        """Delete a file, or a directory (non-empty ones need *recursive*)."""
        key = self.key(path)
        if key in self._files:
            del self._files[key]
            self.journal.append(("delete", key, ""))
            return
        if key not in self._dirs:
            raise GuestFileNotFound(f"no such file or directory in the guest: {path!r}")
        if self.parent(key) == key:
            raise GuestError("refusing to remove the root directory")
        sep = "\\" if self.windows else "/"
        inside = [k for k in (*self._files, *self._dirs) if k.startswith(key.rstrip(sep) + sep)]
        if inside and not recursive:
            raise GuestError(f"cannot remove {path!r}: directory not empty")
        for k in sorted(inside, reverse=True):
            if k in self._files:
                del self._files[k]
                self.journal.append(("delete", k, ""))
            else:
                self._dirs.discard(k)
                self.journal.append(("rmdir", k, ""))
        self._dirs.discard(key)
        self.journal.append(("rmdir", key, ""))


def apply_journal(record: dict[str, Any], journal: Sequence[tuple[str, str, str]]) -> None:
    """Replay :attr:`GuestFS.journal` onto a stored VM record's ``files``/``dirs``."""
    files: dict[str, str] = record["files"]
    dirs = set(record["dirs"])
    for op, key, data in journal:
        if op == "write":
            files[key] = data
        elif op == "append":
            current = base64.b64decode(files[key]) if key in files else b""
            files[key] = base64.b64encode(current + base64.b64decode(data)).decode()
        elif op == "delete":
            files.pop(key, None)
        elif op == "mkdir":
            dirs.add(key)
        elif op == "rmdir":
            dirs.discard(key)
    record["dirs"] = sorted(dirs)


def default_filesystem(
    family: OSFamily, hostname: str, os_name: str, os_id: str, version: str
) -> tuple[dict[str, str], list[str]]:
    """The files and directories of a freshly installed guest."""

    def enc(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    if family is OSFamily.WINDOWS:
        dirs = ["c:\\", "c:\\windows", "c:\\windows\\system32", "c:\\users", "c:\\users\\administrator", "c:\\temp"]
        files = {"c:\\windows\\system32\\hostname.txt": enc(hostname + "\r\n")}
        return files, dirs
    dirs = ["/", "/etc", "/home", "/root", "/tmp", "/var", "/var/log"]  # noqa: S108 - a guest path
    release = f'NAME="{os_name}"\nID={os_id.split("-")[0]}\nVERSION_ID="{version}"\nPRETTY_NAME="{os_name}"\n'
    files = {"/etc/hostname": enc(hostname + "\n"), "/etc/os-release": enc(release)}
    return files, dirs


@dataclass
class GuestCommand:
    """What a guest program sees: its arguments, input, environment, the guest's files and clock."""

    argv: list[str]
    stdin: bytes
    env: dict[str, str]
    files: GuestFS
    """The guest's file system (changes persist when the command returns)."""
    vm_id: str
    vm_name: str
    hostname: str
    os_family: OSFamily
    kernel: str
    clock: Clock
    timeout: float
    programs: GuestPrograms
    started: float = 0.0
    _budget_used: list[float] = field(default_factory=lambda: [0.0])

    @property
    def args(self) -> list[str]:
        """``argv[1:]``."""
        return self.argv[1:]

    @property
    def stdin_text(self) -> str:
        """Standard input decoded as UTF-8."""
        return self.stdin.decode("utf-8", "replace")

    def sleep(self, seconds: float) -> None:
        """Let *seconds* pass on the backend's clock; raise OperationTimeout past the exec timeout."""
        remaining = self.timeout - self._budget_used[0]
        if seconds > remaining:
            self.clock.sleep(max(remaining, 0.0))
            self._budget_used[0] = self.timeout
            raise OperationTimeout(
                f"guest command {self.argv[0]!r} did not finish within {self.timeout:g}s", timeout=self.timeout
            )
        self.clock.sleep(seconds)
        self._budget_used[0] += seconds

    def run(self, argv: Sequence[str], stdin: bytes = b"") -> ExecResult:
        """Run another guest program (e.g. from a shell) with the same files, clock and time budget."""
        return run_program(self.child(list(argv), stdin))

    def child(self, argv: list[str], stdin: bytes) -> GuestCommand:
        """A command sharing this one's guest, environment and time budget."""
        return GuestCommand(
            argv=argv,
            stdin=stdin,
            env=self.env,
            files=self.files,
            vm_id=self.vm_id,
            vm_name=self.vm_name,
            hostname=self.hostname,
            os_family=self.os_family,
            kernel=self.kernel,
            clock=self.clock,
            timeout=self.timeout,
            programs=self.programs,
            started=self.started,
            _budget_used=self._budget_used,
        )


@dataclass(frozen=True)
class _Entry:
    handler: MockGuestProgram
    families: frozenset[OSFamily] | None


class GuestPrograms:
    """A registry of guest programs, looked up by ``argv[0]`` (full path, base name, or without ``.exe``).

    Each connection has its own registry whose parent is the built-in one, so
    registering a program affects only that connection.
    """

    def __init__(self, parent: GuestPrograms | None = None) -> None:
        self._parent = parent
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def register(
        self, name: str, handler: MockGuestProgram, *, families: Iterable[OSFamily | str] | None = None
    ) -> None:
        """Make *name* run *handler* (replacing any program of that name).

        :param families: only in guests of these OS families (default: every guest).
        """
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise UsageError(f"a guest program name is a non-empty base name, got {name!r}")
        if not callable(handler):
            raise UsageError(f"handler for {name!r} must be callable")
        fams = None if families is None else frozenset(OSFamily(f) for f in families)
        with self._lock:
            self._entries[name] = _Entry(handler, fams)

    def program(
        self, name: str, *, families: Iterable[OSFamily | str] | None = None
    ) -> Callable[[MockGuestProgram], MockGuestProgram]:
        """Decorator form of :meth:`register`."""

        def decorate(handler: MockGuestProgram) -> MockGuestProgram:
            self.register(name, handler, families=families)
            return handler

        return decorate

    def unregister(self, name: str) -> None:
        """Remove a program registered here (built-ins of the parent stay)."""
        with self._lock:
            self._entries.pop(name, None)

    def names(self, family: OSFamily | None = None) -> list[str]:
        """Names of the programs available (in guests of *family*, when given)."""
        found = set(self._parent.names(family)) if self._parent else set()
        with self._lock:
            found.update(
                n for n, e in self._entries.items() if family is None or e.families is None or family in e.families
            )
        return sorted(found)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name, None) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def lookup(self, name: str, family: OSFamily | None) -> MockGuestProgram | None:
        """The handler run for ``argv[0] == name`` in a guest of *family*, or ``None``."""
        base = re.split(r"[/\\]", name)[-1]
        candidates = [name, base]
        if family is OSFamily.WINDOWS or family is None:
            lowered = base.lower()
            candidates += [lowered, lowered[:-4] if lowered.endswith(".exe") else lowered]
        return self._lookup(candidates, family)

    def _lookup(self, candidates: list[str], family: OSFamily | None) -> MockGuestProgram | None:
        with self._lock:
            for candidate in candidates:
                entry = self._entries.get(candidate)
                if entry is not None and (family is None or entry.families is None or family in entry.families):
                    return entry.handler
        return self._parent._lookup(candidates, family) if self._parent else None


def run_program(cmd: GuestCommand) -> ExecResult:
    """Dispatch *cmd* to its program and normalise the result."""
    handler = cmd.programs.lookup(cmd.argv[0], cmd.os_family)
    if handler is None:
        name = cmd.argv[0]
        if cmd.os_family is OSFamily.WINDOWS:
            message = (
                f"'{name}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
            )
            return ExecResult(9009, "", message, tuple(cmd.argv))
        return ExecResult(127, "", f"{name}: command not found\n", tuple(cmd.argv))
    try:
        return normalise_result(handler(cmd), cmd.argv)
    except _ShellExit as done:
        return ExecResult(done.code, "", "", tuple(cmd.argv))


def normalise_result(result: ProgramResult, argv: Sequence[str]) -> ExecResult:
    """Turn whatever a program returned into an :class:`~virtabstract.ExecResult`."""
    if result is None:
        return ExecResult(0, "", "", tuple(argv))
    if isinstance(result, ExecResult):
        return result if result.argv else ExecResult(result.exit_code, result.stdout, result.stderr, tuple(argv))
    if isinstance(result, bool):
        return ExecResult(0 if result else 1, "", "", tuple(argv))
    if isinstance(result, int):
        return ExecResult(result, "", "", tuple(argv))
    if isinstance(result, str):
        return ExecResult(0, result, "", tuple(argv))
    if isinstance(result, tuple) and len(result) == 3:
        code, out, err = result
        return ExecResult(int(code), str(out), str(err), tuple(argv))
    raise GuestError(f"guest program {argv[0]!r} returned {type(result).__name__}, not an exit status or ExecResult")


# -- built-in programs -----------------------------------------------------------------------

_UNIX = frozenset({OSFamily.LINUX, OSFamily.BSD, OSFamily.MACOS, OSFamily.SOLARIS, OSFamily.OTHER, OSFamily.ESXI})
_WINDOWS = frozenset({OSFamily.WINDOWS})


def _echo(cmd: GuestCommand) -> ProgramResult:
    args = cmd.args
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    eol = "\r\n" if cmd.os_family is OSFamily.WINDOWS else "\n"
    return " ".join(args) + (eol if newline else "")


def _cat(cmd: GuestCommand) -> ProgramResult:
    name = cmd.argv[0]
    if not cmd.args:
        return 0, cmd.stdin_text, ""
    out, err, code = [], [], 0
    for path in cmd.args:
        try:
            out.append(cmd.files.read(path).decode("utf-8", "replace"))
        except GuestFileNotFound:
            err.append(
                "The system cannot find the file specified.\r\n"
                if cmd.os_family is OSFamily.WINDOWS
                else f"{name}: {path}: No such file or directory\n"
            )
            code = 1
        except GuestError as exc:
            err.append(f"{name}: {path}: {exc}\n")
            code = 1
    return code, "".join(out), "".join(err)


def _uname(cmd: GuestCommand) -> ProgramResult:
    system = {OSFamily.BSD: "FreeBSD", OSFamily.MACOS: "Darwin", OSFamily.SOLARIS: "SunOS"}.get(cmd.os_family, "Linux")
    parts = {
        "-s": system,
        "-n": cmd.hostname,
        "-r": cmd.kernel,
        "-v": "#1 SMP PREEMPT_DYNAMIC mock",
        "-m": "x86_64",
        "-o": "GNU/Linux" if system == "Linux" else system,
    }
    flags = cmd.args or ["-s"]
    if "-a" in flags:
        order = ["-s", "-n", "-r", "-v", "-m"] + (["-o"] if system == "Linux" else [])
    else:
        unknown = [f for f in flags if f not in parts]
        if unknown:
            return 1, "", f"uname: invalid option -- '{unknown[0].lstrip('-')}'\n"
        order = [f for f in parts if f in flags]
    return " ".join(parts[f] for f in order) + "\n"


def _hostname(cmd: GuestCommand) -> ProgramResult:
    return cmd.hostname + ("\r\n" if cmd.os_family is OSFamily.WINDOWS else "\n")


def _sleep(cmd: GuestCommand) -> ProgramResult:
    try:
        seconds = float(cmd.args[0].rstrip("s")) if cmd.args else -1.0
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        return 1, "", "sleep: invalid time interval\n"
    cmd.sleep(seconds)
    return 0


def _ls(cmd: GuestCommand) -> ProgramResult:
    paths = [a for a in cmd.args if not a.startswith("-")] or ["/"]
    out, err, code = [], [], 0
    for path in paths:
        try:
            if cmd.files.is_file(path):
                out.append(path)
            else:
                out.extend(cmd.files.listdir(path))
        except GuestError as exc:
            err.append(f"ls: cannot access '{path}': {exc}\n")
            code = 2
    return code, "".join(line + "\n" for line in out), "".join(err)


def _mkdir(cmd: GuestCommand) -> ProgramResult:
    parents = any(a in ("-p", "--parents") for a in cmd.args)
    err, code = [], 0
    for path in (a for a in cmd.args if not a.startswith("-")):
        try:
            cmd.files.mkdir(path, parents=parents or cmd.os_family is OSFamily.WINDOWS)
        except GuestError as exc:
            err.append(f"mkdir: {exc}\n")
            code = 1
    return code, "", "".join(err)


def _rm(cmd: GuestCommand) -> ProgramResult:
    flags = "".join(a[1:] for a in cmd.args if a.startswith("-"))
    err, code = [], 0
    for path in (a for a in cmd.args if not a.startswith("-")):
        try:
            cmd.files.remove(path, recursive="r" in flags.lower())
        except GuestFileNotFound:
            if "f" not in flags and "q" not in flags.lower():
                err.append(f"rm: cannot remove '{path}': No such file or directory\n")
                code = 1
        except GuestError as exc:
            err.append(f"rm: {exc}\n")
            code = 1
    return code, "", "".join(err)


def _touch(cmd: GuestCommand) -> ProgramResult:
    err, code = [], 0
    for path in cmd.args:
        try:
            if not cmd.files.exists(path):
                cmd.files.write(path, b"")
        except GuestError as exc:
            err.append(f"touch: {exc}\n")
            code = 1
    return code, "", "".join(err)


def _test(cmd: GuestCommand) -> ProgramResult:
    args = cmd.args[:-1] if cmd.argv[0] == "[" and cmd.args[-1:] == ["]"] else cmd.args
    if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-n", "-z"):
        op, value = args
        if op == "-n":
            return 0 if value else 1
        if op == "-z":
            return 1 if value else 0
        check = {"-e": cmd.files.exists, "-f": cmd.files.is_file, "-d": cmd.files.is_dir}[op]
        try:
            return 0 if check(value) else 1
        except GuestError:
            return 1
    if len(args) == 3 and args[1] in ("=", "==", "!="):
        equal = args[0] == args[2]
        return 0 if equal == (args[1] != "!=") else 1
    if len(args) == 1:
        return 0 if args[0] else 1
    return 2, "", "test: unsupported expression\n"


def _env(cmd: GuestCommand) -> ProgramResult:
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", **cmd.env}
    if cmd.argv[0] == "printenv" and cmd.args:
        values = [env[a] for a in cmd.args if a in env]
        return (0 if len(values) == len(cmd.args) else 1), "".join(v + "\n" for v in values), ""
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


def _whoami(cmd: GuestCommand) -> ProgramResult:
    if cmd.os_family is OSFamily.WINDOWS:
        return f"{cmd.hostname.upper()[:15]}\\administrator\r\n"
    return "root\n"


def _id(cmd: GuestCommand) -> ProgramResult:
    return "uid=0(root) gid=0(root) groups=0(root)\n"


def _pwd(cmd: GuestCommand) -> ProgramResult:
    return "/\n"


def _ver(cmd: GuestCommand) -> ProgramResult:
    return f"\r\nMicrosoft Windows [Version {cmd.kernel}]\r\n"


def _dir(cmd: GuestCommand) -> ProgramResult:
    path = next((a for a in cmd.args if not a.startswith("/")), "C:\\")
    try:
        names = cmd.files.listdir(path)
    except GuestError as exc:
        return 1, "", f"File Not Found ({exc})\r\n"
    return "".join(n + "\r\n" for n in names)


def _del(cmd: GuestCommand) -> ProgramResult:
    err, code = [], 0
    for path in (a for a in cmd.args if not a.startswith("/")):
        try:
            cmd.files.remove(path)
        except GuestError:
            err.append(f"Could Not Find {path}\r\n")
            code = 1
    return code, "", "".join(err)


class _ShellExit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def _exit(cmd: GuestCommand) -> ProgramResult:
    try:
        code = int(cmd.args[0]) if cmd.args else 0
    except ValueError:
        code = 2
    raise _ShellExit(code & 0xFF if cmd.os_family is not OSFamily.WINDOWS else code)


def _tokens(script: str, windows: bool) -> list[str]:
    lexer = shlex.shlex(script, posix=True, punctuation_chars=";&|<>")
    lexer.whitespace_split = True
    lexer.commenters = "" if windows else "#"
    if windows:
        lexer.escape = ""
    try:
        return list(lexer)
    except ValueError as exc:
        raise _ShellExit(2) from exc


_CONNECTORS = {";", "&&", "||", "&"}


def run_script(cmd: GuestCommand, script: str) -> ExecResult:
    """Run a small shell script (``; && || | > >> <`` and ``exit N``) with the guest's programs."""
    windows = cmd.os_family is OSFamily.WINDOWS
    try:
        tokens = _tokens(script, windows)
    except _ShellExit:
        return ExecResult(2, "", f"{cmd.argv[0]}: syntax error: unterminated quote\n", tuple(cmd.argv))
    # split into (connector, pipeline tokens)
    steps: list[tuple[str, list[str]]] = []
    current: list[str] = []
    connector = ";"
    for tok in tokens:
        if tok in _CONNECTORS:
            steps.append((connector, current))
            connector, current = (";" if tok == "&" else tok), []
        else:
            current.append(tok)
    steps.append((connector, current))
    out: list[str] = []
    err: list[str] = []
    status = 0
    try:
        for conn, words in steps:
            if not words:
                continue
            if (conn == "&&" and status != 0) or (conn == "||" and status == 0):
                continue
            status = _run_pipeline(cmd, words, out, err)
    except _ShellExit as done:
        status = done.code
    return ExecResult(status, "".join(out), "".join(err), tuple(cmd.argv))


def _run_pipeline(cmd: GuestCommand, words: list[str], out: list[str], err: list[str]) -> int:
    stages: list[list[str]] = [[]]
    for w in words:
        if w == "|":
            stages.append([])
        else:
            stages[-1].append(w)
    data = b""
    status = 0
    for index, stage in enumerate(stages):
        argv: list[str] = []
        redirect: tuple[str, str] | None = None
        source: str | None = None
        i = 0
        while i < len(stage):
            tok = stage[i]
            if tok in (">", ">>", "<") and i + 1 < len(stage):
                if tok == "<":
                    source = stage[i + 1]
                else:
                    redirect = (tok, stage[i + 1])
                i += 2
                continue
            argv.append(tok)
            i += 1
        if source is not None:
            try:
                data = cmd.files.read(source)
            except GuestError as exc:
                err.append(f"{source}: {exc}\n")
                return 1
        if not argv:
            return 0
        if argv[0] == "exit":
            _exit(cmd.child(argv, data))  # raises _ShellExit: ends the whole script
        result = run_program(cmd.child(argv, data))
        err.append(result.stderr)
        status = result.exit_code
        if redirect is not None:
            try:
                cmd.files.write(redirect[1], result.stdout.encode(), append=redirect[0] == ">>")
            except GuestError as exc:
                err.append(f"{redirect[1]}: {exc}\n")
                status = 1
            data = b""
        elif index == len(stages) - 1:
            out.append(result.stdout)
        else:
            data = result.stdout.encode()
    return status


def _sh(cmd: GuestCommand) -> ProgramResult:
    args = cmd.args
    if len(args) >= 2 and args[0] == "-c":
        return run_script(cmd, args[1])
    if not args:
        return run_script(cmd, cmd.stdin_text)
    path = args[0]
    try:
        script = cmd.files.read(path).decode("utf-8", "replace")
    except GuestError:
        return 127, "", f"{cmd.argv[0]}: {path}: No such file or directory\n"
    return run_script(cmd, script)


def _cmd(cmd: GuestCommand) -> ProgramResult:
    args = cmd.args
    if args and args[0].lower() in ("/c", "/k", "-command", "-c", "/command"):
        return run_script(cmd, " ".join(args[1:]))
    if args and cmd.argv[0].lower().startswith("powershell") and not args[0].startswith("-"):
        return run_script(cmd, " ".join(args))
    return run_script(cmd, cmd.stdin_text)


def builtin_programs() -> GuestPrograms:
    """A registry holding the built-in programs (every connection's registry inherits from one)."""
    programs = GuestPrograms()
    for name, handler in (
        ("cat", _cat),
        ("uname", _uname),
        ("true", lambda cmd: 0),
        ("false", lambda cmd: 1),
        ("sh", _sh),
        ("bash", _sh),
        ("sleep", _sleep),
        ("ls", _ls),
        ("rm", _rm),
        ("touch", _touch),
        ("test", _test),
        ("[", _test),
        ("env", _env),
        ("printenv", _env),
        ("id", _id),
        ("pwd", _pwd),
    ):
        programs.register(name, handler, families=_UNIX)
    for name, handler in (
        ("cmd", _cmd),
        ("powershell", _cmd),
        ("pwsh", _cmd),
        ("ver", _ver),
        ("type", _cat),
        ("dir", _dir),
        ("del", _del),
        ("md", _mkdir),
    ):
        programs.register(name, handler, families=_WINDOWS)
    for name, handler in (
        ("echo", _echo),
        ("hostname", _hostname),
        ("whoami", _whoami),
        ("mkdir", _mkdir),
        ("exit", _exit),
    ):
        programs.register(name, handler)
    return programs
