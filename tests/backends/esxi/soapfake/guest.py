r"""An in-memory guest OS as VMware Tools present it to GuestOperationsManager.

Built from VMware's documented semantics (vSphere API reference, ``vim.vm.guest.ProcessManager``
and ``FileManager``):

* ``StartProgramInGuest``: ``programPath`` is an absolute path that must exist (else ``FileNotFound``);
  on Linux/Solaris "the program will be executed by a guest shell. This allows stdio redirection"
  (Tools run ``/bin/bash -c "<programPath> <arguments>"``); on Windows the program is started with the
  command line ``"<programPath>" <arguments>`` — ``cmd.exe /c …`` gives redirection. ``envVariables``,
  when given, are "not additions to the default environment variables; they define the complete set".
  Returns the pid at once; the process runs on.
* ``ListProcessesInGuest(pids)``: ``endTime`` and ``exitCode`` appear once the process has ended and
  stay "available for 5 minutes after completion"; unknown pids are simply left out.
* ``TerminateProcessInGuest``: ``GuestProcessNotFound`` for an unknown pid.
* ``CreateTemporaryFileInGuest``: a new empty file in the user's temp directory (or ``directoryPath``),
  its name ``prefix + random + suffix``.
* ``InitiateFileTransferFromGuest`` → ``FileNotFound`` when the file is missing; else a URL to GET.
  ``InitiateFileTransferToGuest`` → a URL to PUT exactly ``fileSize`` bytes; ``FileAlreadyExists`` when
  ``overwrite`` is false and the file exists.
* ``DeleteFileInGuest`` → ``FileNotFound`` when missing, ``NotAFile`` for a directory.
* Every operation needs the guest user/password: ``InvalidGuestLogin`` otherwise.

Programs come from the mock backend's simulated guest (:mod:`virtabstract.backends.mock._guest`):
``echo``, ``cat``, ``printenv``, ``sleep``, ``sh -c``, ``exit`` …, and ``cmd``'s ``echo``/``type``/``dir``
on Windows. A program's side effects happen when it starts; its *end* is delayed by the time it
slept (``sleep 5`` ends 5 s of wall time later), which is what a timeout test needs.
"""

from __future__ import annotations

import datetime
import itertools
import ntpath
import posixpath
import secrets
import threading
import time
from dataclasses import dataclass, field

from virtabstract import ManualClock, OSFamily
from virtabstract.backends.mock._guest import (
    GuestCommand,
    GuestFS,
    GuestPrograms,
    builtin_programs,
    default_filesystem,
    normalise_result,
)
from virtabstract.errors import GuestError, GuestFileNotFound

from .wire import SoapFault, leaf

__all__ = ["FakeGuest", "GuestProcess"]

LINUX_TEMP = "/tmp"
WINDOWS_TEMP = "C:\\Users\\Administrator\\AppData\\Local\\Temp"
WINDOWS_CMD = "C:\\Windows\\System32\\cmd.exe"
LINUX_DEFAULT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}


@dataclass
class GuestProcess:
    """One process started through StartProgramInGuest."""

    pid: int
    name: str
    owner: str
    cmd_line: str
    start_time: datetime.datetime
    ends_at: float  # time.monotonic() of its end
    end_time: datetime.datetime
    exit_code: int
    terminated: bool = False

    def ended(self) -> bool:
        return self.terminated or time.monotonic() >= self.ends_at


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


