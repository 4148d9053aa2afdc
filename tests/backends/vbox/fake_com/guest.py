"""Fake Guest Additions for the fake COM layer: IGuest, IGuestSession, IGuestProcess, IGuestFile,
guest properties, IVRDEServer and IVRDEServerInfo.

The guest itself is the mock backend's simulator (``virtabstract.backends.mock._guest``: its file
system and programs), driven through the glue the fake VBoxManage uses
(:func:`..fake_vboxmanage.guest_fs`, ``save_fs``, ``run_in_guest``), so both transports' fakes run
the same guest. Reproduced from the SDK reference, Main's ``Guest*Impl.cpp`` and VirtualBox's own
guest-control test driver (ValidationKit ``tdAddGuestCtrl.py``), not from a real VirtualBox:

* Additions come up some polls after a boot: ``IGuest.additionsRunLevel`` reads ``None`` (0) for
  :data:`ADDITIONS_POLLS` reads after the VM starts (a new ``Starting``), is reset or is rebooted
  from inside, then ``System`` (1: the driver reports, with ``additionsVersion``, but VBoxService
  is not up: no guest properties, no guest session) for :data:`SYSTEM_POLLS` reads, then
  ``Userland`` (2); the ``/VirtualBox/GuestAdd/*`` and ``/VirtualBox/GuestInfo/*`` properties
  appear with Userland.
* ``IGuest.createSession(user, password, domain, name)``: E_INVALIDARG without a user; on 7.x,
  VBOX_E_GSTCTL_GUEST_ERROR "Guest Additions are not installed or not ready (yet)" while
  VBoxService is not up (on 6.1 the session is created and simply never starts). A session starts
  asynchronously: ``Starting`` until a ``waitFor``/``waitForArray`` with ``Start``; a wrong password
  makes that wait raise (VBOX_E_IPRT_ERROR on 6.1, VBOX_E_GSTCTL_GUEST_ERROR on 7.x) with the
  VERR_AUTHENTICATION_FAILURE text. The password is checked, never stored.
* ``processCreate``: 5 parameters on 6.1/7.0, 6 from 7.1 on (working directory third), a TypeError
  otherwise; ``arguments`` start with argv[0]; ``environmentChanges`` (``NAME=VALUE``) go on top
  of the guest's environment; output is kept only for the handles whose ``WaitForStdOut`` /
  ``WaitForStdErr`` flag was given; past ``timeoutMS`` the guest kills it (``TimedOutKilled``).
  An executable the guest does not have: status ``Error`` and ``waitFor`` raises.
* ``IProcess.waitFor``/``waitForArray``: ``Start``; ``StdOut``/``StdErr`` while output is pending;
  the process ends (``TerminatedNormally``, ``exitCode``) only once its pending output was read,
  as VBoxService keeps it until its pipes are drained; ``read`` returns at most
  :data:`READ_CHUNK` bytes (as a memoryview, as some XPCOM bindings do) and nothing once the
  process has ended (``GuestProcess::i_readData`` serves only a started process). A wait with
  nothing to report sleeps its slice (at most :data:`WAIT_SLICE_MS`) and returns ``Timeout``.
* ``IGuestSession.fileExists``/``fileOpen(path, FileAccessMode, FileOpenAction, creationMode)``;
  ``IFile.read(toRead, timeoutMS)`` (at most :data:`FILE_CHUNK` bytes, ``b""`` at the end),
  ``write(data, timeoutMS)`` (E_INVALIDARG for no data, at most :data:`FILE_CHUNK` bytes taken
  per call), ``close``.
* ``IMachine.enumerateGuestProperties(patterns)`` -> ``(names, values, timestamps, flags)``,
  ``getGuestPropertyValue``.
* ``IMachine.VRDEServer`` (read-only on the registered machine, changed through
  ``session.machine`` + ``saveSettings``), ``IConsole.VRDEServerInfo.port``: -1 while VRDE is off
  or the VM does not run, else a port of ``TCP/Ports`` (0 when none is free).

Guest-side error texts are approximations; the backend depends on them only through
``virtabstract_vbox._errors``' documented patterns. Knobs, per machine (:func:`guest_os`):
``additions`` (False: none installed), ``accounts``, ``props``, ``hang`` (program names that never
end), ``session_start_hangs``; :func:`open_guest_sessions` lists the sessions not closed.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import posixpath
import time
from collections.abc import Callable
from typing import Any

from virtabstract import OSFamily
from virtabstract.backends.mock._guest import GuestFS, builtin_programs
from virtabstract.errors import GuestError

from ..conftest import GUEST_PASSWORD, GUEST_USER
from ..fake_vboxmanage import guest_fs, run_in_guest, save_fs, since
from . import VERSIONS, COMError, FakeMachine, FakeServer, _err

ADDITIONS_POLLS = 1
"""How many ``IGuest.additionsRunLevel`` reads after a boot still see no Additions."""
SYSTEM_POLLS = 1
"""How many reads after those see the Additions at ``System`` only (before VBoxService starts)."""
READ_CHUNK = 40
"""Bytes one ``IProcess.read`` hands out at most (small: the backend must loop)."""
FILE_CHUNK = 100
"""Bytes one ``IFile.read`` returns / one ``IFile.write`` takes at most."""
WAIT_SLICE_MS = 50
"""A wait with nothing to report sleeps at most this long, then returns Timeout."""
SYSTEM, USERLAND = 1, 2

GUEST_ENUMS: dict[str, dict[str, int]] = {
    "AdditionsRunLevelType": {"None": 0, "System": 1, "Userland": 2, "Desktop": 3},
    "GuestSessionStatus": {"Undefined": 0, "Starting": 10, "Started": 100, "Terminating": 480, "Terminated": 500,
                           "TimedOutKilled": 512, "TimedOutAbnormally": 513, "Down": 600, "Error": 800},
    "GuestSessionWaitForFlag": {"None": 0, "Start": 1, "Terminate": 2, "Status": 4},
    "GuestSessionWaitResult": {"None": 0, "Start": 1, "Terminate": 2, "Status": 3, "Error": 4, "Timeout": 5,
                               "WaitFlagNotSupported": 6},
    "ProcessCreateFlag": {"None": 0, "WaitForProcessStartOnly": 1, "IgnoreOrphanedProcesses": 2, "Hidden": 4,
                          "Profile": 8, "WaitForStdOut": 16, "WaitForStdErr": 32, "ExpandArguments": 64,
                          "UnquotedArguments": 128},
    "ProcessStatus": {"Undefined": 0, "Starting": 10, "Started": 100, "Paused": 110, "Terminating": 480,
                      "TerminatedNormally": 500, "TerminatedSignal": 510, "TerminatedAbnormally": 511,
                      "TimedOutKilled": 512, "TimedOutAbnormally": 513, "Down": 600, "Error": 800},
    "ProcessWaitForFlag": {"None": 0, "Start": 1, "Terminate": 2, "StdIn": 4, "StdOut": 8, "StdErr": 16},
    "ProcessWaitResult": {"None": 0, "Start": 1, "Terminate": 2, "Status": 3, "Error": 4, "Timeout": 5, "StdIn": 6,
                          "StdOut": 7, "StdErr": 8, "WaitFlagNotSupported": 9},
    "FileAccessMode": {"ReadOnly": 1, "WriteOnly": 2, "ReadWrite": 3, "AppendOnly": 4, "AppendRead": 5},
    "FileOpenAction": {"OpenExisting": 1, "OpenOrCreate": 2, "CreateNew": 3, "CreateOrReplace": 4,
                       "OpenExistingTruncated": 5, "AppendOrCreate": 99},
    "FileStatus": {"Undefined": 0, "Opening": 10, "Open": 100, "Closing": 150, "Closed": 200, "Down": 600,
                   "Error": 800},
    "AuthType": {"Null": 0, "External": 1, "Guest": 2},
}  # fmt: skip
"""The Main API enums of guest control and VRDE (the same numbers in 6.1, 7.0, 7.1 and 7.2)."""

_GUEST_RUNS = {"Running", "LiveSnapshotting", "OnlineSnapshotting", "DeletingSnapshotOnline"}
_REBOOTERS = {"shutdown", "reboot", "shutdown.exe"}
_PIDS = itertools.count(1000)
_VRDE_DEFAULTS: dict[str, Any] = {
    "enabled": False, "authType": 0, "authTimeout": 5000, "allowMultiConnection": False,
    "reuseSingleConnection": False, "VRDEExtPack": "", "authLibrary": "",
    "properties": {"TCP/Ports": "3389", "TCP/Address": ""},
}  # fmt: skip
_VRDE_SETTABLE = frozenset(_VRDE_DEFAULTS) - {"properties"}


def _sleep(timeout_ms: int) -> None:
    """What a wait that sees nothing does: wait its slice (bounded here), then report Timeout."""
    time.sleep(min(max(int(timeout_ms), 0), WAIT_SLICE_MS) / 1000)


def _enum_name(enum: str, value: int) -> str:
    for name, number in GUEST_ENUMS[enum].items():
        if number == value:
            return name
    raise _err("E_INVALIDARG", f"Invalid {enum} value: {value}")


def guest_os(machine: FakeMachine) -> GuestOS:
    """The simulated guest of *machine* (made on first use; its knobs are the test's to set)."""
    found: GuestOS | None = machine.__dict__.get("_guest_os")
    if found is None:
        found = GuestOS(machine)
        machine._guest_os = found  # "_" names are plain attributes of a machine view
    return found


def open_guest_sessions(server: FakeServer) -> list[FakeGuestSession]:
    """Guest sessions not closed, on every registered machine (the backend must close all of them)."""
    return [s for m in server.machines for s in guest_os(m).sessions]


class GuestOS:
    """The guest of one machine: the mock's file system and programs, Additions state, accounts, knobs."""

    def __init__(self, machine: FakeMachine) -> None:
        self.machine = machine
        self.profile: str = machine._server.profile
        self.additions = True
        """False: no Guest Additions installed (the run level stays None)."""
        self.accounts: dict[str, str] = {GUEST_USER: GUEST_PASSWORD}
        self.props: dict[str, str] = {}
        """Extra guest properties (as set by ``VBoxManage guestproperty set``)."""
        self.hang: set[str] = set()
        """Program names that never end (a wedged guest: not even the guest's timeout kills them)."""
        self.session_start_hangs = False
        self.reboots = 0
        self.sessions: list[FakeGuestSession] = []
        self.record: dict[str, Any] = {"uuid": machine._data["id"], "name": machine._data["name"], "guest": {}}
        self._boot = -1
        self._polls = 0
        self._level = 0

    def up(self) -> bool:
        """True while the guest executes (its VM process runs and is not paused)."""
        return bool(self.machine._vm_process) and self.machine._state in _GUEST_RUNS

    def run_level(self, *, poll: bool = False) -> int:
        """The Additions run level; only a *poll* (an ``IGuest.additionsRunLevel`` read) moves it on."""
        if not self.additions or not self.up():
            return 0
        boot = self.machine.transitions.count("Starting") + self.reboots
        if boot != self._boot:
            self._boot, self._polls, self._level = boot, 0, 0
        if poll:
            self._polls += 1
            self._level = (0 if self._polls <= ADDITIONS_POLLS
                           else SYSTEM if self._polls <= ADDITIONS_POLLS + SYSTEM_POLLS else USERLAND)  # fmt: skip
        return self._level

    def reboot(self) -> None:
        """The guest restarts: the Additions are down again for a few polls."""
        self.reboots += 1

    def error(self, text: str) -> COMError:
        """A guest-side failure with this profile's code (VBOX_E_GSTCTL_GUEST_ERROR from 7.0 on)."""
        return COMError("VBOX_E_GSTCTL_GUEST_ERROR" if since(self.profile, "7.0") else "VBOX_E_IPRT_ERROR", text)

    def fs(self) -> GuestFS:
        """A working copy of the guest's file system (give it back with :meth:`save`)."""
        result: GuestFS = guest_fs(self.record)
        return result

    def save(self, fs: GuestFS) -> None:
        save_fs(self.record, fs)

    def properties(self) -> dict[str, str]:
        """The guest properties now: what the Additions publish while up, plus :attr:`props`."""
        props: dict[str, str] = {}
        if self.run_level() >= USERLAND:
            version, revision = VERSIONS[self.profile]
            props.update({
                "/VirtualBox/GuestAdd/Version": version,
                "/VirtualBox/GuestAdd/Revision": str(revision),
                "/VirtualBox/GuestInfo/OS/Product": "Linux",
                "/VirtualBox/GuestInfo/OS/Release": "6.1.0-18-amd64",
                "/VirtualBox/GuestInfo/OS/Version": "#1 SMP Debian 6.1.76-1",
                "/VirtualBox/GuestInfo/Net/Count": "0",
            })  # fmt: skip
            nics = [a for a in self.machine._data["adapters"] if a["enabled"]]
            props["/VirtualBox/GuestInfo/Net/Count"] = str(len(nics))
            for i, nic in enumerate(nics):
                base = f"/VirtualBox/GuestInfo/Net/{i}"
                props.update({f"{base}/V4/IP": f"10.0.{2 + i}.15", f"{base}/V4/Netmask": "255.255.255.0",
                              f"{base}/MAC": nic["MACAddress"], f"{base}/Status": "Up"})  # fmt: skip
        props.update(self.props)
        return props

    def enumerate(self, patterns: str) -> tuple[list[str], list[str], list[int], list[str]]:
        """``IMachine.enumerateGuestProperties``: ``|``-separated wildcard patterns, ``""`` for all."""
        wanted = [p for p in patterns.split("|") if p]
        found = [(k, v) for k, v in self.properties().items() if not wanted or any(fnmatch.fnmatchcase(k, p)
                                                                                   for p in wanted)]  # fmt: skip
        now = time.time_ns()
        flags = ["TRANSIENT, RDONLYGUEST" if k.startswith("/VirtualBox/") else "" for k, _ in found]
        return [k for k, _ in found], [v for _, v in found], [now] * len(found), flags


class FakeGuest:
    """IGuest of the running VM."""

    def __init__(self, guest: GuestOS) -> None:
        self._os = guest

    @property
    def additionsRunLevel(self) -> int:
        """AdditionsRunLevelType; every read is a poll."""
        return self._os.run_level(poll=True)

    @property
    def additionsVersion(self) -> str:
        """``"7.0.20"``…, ``""`` while no Additions report."""
        return VERSIONS[self._os.profile][0] if self._os.run_level() else ""

    @property
    def additionsRevision(self) -> int:
        """The Additions' build revision (0 while none report)."""
        return VERSIONS[self._os.profile][1] if self._os.run_level() else 0

    @property
    def OSTypeId(self) -> str:
        """What the Additions say the guest is (``"Other"`` without them)."""
        return "Linux_64" if self._os.run_level() else "Other"

    @property
    def sessions(self) -> list[FakeGuestSession]:
        """The guest sessions not closed."""
        return list(self._os.sessions)

    def createSession(self, user: str, password: str, domain: str, session_name: str) -> FakeGuestSession:
        """A new guest session (it starts asynchronously: wait for ``Start``)."""
        if not user:
            raise _err("E_INVALIDARG", "No user name specified")
        if since(self._os.profile, "7.0") and self._os.run_level() < USERLAND:
            raise COMError("VBOX_E_GSTCTL_GUEST_ERROR", "Guest Additions are not installed or not ready (yet)")
        return FakeGuestSession(self._os, user, self._os.accounts.get(user) == password, domain, session_name)


class FakeGuestSession:
    """IGuestSession: one guest account; processes and files run as it."""

    def __init__(self, guest: GuestOS, user: str, authenticated: bool, domain: str, name: str) -> None:
        self._os = guest
        self.user, self.domain, self.name = user, domain, name
        self._authenticated = authenticated
        self._status = "Starting"
        self._files: list[FakeGuestFile] = []
        self.environmentChanges: list[str] = []
        guest.sessions.append(self)

    def _current(self) -> str:
        if self._status in ("Starting", "Started") and not self._os.up():
            return "Down"
        return self._status

    @property
    def status(self) -> int:
        """GuestSessionStatus."""
        return GUEST_ENUMS["GuestSessionStatus"][self._current()]

    def waitFor(self, wait_for: int, timeout_ms: int) -> int:
        """GuestSessionWaitResult for a GuestSessionWaitForFlag bit mask."""
        return self._wait({bit for bit in (1, 2, 4) if wait_for & bit}, timeout_ms)

    def waitForArray(self, wait_for: list[int], timeout_ms: int) -> int:
        """GuestSessionWaitResult for a list of GuestSessionWaitForFlag."""
        return self._wait(set(wait_for), timeout_ms)

    def _wait(self, flags: set[int], timeout_ms: int) -> int:
        results = GUEST_ENUMS["GuestSessionWaitResult"]
        if 1 in flags and self._status == "Starting":
            self._try_start()
        status = self._current()
        if 1 in flags and status == "Started":
            return results["Start"]
        if 2 in flags and status in ("Terminated", "Down"):
            return results["Terminate"]
        if status == "Error":
            return results["Error"]
        _sleep(timeout_ms)
        return results["Timeout"]

    def _try_start(self) -> None:
        if self._os.session_start_hangs or self._os.run_level() < USERLAND:
            return  # nothing in the guest answers the session start
        if not self._authenticated:
            self._status = "Error"
            raise self._os.error(
                f"Waiting for guest session failed: The specified user '{self.user}' was not able to logon on guest "
                "(VERR_AUTHENTICATION_FAILURE)"
            )
        self._status = "Started"

    def close(self) -> None:
        """End the session (its open files are closed)."""
        if self in self._os.sessions:
            self._os.sessions.remove(self)
        for handle in self._files:
            handle._status = "Closed"
        self._status = "Terminated"

    def _need_started(self) -> None:
        if self._current() != "Started":
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Guest session '{self.name}' is not started ({self._current()})")

    def processCreate(self, *args: Any) -> FakeGuestProcess:
        """(executable, arguments, [cwd on 7.1,] environmentChanges, flags, timeoutMS)."""
        arity = 6 if since(self._os.profile, "7.1") else 5
        if len(args) != arity:
            raise TypeError(f"processCreate() takes exactly {arity} arguments ({len(args)} given)")
        executable, arguments, env, flags, timeout_ms = (*args[:2], *args[-3:])
        if not all(isinstance(a, list) for a in (arguments, env, flags)):
            raise TypeError("arguments, environmentChanges and flags are arrays")
        self._need_started()
        return FakeGuestProcess(self._os, executable, arguments, [*self.environmentChanges, *env], flags, timeout_ms)

    def fileExists(self, path: str, follow_symlinks: bool) -> bool:
        """Whether *path* is a regular file."""
        self._need_started()
        try:
            return self._os.fs().is_file(path)
        except GuestError as exc:
            raise self._os.error(f'Checking "{path}" failed: {exc} (VERR_INVALID_PARAMETER)') from None

    def fileOpen(self, path: str, access_mode: int, open_action: int, creation_mode: int) -> FakeGuestFile:
        """Open (or create) a guest file; CreateOrReplace / OpenExistingTruncated truncate at once."""
        self._need_started()
        access, action = _enum_name("FileAccessMode", access_mode), _enum_name("FileOpenAction", open_action)
        fs = self._os.fs()
        fail = self._os.error
        try:
            exists, is_dir = fs.is_file(path), fs.is_dir(path)
        except GuestError as exc:
            raise fail(f"Opening guest file failed: {exc} (VERR_INVALID_PARAMETER)") from None
        if is_dir:
            raise fail(f'Opening guest file failed: "{path}" is a directory (VERR_IS_A_DIRECTORY)')
        if not exists and action in ("OpenExisting", "OpenExistingTruncated"):
            raise fail(f'Opening guest file failed: File "{path}" was not found (VERR_FILE_NOT_FOUND)')
        if exists and action == "CreateNew":
            raise fail(f'Opening guest file failed: File "{path}" already exists (VERR_ALREADY_EXISTS)')
        keep = exists and action not in ("CreateOrReplace", "OpenExistingTruncated")
        data = fs.read(path) if keep else b""
        if not keep:
            try:
                fs.write(path, b"")
            except GuestError:
                raise fail(f'Opening guest file failed: Path of "{path}" was not found (VERR_PATH_NOT_FOUND)') from None
            self._os.save(fs)
        handle = FakeGuestFile(self._os, path, access, data, creation_mode)
        self._files.append(handle)
        return handle


class FakeGuestProcess:
    """IGuestProcess: the mock guest program runs when the guest starts the process."""

    def __init__(
        self, guest: GuestOS, executable: str, arguments: list[str], environment: list[str], flags: list[int],
        timeout_ms: int,
    ) -> None:  # fmt: skip
        self._os = guest
        self.executablePath = executable
        self.arguments = list(arguments)
        self.environment = environment
        self._flags = set(flags)
        self._timeout = int(timeout_ms) / 1000 or 3600.0
        self.PID = 0
        self._status = "Starting"
        self._exit = -1
        self._end: tuple[str, int] = ("TerminatedNormally", 0)
        self._out, self._err = bytearray(), bytearray()
        self._hung = False

    @property
    def status(self) -> int:
        """ProcessStatus."""
        return GUEST_ENUMS["ProcessStatus"][self._status]

    @property
    def exitCode(self) -> int:
        """The exit code (the signal number after TerminatedSignal; -1 before the end)."""
        return self._exit

    def waitFor(self, wait_for: int, timeout_ms: int) -> int:
        """ProcessWaitResult for a ProcessWaitForFlag bit mask."""
        return self._wait({bit for bit in (1, 2, 4, 8, 16) if wait_for & bit}, timeout_ms)

    def waitForArray(self, wait_for: list[int], timeout_ms: int) -> int:
        """ProcessWaitResult for a list of ProcessWaitForFlag."""
        return self._wait(set(wait_for), timeout_ms)

    def _wait(self, flags: set[int], timeout_ms: int) -> int:
        results = GUEST_ENUMS["ProcessWaitResult"]
        if self._status == "Starting":
            self._start()
        if self._status == "Error":
            raise self._os.error(f'Waiting for guest process failed: The file "{self.executablePath}" was not found')
        if 1 in flags:
            return results["Start"]
        if 8 in flags and self._out:
            return results["StdOut"]
        if 16 in flags and self._err:
            return results["StdErr"]
        if self._status == "Started" and not (self._out or self._err or self._hung):
            self._status, self._exit = self._end  # VBoxService reports the end once the pipes are drained
        if 2 in flags and self._status != "Started":
            return results["Terminate"]
        _sleep(timeout_ms)
        return results["Timeout"]

    def _start(self) -> None:
        self.PID = next(_PIDS)
        self._status = "Started"
        name = posixpath.basename(self.executablePath)
        if name in _REBOOTERS:
            self._os.reboot()  # exits 0, as the fake VBoxManage's guest does
            return
        if name in self._os.hang:
            self._hung = True
            return
        if builtin_programs().lookup(self.executablePath, OSFamily.LINUX) is None:
            self._status = "Error"
            return
        fs = self._os.fs()
        argv = [self.executablePath, *self.arguments[1:]]
        code, out, err = run_in_guest(self._os.record, fs, argv, self.environment, self._timeout)
        self._os.save(fs)
        if code is None:
            self._end = ("TimedOutKilled", -1)
            return
        self._end = ("TerminatedNormally", code)
        if GUEST_ENUMS["ProcessCreateFlag"]["WaitForStdOut"] in self._flags:
            self._out += out.encode()
        if GUEST_ENUMS["ProcessCreateFlag"]["WaitForStdErr"] in self._flags:
            self._err += err.encode()

    def read(self, handle: int, to_read: int, timeout_ms: int) -> memoryview:
        """Up to min(*to_read*, READ_CHUNK) bytes of stdout (1) or stderr (2); nothing once ended."""
        if handle not in (1, 2):
            raise _err("E_INVALIDARG", f"Invalid output handle {handle}")
        if self._status != "Started":
            return memoryview(b"")
        buffer = self._out if handle == 1 else self._err
        piece = bytes(buffer[: min(int(to_read), READ_CHUNK)])
        del buffer[: len(piece)]
        return memoryview(piece)

    def terminate(self) -> None:
        """Kill the process (SIGKILL)."""
        if self._status in ("Starting", "Started"):
            self._status, self._exit, self._hung = "TerminatedSignal", 9, False


class FakeGuestFile:
    """IGuestFile: reads and writes the guest's file system in place."""

    def __init__(self, guest: GuestOS, path: str, access: str, data: bytes, creation_mode: int) -> None:
        self._os = guest
        self.fileName = path
        self.creationMode = creation_mode
        self._access = access
        self._data = bytearray(data)
        self._offset = len(data) if access.startswith("Append") else 0
        self._status = "Open"

    @property
    def status(self) -> int:
        """FileStatus."""
        return GUEST_ENUMS["FileStatus"][self._status]

    @property
    def offset(self) -> int:
        """The current offset."""
        return self._offset

    def _need(self, readable: bool) -> None:
        if self._status != "Open":
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f'Guest file "{self.fileName}" is not open')
        allowed = ("ReadOnly", "ReadWrite", "AppendRead") if readable else ("WriteOnly", "ReadWrite", "AppendOnly",
                                                                            "AppendRead")  # fmt: skip
        if self._access not in allowed:
            raise self._os.error(f'Guest file "{self.fileName}" is not open for that (VERR_ACCESS_DENIED)')

    def read(self, to_read: int, timeout_ms: int) -> bytes:
        """Up to min(*to_read*, FILE_CHUNK) bytes from the offset; ``b""`` at the end."""
        self._need(readable=True)
        if to_read <= 0:
            raise _err("E_INVALIDARG", "The size to read is zero")
        piece = bytes(self._data[self._offset : self._offset + min(int(to_read), FILE_CHUNK)])
        self._offset += len(piece)
        return piece

    def write(self, data: Any, timeout_ms: int) -> int:
        """Write up to FILE_CHUNK bytes at the offset; return how many were taken."""
        self._need(readable=False)
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data is an octet array")
        if not len(data):
            raise _err("E_INVALIDARG", "No data to write specified")
        piece = bytes(data[:FILE_CHUNK])
        self._data[self._offset : self._offset + len(piece)] = piece
        self._offset += len(piece)
        fs = self._os.fs()
        fs.write(self.fileName, bytes(self._data))
        self._os.save(fs)
        return len(piece)

    def close(self) -> None:
        """Close the file."""
        self._status = "Closed"


