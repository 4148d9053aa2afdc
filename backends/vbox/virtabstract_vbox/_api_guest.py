"""Guest Additions, console (VRDE) and reboot on the API transport: :class:`ApiGuestMixin`.

What each operation calls in the Main API (6.1 to 7.2), and why:

* ``guest_info`` / ``guest_ip_addresses`` -- :class:`~virtabstract_vbox._backend.VBoxBackend`'s
  own implementations, fed by :meth:`ApiGuestMixin._guest_props`: ``IGuest.additionsRunLevel``
  / ``additionsVersion`` (through a Shared lock on the running VM) and
  ``IMachine.enumerateGuestProperties("")``, keyed as VBoxManage prints them. The same parsing
  runs on both transports, so "the guest is ready" (what ``Guest.wait_ready`` polls for) means
  exactly the same thing on both: Additions at ``Userland`` (:func:`~._states.additions_ready`),
  the level guest sessions need, not merely ``System`` (the driver, early in a boot).
* ``guest_exec`` -- one guest session per call: ``IGuest.createSession(user, password, "",
  name)``, ``waitForArray([Start])``, then ``processCreate`` with
  ``WaitForStdOut``/``WaitForStdErr`` (7.1 inserted a working-directory parameter third, kept in
  7.2: version shim), ``waitForArray([Terminate, StdOut, StdErr])`` in slices, ``IProcess.read`` whenever
  output is signalled (VirtualBox hands out no output once a process has ended, so it is read
  while the process runs), and ``exitCode`` at the end. ``env`` becomes ``environmentChanges``
  (``NAME=VALUE``), applied on top of the guest session's environment: added to it, not
  replacing it. The guest kills the process at the timeout (``TimedOutKilled`` ->
  :class:`~virtabstract.errors.OperationTimeout`); the host stops waiting a grace period later.
  Standard input is given as on the VBoxManage transport (the inherited code: a guest temp
  file and a shell redirect): ``IProcess.write`` exists, but VirtualBox's own guest-control
  test driver leaves standard input untested, so it is not relied upon.
* ``guest_read_file`` / ``guest_write_file`` -- ``IGuestSession.fileOpen`` with
  ``IFile.read``/``write`` in 64 KiB chunks, not ``fileCopyFromGuest``/``ToGuest``: the bytes
  stay in this process (no host temp file for the VM process to read or write), and
  ``fileOpen(path, FileAccessMode, FileOpenAction, creationMode)`` has kept that signature
  from 5.0 to 7.2. A missing file is detected with ``fileExists`` (so it is
  :class:`~virtabstract.errors.GuestFileNotFound` whatever the guest's error text), and an
  empty file is created by the open alone (``IFile.write`` refuses empty data).
* Guest sessions are always closed, and the machine's session unlocked, even on errors.
* ``reboot`` -- the guest's own reboot command through Guest Additions, as on the VBoxManage
  transport (VirtualBox has no guest-cooperative reboot; ``IConsole.reset`` is a hard reset).
* ``console`` -- ``IMachine.VRDEServer`` (enabled, ``TCP/Ports``, ``TCP/Address``, auth type)
  and the running VM's ``IConsole.VRDEServerInfo.port``, turned into the console record by
  the VBoxManage transport's own :func:`~._backend.vrde_console_info`; VMs created on this
  transport get VRDE exactly as on the VBoxManage transport (:meth:`ApiGuestMixin._setup_vrde`).

Guest credentials are the connection's ``guest_username``/``guest_password`` (or its
credentials), as on the VBoxManage transport; the password is handed to ``createSession`` and
appears in no log line, repr or exception message.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from virtabstract import (
    ConsoleInfo,
    ExecResult,
    OSFamily,
    PowerState,
    Secret,
    VMSpec,
    check_transition,
    guest_os_from_native,
)
from virtabstract.errors import (
    GuestAgentUnavailable,
    GuestError,
    GuestFileNotFound,
    InvalidState,
    OperationTimeout,
    VirtAbstractError,
)

from ._api import LOCK_SHARED
from ._api_hooks import ApiHooks
from ._backend import VRDE_PASSWORD_KEY, VRDE_USER, first_port, require_guest_control, vrde_console_info
from ._states import is_online, power_state

__all__ = ["ApiGuestMixin"]

log = logging.getLogger("virtabstract.vbox")

GUEST_SESSION_NAME = "virtabstract"
"""The name our guest sessions carry (shown by ``VBoxManage guestcontrol <vm> list sessions``)."""
CHUNK = 64 * 1024
"""Bytes asked for or handed over per ``IProcess.read`` / ``IFile.read`` / ``IFile.write`` call."""
SESSION_START_SECONDS = 30.0
"""How long a guest session (or a guest process) may take to start; VBoxManage waits as long."""
EXEC_GRACE_SECONDS = 30.0
"""How much longer than the exec timeout the host waits: the guest itself kills the process at the timeout."""
FILE_IO_MS = 30_000
"""Timeout of one ``IFile`` call (0 would mean "forever" to VirtualBox)."""

_PROCESS_STATUSES = (
    "Undefined", "Starting", "Started", "Paused", "Terminating", "TerminatedNormally", "TerminatedSignal",
    "TerminatedAbnormally", "TimedOutKilled", "TimedOutAbnormally", "Down", "Error",
)  # fmt: skip
_PROCESS_ENDED = frozenset(_PROCESS_STATUSES[5:])  # TerminatedNormally and every later status
_SESSION_STATUSES = (
    "Undefined", "Starting", "Started", "Terminating", "Terminated", "TimedOutKilled", "TimedOutAbnormally", "Down",
    "Error",
)  # fmt: skip
_STDOUT, _STDERR = 1, 2
_REBOOT_WINDOWS = ["C:\\Windows\\System32\\shutdown.exe", "/r", "/t", "0"]
_REBOOT_POSIX = ["/sbin/shutdown", "-r", "now"]


def _octets(value: Any) -> bytes:
    """An ``octet[]`` result as bytes (XPCOM hands out bytes or a memoryview, MS COM bytes)."""
    return b"" if value is None else bytes(value)


class ApiGuestMixin(ApiHooks):
    """Guest Additions, console and reboot over the Main API (see the module docstring).

    Mixed into :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`, which provides the
    hooks declared by :class:`~virtabstract_vbox._api_hooks.ApiHooks`. ``guest_info`` and
    ``guest_ip_addresses`` are inherited from :class:`~virtabstract_vbox._backend.VBoxBackend`
    and run on :meth:`_guest_props`.
    """

    # -- helpers ----------------------------------------------------------------------

    def _slice_ms(self) -> int:
        return max(1, int(self.api.slice_seconds * 1000))

    def _enum_name(self, enum: str, names: Sequence[str], value: Any) -> str:
        """The name of *value* in *enum* (numbers come from the running VirtualBox's constants)."""
        for name in names:
            if self.api.constant(enum, name) == int(value):
                return name
        return str(value)

    def _running_machine(self, vm_id: str) -> tuple[Any, str]:
        """The machine and its name; GuestAgentUnavailable unless it runs (Additions answer only then)."""
        machine = self._machine(vm_id)
        name, native = str(machine.name), self._state(machine)
        if power_state(native) is not PowerState.RUNNING:
            raise GuestAgentUnavailable(f"VM {name!r} is {native}: Guest Additions answer only when running")
        return machine, name

    def _guest_of(self, session: Any, name: str) -> Any:
        """``IConsole.guest`` of a session linked to the VM process."""
        console = self.api.call("ISession.console", lambda: session.console)
        if console is None:
            raise GuestAgentUnavailable(f"VM {name!r} has no running VM process")
        return self.api.call("IConsole.guest", lambda: console.guest)

    def _run_level(self, guest: Any) -> int:
        """``IGuest.additionsRunLevel`` (``AdditionsRunLevelType``; the same numbers showvminfo prints)."""
        return int(self.api.call("IGuest.additionsRunLevel", lambda: guest.additionsRunLevel))

    def _guest_account(self) -> tuple[str, str]:
        """The guest account (user, password) of the connection, as on the VBoxManage transport."""
        account = self._guest_user()
        if account is None:
            raise GuestError(
                "Guest Additions operations need a guest account: connect(..., guest_username=..., guest_password=...)"
            )
        return account

    # -- guest information (consumed by VBoxBackend.guest_info / guest_ip_addresses) ---

    def _guest_props(self, vm_id: str) -> tuple[dict[str, str], dict[str, Any]]:
        """The Additions status and the guest properties, keyed as VBoxManage prints them.

        ``raw`` holds showvminfo's ``name``, ``VMState``, ``GuestAdditionsRunLevel`` and
        ``GuestAdditionsVersion`` (``"<version> r<revision>"``, only while Additions report one).
        """
        machine, name = self._running_machine(vm_id)
        with self.api.session(machine, LOCK_SHARED) as session:
            guest = self._guest_of(session, name)
            run_level = self._run_level(guest)
            version = str(self.api.call("IGuest.additionsVersion", lambda: guest.additionsVersion) or "")
            revision = int(self.api.call("IGuest.additionsRevision", lambda: guest.additionsRevision) or 0)
        names, values, _stamps, _flags = self.api.call(
            "IMachine.enumerateGuestProperties", machine.enumerateGuestProperties, ""
        )
        raw = {"name": name, "VMState": self._state(machine), "GuestAdditionsRunLevel": str(run_level)}
        if version:
            raw["GuestAdditionsVersion"] = f"{version} r{revision}"
        return raw, {str(k): str(v) for k, v in zip(names, values, strict=True)}

    def _guest_is_windows(self, vm_id: str) -> bool:
        """Whether the VM's OS type is a Windows one (picks the shell and reboot command)."""
        entry = guest_os_from_native("virtualbox", str(self._machine(vm_id).OSTypeId))
        return entry is not None and entry.family is OSFamily.WINDOWS

    def _require_guest_control(self, vm_id: str) -> None:
        """Refuse guest control unless the VM runs and its Additions reached Userland (as on VBoxManage)."""
        machine, name = self._running_machine(vm_id)
        with self.api.session(machine, LOCK_SHARED) as session:
            require_guest_control(self._run_level(self._guest_of(session, name)), name)

    # -- guest sessions ----------------------------------------------------------------

    @contextmanager
    def _guest_session(self, vm_id: str) -> Iterator[Any]:
        """A started ``IGuestSession`` of the guest account; always closed, the VM always unlocked after."""
        machine, name = self._running_machine(vm_id)  # checked first, as on the VBoxManage transport
        user, password = self._guest_account()
        with self.api.session(machine, LOCK_SHARED) as session:
            guest = self._guest_of(session, name)
            # Guest control is VBoxService's: below Userland a session never starts.
            require_guest_control(self._run_level(guest), name)
            gsession = self.api.call("IGuest.createSession", guest.createSession, user, password, "",
                                     GUEST_SESSION_NAME)  # fmt: skip
            try:
                self._wait_session_started(gsession, name)
                yield gsession
            finally:
                try:
                    gsession.close()
                except Exception as exc:  # noqa: BLE001 - never mask the body's error
                    log.debug("closing the guest session of %s failed: %s", name, exc)

    def _wait_session_started(self, gsession: Any, name: str) -> None:
        """Wait (in slices) until the guest session reads Started; a wrong password raises here."""
        api = self.api
        start = [api.constant("GuestSessionWaitForFlag", "Start")]
        deadline = time.monotonic() + SESSION_START_SECONDS
        while True:
            api.call("IGuestSession.waitForArray", gsession.waitForArray, start, self._slice_ms())
            status = self._enum_name("GuestSessionStatus", _SESSION_STATUSES, gsession.status)
            if status == "Started":
                return
            if status == "Down":  # the guest stopped or is rebooting
                raise GuestAgentUnavailable(f"the guest of VM {name!r} went down before the guest session started")
            if status != "Starting":
                raise GuestError(f"the guest session in VM {name!r} did not start (status {status})")
            if time.monotonic() >= deadline:
                raise GuestAgentUnavailable(
                    f"Guest Additions in VM {name!r} did not start a guest session within {SESSION_START_SECONDS:g}s"
                )

    # -- guest processes ---------------------------------------------------------------

    def guest_exec(
        self, vm_id: str, argv: Sequence[str], *, stdin: bytes | None, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """``IGuestSession.processCreate`` in a guest session of its own (see the module docstring).

        Standard input goes through a private guest temp file and the guest's shell, as on
        the VBoxManage transport.
        """
        return super().guest_exec(vm_id, argv, stdin=stdin, timeout=timeout, env=env)

    def _guest_run(
        self, vm_id: str, argv: Sequence[str], command: list[str], *, timeout: float, env: Mapping[str, str]
    ) -> ExecResult:
        """Run *command* through the API; report it as *argv*."""
        with self._guest_session(vm_id) as gsession:
            code, out, err = self._run_process(gsession, command, env, timeout)
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        return ExecResult(exit_code=code, stdout=stdout, stderr=stderr, argv=tuple(argv))

    def _run_process(
        self, gsession: Any, command: list[str], env: Mapping[str, str], timeout: float
    ) -> tuple[int, bytes, bytes]:
        process = self._process_create(gsession, command, env, timeout)
        try:
            self._wait_process_started(process, command[0])
            out, err = self._pump_output(process, command[0], timeout)
        except BaseException:
            self._terminate(process)
            raise
        return self._exit_code(process, command[0], timeout), out, err

    def _process_create(self, gsession: Any, command: list[str], env: Mapping[str, str], timeout: float) -> Any:
        """``processCreate``: 5 parameters up to 7.0, 6 from 7.1 on (working directory third, "" = default)."""
        api = self.api
        flags = [api.constant("ProcessCreateFlag", "WaitForStdOut"), api.constant("ProcessCreateFlag", "WaitForStdErr")]
        changes = [f"{key}={value}" for key, value in env.items()]
        args: list[Any] = [command[0], list(command)]  # arguments start with argv[0] (since VirtualBox 5.0)
        if api.behaviour >= (7, 1):  # 7.2 keeps 7.1's signature
            args.append("")
        args += [changes, flags, max(1, int(timeout * 1000))]
        return api.call("IGuestSession.processCreate", gsession.processCreate, *args)

    def _process_status(self, process: Any) -> str:
        value = self.api.call("IProcess.status", lambda: process.status)
        return self._enum_name("ProcessStatus", _PROCESS_STATUSES, value)

    def _wait_process_started(self, process: Any, exe: str) -> None:
        """Wait until the guest has started the process (or failed to: GuestError)."""
        start = [self.api.constant("ProcessWaitForFlag", "Start")]
        deadline = time.monotonic() + SESSION_START_SECONDS
        while True:
            try:
                self.api.call("IProcess.waitForArray", process.waitForArray, start, self._slice_ms())
            except VirtAbstractError as exc:
                if self._process_status(process) == "Error":  # e.g. no such executable in the guest
                    raise GuestError(f"the guest could not start {exe!r}: {exc}") from exc
                raise
            status = self._process_status(process)
            if status == "Error":
                raise GuestError(f"the guest could not start {exe!r}")
            if status not in ("Undefined", "Starting"):
                return
            if time.monotonic() >= deadline:
                raise OperationTimeout(f"the guest did not start {exe!r} within {SESSION_START_SECONDS:g}s")

    def _pump_output(self, process: Any, exe: str, timeout: float) -> tuple[bytes, bytes]:
        """Read stdout/stderr whenever signalled until the process ends."""
        api = self.api
        results = {api.constant("ProcessWaitResult", n): n for n in ("StdOut", "StdErr", "WaitFlagNotSupported")}
        wait_for = [api.constant("ProcessWaitForFlag", n) for n in ("Terminate", "StdOut", "StdErr")]
        out, err = bytearray(), bytearray()
        deadline = time.monotonic() + timeout + EXEC_GRACE_SECONDS
        while self._process_status(process) not in _PROCESS_ENDED:
            if time.monotonic() >= deadline:
                raise OperationTimeout(f"guest command {exe!r} did not finish within {timeout:g}s", timeout=timeout)
            reason = results.get(int(api.call("IProcess.waitForArray", process.waitForArray, wait_for,
                                              self._slice_ms())))  # fmt: skip
            if reason in ("StdOut", "WaitFlagNotSupported"):  # old Additions cannot signal output: poll both
                out += self._read(process, _STDOUT)
            if reason in ("StdErr", "WaitFlagNotSupported"):
                err += self._read(process, _STDERR)
        # VirtualBox serves no output once a process has ended; asking costs little and loses nothing.
        out += self._read(process, _STDOUT)
        err += self._read(process, _STDERR)
        return bytes(out), bytes(err)

    def _read(self, process: Any, handle: int) -> bytes:
        # A positive timeout: 0 would make IProcess.read wait forever.
        data = self.api.call("IProcess.read", process.read, handle, CHUNK, self._slice_ms())
        return _octets(data)

    def _exit_code(self, process: Any, exe: str, timeout: float) -> int:
        """The exit code of an ended process; what ended it otherwise, as an exception."""
        status = self._process_status(process)
        if status == "TerminatedNormally":
            return int(process.exitCode)
        if status == "TerminatedSignal":  # exitCode then holds the signal number: report it as a shell would
            return 128 + int(process.exitCode)
        if status in ("TimedOutKilled", "TimedOutAbnormally"):
            raise OperationTimeout(f"guest command {exe!r} did not finish within {timeout:g}s", timeout=timeout)
        if status == "Down":
            raise GuestAgentUnavailable(f"the guest session went down while {exe!r} ran (guest rebooting?)")
        raise GuestError(f"guest command {exe!r} ended abnormally (process status {status})")

    def _terminate(self, process: Any) -> None:
        """Best effort: kill a process we stop waiting for."""
        try:
            if self._process_status(process) not in _PROCESS_ENDED:
                process.terminate()
        except Exception as exc:  # noqa: BLE001 - the error being raised matters more
            log.debug("terminating a guest process failed: %s", exc)

    # -- guest files -------------------------------------------------------------------

    def guest_read_file(self, vm_id: str, path: str) -> bytes:
        """``fileExists``, then ``fileOpen(ReadOnly, OpenExisting)`` and ``IFile.read`` until the end."""
        api = self.api
        with self._guest_session(vm_id) as gsession:
            if not api.call("IGuestSession.fileExists", gsession.fileExists, path, True):
                raise GuestFileNotFound(f"no such file in the guest: {path!r}")
            handle = api.call("IGuestSession.fileOpen", gsession.fileOpen, path, api.constant("FileAccessMode",
                              "ReadOnly"), api.constant("FileOpenAction", "OpenExisting"), 0)  # fmt: skip
            try:
                data = bytearray()
                while chunk := _octets(api.call("IFile.read", handle.read, CHUNK, FILE_IO_MS)):
                    data += chunk
            finally:
                self._close_file(handle, path)
        return bytes(data)

    def guest_write_file(self, vm_id: str, path: str, data: bytes) -> None:
        """``fileOpen(WriteOnly, CreateOrReplace, 0644)`` and ``IFile.write`` until every byte is taken."""
        api = self.api
        with self._guest_session(vm_id) as gsession:
            handle = api.call("IGuestSession.fileOpen", gsession.fileOpen, path, api.constant("FileAccessMode",
                              "WriteOnly"), api.constant("FileOpenAction", "CreateOrReplace"), 0o644)  # fmt: skip
            try:
                self._write_all(handle, path, data)
            except BaseException:
                self._close_file(handle, path)
                raise
            api.call("IFile.close", handle.close)  # a failed close may have lost data: not best effort here

    def _write_all(self, handle: Any, path: str, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = int(self.api.call("IFile.write", handle.write, bytes(view[:CHUNK]), FILE_IO_MS))
            if written <= 0:
                done = len(data) - len(view)
                raise GuestError(f"the guest accepted no more data for {path!r} after {done} bytes")
            view = view[written:]

    def _close_file(self, handle: Any, path: str) -> None:
        try:
            handle.close()
        except Exception as exc:  # noqa: BLE001 - never mask the operation's own result
            log.debug("closing guest file %s failed: %s", path, exc)

    # -- reboot ------------------------------------------------------------------------

    def reboot(self, vm_id: str) -> None:
        """Run the guest's reboot command through Guest Additions, as the VBoxManage transport does."""
        machine = self._machine(vm_id)
        check_transition("reboot", power_state(self._state(machine)), str(machine.name))
        argv = _REBOOT_WINDOWS if self._guest_is_windows(vm_id) else _REBOOT_POSIX
        result = self.guest_exec(vm_id, argv, stdin=None, timeout=60, env={})
        if result.exit_code != 0:
            raise GuestError(f"the guest refused to reboot (exit {result.exit_code}): {result.stderr.strip()[:200]}")

    # -- console -----------------------------------------------------------------------

    def console(self, vm_id: str) -> ConsoleInfo:
        """VRDE (RDP): address and port from ``IMachine.VRDEServer`` / ``VRDEServerInfo``, the generated password."""
        api = self.api
        machine = self._machine(vm_id)
        vrde = api.call("IMachine.VRDEServer", lambda: machine.VRDEServer)
        if not api.call("IVRDEServer.enabled", lambda: vrde.enabled):
            raise InvalidState(
                f"VRDE is disabled on VM {machine.name!r} (VBoxManage modifyvm <vm> --vrde on)", operation="console"
            )
        address = str(api.call("IVRDEServer.getVRDEProperty", vrde.getVRDEProperty, "TCP/Address"))
        ports = str(api.call("IVRDEServer.getVRDEProperty", vrde.getVRDEProperty, "TCP/Ports"))
        port = self._vrde_port(machine) or first_port(ports)
        password = None
        if int(api.call("IVRDEServer.authType", lambda: vrde.authType)) != api.constant("AuthType", "Null"):
            stored = str(api.call("IMachine.getExtraData", machine.getExtraData, VRDE_PASSWORD_KEY))
            password = Secret(stored) if stored else None
        return vrde_console_info(address, port, password)

    def _vrde_port(self, machine: Any) -> int | None:
        """The port the running VM's VRDE server listens on (``None``: not running, not started, or failed)."""
        if not is_online(self._state(machine)):
            return None
        with self.api.session(machine, LOCK_SHARED) as session:
            console = self.api.call("ISession.console", lambda: session.console)
            if console is None:
                return None
            port = int(self.api.call("IVRDEServerInfo.port", lambda: console.VRDEServerInfo.port))
        return port if port > 0 else None  # -1: not started yet, 0: could not bind

    def _setup_vrde(self, mutable: Any, spec: VMSpec) -> None:
        """At create, on ``session.machine``: VRDE as the VBoxManage transport sets it (unless ``graphics="none"``).

        127.0.0.1, ports 5000-5099, external authentication through VBoxAuthSimple with user
        ``virtabstract`` and a generated password (its SHA-256 in ``VBoxAuthSimple/users/…``,
        the password itself in the extradata :meth:`console` returns it from).
        """
        if spec.graphics == "none":
            return
        api = self.api
        vrde = api.call("IMachine.VRDEServer", lambda: mutable.VRDEServer)
        api.call("IVRDEServer.enabled", setattr, vrde, "enabled", True)
        api.call("IVRDEServer.setVRDEProperty", vrde.setVRDEProperty, "TCP/Address", "127.0.0.1")
        api.call("IVRDEServer.setVRDEProperty", vrde.setVRDEProperty, "TCP/Ports", "5000-5099")
        api.call("IVRDEServer.authType", setattr, vrde, "authType", api.constant("AuthType", "External"))
        api.call("IVRDEServer.authLibrary", setattr, vrde, "authLibrary", "VBoxAuthSimple")
        password = secrets.token_urlsafe(12)
        digest = hashlib.sha256(password.encode()).hexdigest()
        api.call("IMachine.setExtraData", mutable.setExtraData, f"VBoxAuthSimple/users/{VRDE_USER}", digest)
        api.call("IMachine.setExtraData", mutable.setExtraData, VRDE_PASSWORD_KEY, password)