@dataclass
class FakeGuest:
    """The guest of one VM. ``username``/``password`` are what its Tools accept."""

    windows: bool = False
    username: str = "root"
    password: str = "s3cret-guest"
    hostname: str = "fakeguest"
    fs: GuestFS = field(init=False)
    programs: GuestPrograms = field(default_factory=lambda: GuestPrograms(builtin_programs()))
    processes: dict[int, GuestProcess] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    """Every path DeleteFileInGuest removed."""
    temp_files: list[str] = field(default_factory=list)
    """Every path CreateTemporaryFileInGuest created."""
    started: list[tuple[str, str, list[str] | None]] = field(default_factory=list)
    """``(programPath, arguments, envVariables)`` of every StartProgramInGuest."""
    reboots: int = 0
    _pids: itertools.count[int] = field(default_factory=lambda: itertools.count(4101))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        family = OSFamily.WINDOWS if self.windows else OSFamily.LINUX
        files, dirs = default_filesystem(family, self.hostname, "Fake Linux", "fake", "1")
        self.fs = GuestFS(files, dirs, windows=self.windows)
        if self.windows:
            self.fs.mkdir(WINDOWS_TEMP, parents=True)
            self.fs.write(WINDOWS_CMD, b"MZ fake cmd.exe")
        else:
            for directory in ("/bin", "/usr/bin", "/dev"):
                self.fs.mkdir(directory, parents=True)
            for name in ("bash", "sh", "cat", "echo"):
                self.fs.write(f"/bin/{name}", b"\x7fELF fake")
            self.fs.write("/usr/bin/env", b"\x7fELF fake")

    @property
    def family(self) -> OSFamily:
        return OSFamily.WINDOWS if self.windows else OSFamily.LINUX

    # -- authentication ------------------------------------------------------------------------

    def check_auth(self, auth: dict[str, object]) -> None:
        """``NamePasswordAuthentication`` only; a wrong pair is InvalidGuestLogin (no detail, like Tools)."""
        if auth.get("_type") != "NamePasswordAuthentication":
            raise SoapFault("InvalidGuestLogin", "Failed to authenticate with the guest operating system")
        if auth.get("username") != self.username or auth.get("password") != self.password:
            raise SoapFault(
                "InvalidGuestLogin",
                "Failed to authenticate with the guest operating system using the supplied credentials.",
            )

    # -- files ----------------------------------------------------------------------------------

    def _file_not_found(self, path: str) -> SoapFault:
        return SoapFault("FileNotFound", f"File {path} was not found", leaf("file", path))

    def create_temp(self, prefix: str, suffix: str, directory: str) -> str:
        directory = directory or (WINDOWS_TEMP if self.windows else LINUX_TEMP)
        join = ntpath.join if self.windows else posixpath.join
        with self._lock:
            if not self.fs.is_dir(directory):
                raise self._file_not_found(directory)
            path = join(directory, f"{prefix}{secrets.token_hex(4)}{suffix}")
            self.fs.write(path, b"")
            self.temp_files.append(path)
        return path

    def read(self, path: str) -> bytes:
        with self._lock:
            try:
                return self.fs.read(path)
            except GuestFileNotFound:
                raise self._file_not_found(path) from None
            except GuestError as exc:
                raise SoapFault("NotAFile", str(exc), leaf("file", path)) from None

    def check_writable(self, path: str, overwrite: bool) -> None:
        with self._lock:
            try:
                if self.fs.is_dir(path):
                    raise SoapFault("NotAFile", f"{path} is a directory", leaf("file", path))
                if self.fs.is_file(path) and not overwrite:
                    raise SoapFault("FileAlreadyExists", f"{path} exists", leaf("file", path))
                parent = (ntpath.dirname if self.windows else posixpath.dirname)(path)
                if not self.fs.is_dir(parent):
                    raise self._file_not_found(parent)
            except GuestError as exc:  # not an absolute path
                raise SoapFault("InvalidArgument", str(exc), leaf("invalidProperty", "guestFilePath")) from None

    def write(self, path: str, data: bytes) -> None:
        with self._lock:
            self.fs.write(path, data)

    def delete(self, path: str) -> None:
        with self._lock:
            try:
                if self.fs.is_dir(path):
                    raise SoapFault("NotAFile", f"{path} is a directory", leaf("file", path))
                self.fs.remove(path)
            except GuestFileNotFound:
                raise self._file_not_found(path) from None
            self.deleted.append(path)

    def exists(self, path: str) -> bool:
        with self._lock:
            return self.fs.exists(path)

    # -- processes ------------------------------------------------------------------------------

    def start(self, program_path: str, arguments: str, env: list[str] | None) -> int:
        with self._lock:
            self.started.append((program_path, arguments, env))
            try:
                exists = self.fs.is_file(program_path)
            except GuestError:
                exists = False
            if not exists:
                raise self._file_not_found(program_path)
            environment = dict(e.split("=", 1) for e in env if "=" in e) if env else None
            clock = ManualClock()
            if self.windows:
                code = self._run_windows(program_path, arguments, environment or {}, clock)
                line = f'"{program_path}" {arguments}'
            else:
                line = f"{program_path} {arguments}".strip()
                code = self._run_shell(line, environment if environment is not None else dict(LINUX_DEFAULT_ENV), clock)
            pid = next(self._pids)
            now = _now()
            self.processes[pid] = GuestProcess(
                pid=pid,
                name=(ntpath.basename if self.windows else posixpath.basename)(program_path),
                owner=self.username,
                cmd_line=line,
                start_time=now,
                ends_at=time.monotonic() + clock.monotonic(),
                end_time=now + datetime.timedelta(seconds=clock.monotonic()),
                exit_code=code,
            )
            return pid

    def list(self, pids: list[int]) -> list[GuestProcess]:
        with self._lock:
            chosen = pids or list(self.processes)
            return [self.processes[p] for p in chosen if p in self.processes]

    def terminate(self, pid: int) -> None:
        with self._lock:
            process = self.processes.get(pid)
            if process is None or process.ended():
                raise SoapFault("GuestProcessNotFound", f"process {pid} not found", leaf("pid", pid))
            process.terminated = True
            process.ends_at = time.monotonic()
            process.end_time = _now()
            process.exit_code = 137 if not self.windows else 1  # killed

    # -- the guest shell ------------------------------------------------------------------------

    def _command(self, argv: list[str], stdin: bytes, env: dict[str, str], clock: ManualClock) -> GuestCommand:
        return GuestCommand(
            argv=argv,
            stdin=stdin,
            env=env,
            files=self.fs,
            vm_id="",
            vm_name="",
            hostname=self.hostname,
            os_family=self.family,
            kernel="6.1.0-fake" if not self.windows else "10.0.20348.1",
            clock=clock,
            timeout=float("inf"),
            programs=self.programs,
        )

    def _run_program(
        self, argv: list[str], stdin: bytes, env: dict[str, str], clock: ManualClock
    ) -> tuple[int, bytes, bytes]:
        """Run one program (``/usr/bin/env`` handled like coreutils' env: VAR=value assignments, then exec)."""
        name = argv[0]
        if posixpath.basename(name) == "env" and not self.windows:
            rest = list(argv[1:])
            env = dict(env)
            while rest and "=" in rest[0] and not rest[0].startswith("="):
                key, value = rest.pop(0).split("=", 1)
                env[key] = value
            if not rest:
                return 0, "".join(f"{k}={v}\n" for k, v in env.items()).encode(), b""
            if self.programs.lookup(rest[0], self.family) is None:
                return 127, b"", f"{name}: '{rest[0]}': No such file or directory\n".encode()
            argv = rest
        handler = self.programs.lookup(argv[0], self.family)
        if handler is None:
            if self.windows:
                message = (
                    f"'{argv[0]}' is not recognized as an internal or external command,\r\n"
                    "operable program or batch file.\r\n"
                )
                return 9009, b"", message.encode()
            return 127, b"", f"bash: {argv[0]}: command not found\n".encode()
        result = normalise_result(handler(self._command(argv, stdin, env, clock)), argv)
        return result.exit_code, result.stdout.encode(), result.stderr.encode()

    def _redirect(
        self, words: list[tuple[str, bool]], env: dict[str, str], clock: ManualClock, raw: str, piped: bytes = b""
    ) -> tuple[int, bytes]:
        """Run one simple command with its redirections; returns the exit code and the unredirected stdout."""
        argv: list[str] = []
        out_path = err_path = in_path = None
        append = False
        i = 0
        while i < len(words):
            text, operator = words[i]
            if operator:
                if i + 1 >= len(words) or words[i + 1][1]:
                    return 2, b""
                target = words[i + 1][0]
                if text in (">", ">>"):
                    out_path, append = target, text == ">>"
                elif text == "2>":
                    err_path = target
                elif text == "<":
                    in_path = target
                else:
                    return 2, b""  # ; | & are not part of what the backend sends to bash
                i += 2
                continue
            argv.append(text)
            i += 1
        if not argv:
            return 0, b""
        stdin = piped
        if in_path and in_path.lower() not in ("/dev/null", "nul"):
            try:
                stdin = self.fs.read(in_path)
            except GuestError:
                return 1, b""
        if self.windows and argv[0].lower() == "echo":  # cmd's echo prints the rest of the line verbatim
            code, out, err = 0, raw.partition(" ")[2].strip().encode() + b"\r\n", b""
        else:
            code, out, err = self._run_program(argv, stdin, env, clock)
        for path, data, add in ((out_path, out, append), (err_path, err, False)):
            if path and path.lower() not in ("/dev/null", "nul"):
                try:
                    self.fs.write(path, data, append=add)
                except GuestError:
                    return 1, b""
        return code, b"" if out_path else out

    def _run_shell(self, line: str, env: dict[str, str], clock: ManualClock) -> int:
        """``bash -c line`` for the subset the backend produces: words, quotes, ``< > >> 2>``."""
        try:
            words = posix_words(line)
        except (ValueError, IndexError):
            return 2  # unterminated quote: bash's syntax error
        return self._redirect(words, env, clock, line)[0]

    def _run_windows(self, program_path: str, arguments: str, env: dict[str, str], clock: ManualClock) -> int:
        if ntpath.basename(program_path).lower() != "cmd.exe":
            words = [w for command in cmd_commands(arguments) for w in command[1]]
            return self._redirect([(program_path, False), *words], env, clock, arguments)[0]
        text = arguments.strip()
        if text[:2].lower() not in ("/c", "/k"):
            return 1  # an interactive cmd.exe would wait for input forever; not what anyone sends
        text = text[2:].strip()
        # cmd /? : "if the first character is a quote [and the special case does not apply], the leading
        # character is stripped and the last quote on the command line is removed".
        if text.startswith('"') and text.count('"') > 2:
            last = text.rfind('"')
            text = text[1:last] + text[last + 1 :]
        status, piped = 0, b""
        for connector, words, raw in cmd_commands(text):
            if (connector == "&&" and status != 0) or (connector == "||" and status == 0):
                continue
            status, out = self._redirect(words, env, clock, raw, piped if connector == "|" else b"")
            piped = out
        return status