# -- VRDE ------------------------------------------------------------------------------------


def _vrde(view: Any) -> dict[str, Any]:
    view._machine._data.setdefault("vrde", copy.deepcopy(_VRDE_DEFAULTS))
    data: dict[str, Any] = view._read("vrde")
    return data


def _ports(spec: str) -> list[int]:
    """``"5000-5002,6000"`` -> ``[5000, 5001, 5002, 6000]``."""
    found: list[int] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        low, _, high = part.partition("-")
        found.extend(range(int(low), int(high or low) + 1))
    return found


class FakeVRDEServer:
    """IVRDEServer of a machine view: read-only on the registered IMachine, mutable on ``session.machine``."""

    def __init__(self, view: Any) -> None:
        object.__setattr__(self, "_view", view)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = _vrde(self._view)
        if name == "VRDEProperties":
            return sorted(data["properties"])
        if name in _VRDE_SETTABLE:
            return data[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _VRDE_SETTABLE:
            raise AttributeError(f"attribute {name} is read-only")
        self._update(lambda data: data.__setitem__(name, value))

    def getVRDEProperty(self, key: str) -> str:
        """A VRDE property (``TCP/Ports``, ``TCP/Address``…), ``""`` when unset."""
        return str(_vrde(self._view)["properties"].get(key, ""))

    def setVRDEProperty(self, key: str, value: str) -> None:
        """Set a VRDE property."""
        self._update(lambda data: data["properties"].__setitem__(key, value))

    def _update(self, change: Callable[[dict[str, Any]], None]) -> None:
        self._view._check_mutable("VRDEServer")
        data = copy.deepcopy(_vrde(self._view))
        change(data)
        self._view._write("vrde", data)


class FakeVRDEServerInfo:
    """IVRDEServerInfo of the running VM."""

    def __init__(self, machine: FakeMachine) -> None:
        self._machine = machine
        self.active = False
        self.numberOfClients = 0

    @property
    def port(self) -> int:
        """The listening port; -1 while not started (VRDE off, VM not running), 0 when no port was free."""
        machine = self._machine
        data = machine._data.get("vrde", _VRDE_DEFAULTS)
        if not data["enabled"] or not machine._vm_process:
            return -1
        listening = [m for m in machine._server.machines if m._vm_process and m._data.get("vrde", {}).get("enabled")]
        ports = _ports(str(data["properties"].get("TCP/Ports", "3389")))
        index = listening.index(machine)
        return ports[index] if index < len(ports) else 0