def posix_words(line: str) -> list[tuple[str, bool]]:
    """Split a POSIX shell line into ``(word, is_operator)``; quotes make operators literal."""
    words: list[tuple[str, bool]] = []
    current: list[str] = []
    started = had_quote = False
    i = 0

    def flush() -> None:
        nonlocal started, had_quote
        if started:
            words.append(("".join(current), False))
        current.clear()
        started = had_quote = False

    while i < len(line):
        c = line[i]
        if c in " \t\n":
            flush()
        elif c == "'":
            end = line.index("'", i + 1)  # ValueError: unterminated
            current.append(line[i + 1 : end])
            started = had_quote = True
            i = end
        elif c == '"':
            i += 1
            while line[i] != '"':
                if line[i] == "\\" and line[i + 1] in '"\\$`':
                    i += 1
                current.append(line[i])
                i += 1
            started = had_quote = True
        elif c == "\\":
            current.append(line[i + 1])
            started = had_quote = True
            i += 1
        elif c in "<>;|&":
            if c == ">" and started and not had_quote and "".join(current) == "2":
                current.clear()
                started = False
                words.append(("2>", True))
            else:
                flush()
                if c == ">" and line[i + 1 : i + 2] == ">":
                    words.append((">>", True))
                    i += 1
                else:
                    words.append((c, True))
        else:
            current.append(c)
            started = True
        i += 1
    flush()
    return words


def cmd_commands(text: str) -> list[tuple[str, list[tuple[str, bool]], str]]:
    """Parse a ``cmd /c`` line the way cmd.exe does; returns ``(connector, words, command_text)`` per command.

    Phase 1 (cmd itself): outside double quotes, ``^x`` is a literal ``x`` (the caret is removed, and an
    escaped ``^"`` does not open a quoted region); ``&``, ``&&``, ``|``, ``||`` separate commands;
    ``< > >> 2>`` redirect (the target is the next word, quotes grouping it). Inside quotes everything
    is literal. *command_text* is what the program receives (carets gone, quotes kept) and what
    ``echo`` prints.
    Phase 2 (the program): *words* are :func:`windows_argv` of the command text, plus the redirections.
    """
    commands: list[tuple[str, list[tuple[str, bool]], str]] = []
    connector = ""
    line: list[tuple[str, bool, bool]] = []  # (char, is a quote cmd acted on, inside a quoted region)
    redirects: list[tuple[str, bool]] = []
    target: list[str] | None = None  # collecting a redirection target
    target_started = False
    quoted = False
    i = 0

    def finish_target() -> None:
        nonlocal target, target_started
        if target is not None and target_started:
            redirects.append(("".join(target), False))
            target, target_started = None, False

    def end_command(next_connector: str) -> None:
        nonlocal line, redirects, connector
        finish_target()
        command = "".join(c for c, _, _ in line).strip()
        # cmd finds the program from the first token it sees: whitespace outside a quoted region ends it
        # (a caret-escaped ^" opens no region, so ^"C:\Program Files\x.exe^" names "C:\Program).
        chars = list(itertools.dropwhile(lambda e: e[0] in " \t", line))
        program = "".join(
            c for c, structural, _ in itertools.takewhile(lambda e: e[2] or e[0] not in " \t", chars) if not structural
        )
        argv = windows_argv(command)
        if argv:
            argv[0] = program
        commands.append((connector, [(w, False) for w in argv] + redirects, command))
        line, redirects, connector = [], [], next_connector

    while i < len(text):
        c = text[i]
        if quoted:
            if c == '"':
                quoted = False
                if target is None:
                    line.append((c, True, True))
            elif target is not None:
                target.append(c)
            else:
                line.append((c, False, True))
        elif c == '"':
            quoted = True
            if target is None:
                line.append((c, True, True))
            else:
                target_started = True
        elif c == "^" and i + 1 < len(text):
            i += 1
            if target is not None:
                target.append(text[i])
                target_started = True
            else:
                line.append((text[i], False, False))
        elif c in " \t":
            if target is not None and target_started:
                finish_target()
            elif target is None:
                line.append((c, False, False))
        elif c in "&|":
            double = text[i + 1 : i + 2] == c
            end_command(c * 2 if double else c)
            i += 1 if double else 0
        elif c in "<>":
            finish_target()
            op = c
            if c == ">" and line[-1:] and line[-1][0] == "2" and (len(line) == 1 or line[-2][0] in " \t"):
                line.pop()
                op = "2>"
            if c == ">" and text[i + 1 : i + 2] == ">":
                op = ">>"
                i += 1
            redirects.append((op, True))
            target, target_started = [], False
        elif target is not None:
            target.append(c)
            target_started = True
        else:
            line.append((c, False, False))
        i += 1
    end_command("")
    return commands


def windows_argv(command: str) -> list[str]:
    """Split a Windows command line like the Microsoft C runtime (CommandLineToArgvW).

    Whitespace separates arguments outside quotes; ``"`` toggles quoting; ``2n`` backslashes before a
    quote give ``n`` backslashes and a toggle, ``2n+1`` give ``n`` and a literal quote; ``""`` inside a
    quoted region is a literal quote. (:func:`subprocess.list2cmdline` is the inverse.)
    """
    args: list[str] = []
    current: list[str] = []
    started = quoted = False
    i = 0
    while i < len(command):
        c = command[i]
        if c == "\\":
            j = i
            while j < len(command) and command[j] == "\\":
                j += 1
            count = j - i
            if j < len(command) and command[j] == '"':
                current.append("\\" * (count // 2))
                if count % 2:
                    current.append('"')
                    i = j + 1
                else:
                    i = j
                started = True
                continue
            current.append("\\" * count)
            started = True
            i = j
            continue
        if c == '"':
            if quoted and command[i + 1 : i + 2] == '"':
                current.append('"')
                i += 2
                continue
            quoted = not quoted
            started = True
        elif c in " \t" and not quoted:
            if started:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args
