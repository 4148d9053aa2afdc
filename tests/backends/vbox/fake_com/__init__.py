"""A fake ``vboxapi`` / VirtualBox COM layer with version profiles 6.1, 7.0, 7.1 and 7.2.

``make_vboxapi(profile, machine_folder)`` returns a module-like object with a
``VirtualBoxManager`` class, shaped like the SDK's ``vboxapi`` (what pyvbox's
``virtualbox.import_vboxapi()`` returns). Everything below reproduces VirtualBox's
documented Main API behaviour (SDK reference and Main/src-server sources), not a
real VirtualBox (none can be installed here):

* Profiles are ordered (:func:`~..fake_vboxmanage.since`): a profile keeps what an
  earlier one introduced. 7.2 introduces nothing modelled here: its ``VirtualBox.xidl``
  has 7.1's ``createMachine``, ``MachineState``, ``processCreate``, ``fileOpen``,
  ``firmwareSettings``, ``AdditionsRunLevelType`` and ``NetworkAttachmentType``, and its
  SDK change log lists only removed 2D-video attributes; it differs from 7.1 in its
  version, revision and ``APIVersion`` (``7_2``).
* ``IVirtualBox.createMachine`` arity: 5 parameters in 6.1, 8 in 7.0 (cipher,
  password id, password), 9 from 7.1 on (platform architecture after the name);
  a wrong count raises :class:`TypeError`, as the generated proxies do.
* ``MachineState`` numbering per version (7.0 inserted ``AbortedSaved`` = 5, every
  later value shifted by one); ``IMachine.state`` returns the version's number.
* The machine state machine with observable transient states (``Starting``,
  ``Restoring``, ``Stopping``, ``Saving``, ``Snapshotting``/``LiveSnapshotting``,
  ``RestoringSnapshot``, ``DeletingSnapshot``/``DeletingSnapshotOnline``) that
  last while their IProgress runs.
* Session locks: a second ``Write`` lock fails with VBOX_E_INVALID_OBJECT_STATE; a
  ``Shared`` lock on a locked machine links to the holder (on an unlocked machine it
  is a write lock); unlocking the primary unlocks the linked sessions; unlocking is
  asynchronous (the session reads ``Unlocking`` for a few polls, and the machine
  cannot be locked again meanwhile); a VM process holds the primary lock while the
  VM runs, and the linked sessions are unlocked when it ends.
* The mutable-copy model: a registered ``IMachine`` is read-only (setting an
  attribute fails with VBOX_E_INVALID_VM_STATE "The machine is not mutable");
  ``session.machine`` is a copy whose changes become visible only after
  ``saveSettings()`` and are discarded by ``discardSettings()`` or an unlock.
* ``IProgress``: several operations, advancing one step per
  ``waitForCompletion(ms)`` call (which returns normally when the work is not done:
  a timeout is not an error), ``percent``/``operation``/``operationDescription``,
  failure through ``resultCode`` and ``errorInfo``, ``cancel()``.
* Errors: :class:`COMError` with a signed ``errno`` (as XPCOM reports HRESULTs) and
  ``msg``; the manager's ``xcptGetResult``/``xcptGetMessage`` read them.

Clones, media, network adapters, host networks, firmware, the CPU cap and discarding a
saved state are in :mod:`.machine` (mixins of the classes here). Guest Additions (IGuest,
guest sessions, processes and files, guest properties) and VRDE are in :mod:`.guest`.

Fault knobs on :class:`FakeServer`: ``fail_next[operation] = (code_name, text)`` makes
the next progress of that operation fail; ``stuck = {operation}`` makes its progress
never finish; ``ignore_acpi`` makes the guest ignore the power button.
"""

from __future__ import annotations

import time
import types
import uuid as uuidlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..fake_vboxmanage import ostypes, since
from .machine import (
    CloneSourceMixin,
    HostNetworkMixin,
    MachineViewMixin,
    MediumMixin,
    NATNetworksMixin,
    NetworkAdapter,
    SessionMachineMixin,
    SnapshotMixin,
    capture_hardware,
    check_port,
    machine_enums,
    multi_merge_error,
    new_controller,
)

VERSIONS = {"6.1": ("6.1.50", 161033), "7.0": ("7.0.20", 163906), "7.1": ("7.1.4", 165100), "7.2": ("7.2.4", 170995)}
CREATE_MACHINE_ARITY = {"6.1": 5, "7.0": 8, "7.1": 9, "7.2": 9}

HRESULTS = {
    "VBOX_E_OBJECT_NOT_FOUND": 0x80BB0001,
    "VBOX_E_INVALID_VM_STATE": 0x80BB0002,
    "VBOX_E_VM_ERROR": 0x80BB0003,
    "VBOX_E_FILE_ERROR": 0x80BB0004,
    "VBOX_E_IPRT_ERROR": 0x80BB0005,
    "VBOX_E_INVALID_OBJECT_STATE": 0x80BB0007,
    "VBOX_E_NOT_SUPPORTED": 0x80BB0009,
    "VBOX_E_INVALID_SESSION_STATE": 0x80BB000B,
    "VBOX_E_OBJECT_IN_USE": 0x80BB000C,
    "VBOX_E_GSTCTL_GUEST_ERROR": 0x80BB000F,
    "E_INVALIDARG": 0x80070057,
    "E_ACCESSDENIED": 0x80070005,
    "E_FAIL": 0x80004005,
    "E_NOTIMPL": 0x80004001,
    "E_UNEXPECTED": 0x8000FFFF,
}

_STATES_61 = [
    "Null",
    "PoweredOff",
    "Saved",
    "Teleported",
    "Aborted",
    "Running",
    "Paused",
    "Stuck",
    "Teleporting",
    "LiveSnapshotting",
    "Starting",
    "Stopping",
    "Saving",
    "Restoring",
    "TeleportingPausedVM",
    "TeleportingIn",
    "DeletingSnapshotOnline",
    "DeletingSnapshotPaused",
    "OnlineSnapshotting",
    "RestoringSnapshot",
    "DeletingSnapshot",
    "SettingUp",
    "Snapshotting",
]
_STATES_7 = [*_STATES_61[:5], "AbortedSaved", *_STATES_61[5:]]
SESSION_STATES = ["Null", "Unlocked", "Locked", "Spawning", "Unlocking"]
SESSION_TYPES = ["Null", "WriteLock", "Remote", "Shared"]
LOCK_TYPES = ["Null", "Shared", "Write", "VM"]
_ONLINE = {
    "Running",
    "Paused",
    "Stuck",
    "LiveSnapshotting",
    "OnlineSnapshotting",
    "DeletingSnapshotOnline",
    "DeletingSnapshotPaused",
    "Starting",
    "Stopping",
    "Saving",
    "Restoring",
}
_MUTABLE = {"PoweredOff", "Aborted", "Teleported"}
UNLOCK_POLLS = 2
"""How many ``session.state`` reads an unlock stays ``Unlocking``."""
STEPS_PER_OPERATION = 2
"""How many ``waitForCompletion`` calls one progress operation takes."""


def machine_states(profile: str) -> list[str]:
    """The MachineState enum of *profile*, index == value."""
    return list(_STATES_7 if since(profile, "7.0") else _STATES_61)


class COMError(Exception):
    """A failed COM call: ``errno`` is the HRESULT as XPCOM reports it (a signed 32-bit int)."""

    def __init__(self, code_name: str, msg: str) -> None:
        code = HRESULTS[code_name]
        super().__init__(code - (1 << 32), msg)
        self.errno = code - (1 << 32)
        self.msg = msg
        self.code_name = code_name


def _err(code_name: str, msg: str) -> COMError:
    return COMError(code_name, msg)


class Constants:
    """``manager.constants``: ``MachineState_Running``… with the numbers of the profile."""

    def __init__(self, profile: str) -> None:
        self._enums: dict[str, dict[str, int]] = {
            "MachineState": {n: i for i, n in enumerate(machine_states(profile))},
            "SessionState": {n: i for i, n in enumerate(SESSION_STATES)},
            "SessionType": {n: i for i, n in enumerate(SESSION_TYPES)},
            "LockType": {n: i for i, n in enumerate(LOCK_TYPES)},
            "CleanupMode": {
                "UnregisterOnly": 1,
                "DetachAllReturnNone": 2,
                "DetachAllReturnHardDisksOnly": 3,
                "Full": 4,
            },
            "StorageBus": {
                "Null": 0,
                "IDE": 1,
                "SATA": 2,
                "SCSI": 3,
                "Floppy": 4,
                "SAS": 5,
                "USB": 6,
                "PCIe": 7,
                "VirtioSCSI": 8,
            },
            "DeviceType": {"Null": 0, "Floppy": 1, "DVD": 2, "HardDisk": 3, "Network": 4},
            "AccessMode": {"ReadOnly": 1, "ReadWrite": 2},
            "NetworkAttachmentType": {"Null": 0, "NAT": 1, "Bridged": 2, "Internal": 3, "HostOnly": 4},
            "MediumVariant": {"Standard": 0, "Fixed": 0x10000},
            "PlatformArchitecture": {"None": 0, "x86": 1, "ARM": 2},
        }
        self._enums.update(machine_enums(profile))
        from .guest import GUEST_ENUMS  # late: guest.py builds on this module

        self._enums.update(GUEST_ENUMS)
        for enum, values in self._enums.items():
            for name, value in values.items():
                setattr(self, f"{enum}_{name}", value)

    def all_values(self, enum: str) -> dict[str, int]:
        """``{name: value}`` of one enum (vboxapi's ``constants.all_values``)."""
        return dict(self._enums[enum])


# -- IProgress -------------------------------------------------------------------------------


class FakeErrorInfo:
    """IVirtualBoxErrorInfo."""

    def __init__(self, code_name: str, text: str) -> None:
        self.resultCode = HRESULTS[code_name] - (1 << 32)
        self.text = text
        self.component = "SessionMachine"
        self.interfaceID = "{00000000-0000-0000-0000-000000000000}"
        self.next = None


class FakeProgress:
    """IProgress over several operations; one step per ``waitForCompletion`` call."""

    def __init__(
        self,
        server: FakeServer,
        operation: str,
        descriptions: list[str],
        on_done: Callable[[], None] | None = None,
        on_fail: Callable[[], None] | None = None,
        cancelable: bool = True,
    ) -> None:
        self.server = server
        self.kind = operation
        self.descriptions = descriptions
        self.operationCount = len(descriptions)
        self._total = STEPS_PER_OPERATION * len(descriptions)
        self._step = 0
        self._on_done, self._on_fail = on_done, on_fail
        self.cancelable = cancelable
        self.canceled = False
        self._completed = False
        self._result = 0
        self.errorInfo: FakeErrorInfo | None = None
        self._failure = server.fail_next.pop(operation, None)
        self._stuck = operation in server.stuck
        self.waits = 0
        server.progresses.append(self)

    @property
    def completed(self) -> bool:
        """True once finished (done, failed or canceled)."""
        return self._completed

    @property
    def percent(self) -> int:
        """Overall percent done."""
        return 100 if self._completed else int(100 * self._step / self._total)

    @property
    def operation(self) -> int:
        """Index of the running operation."""
        return min(self._step // STEPS_PER_OPERATION, self.operationCount - 1)

    @property
    def operationDescription(self) -> str:
        """Description of the running operation."""
        return self.descriptions[self.operation]

    @property
    def resultCode(self) -> int:
        """0 on success, the failure HRESULT; unavailable while running (E_FAIL, as VirtualBox)."""
        if not self._completed:
            raise _err("E_FAIL", "Result code is not available, operation is still in progress")
        return self._result

    def waitForCompletion(self, timeout: int) -> None:
        """Advance one step (all steps for ``-1``); return normally whether or not the work is done."""
        self.waits += 1
        if self._completed:
            return
        if self._stuck:
            time.sleep(min(max(timeout, 0), 50) / 1000)  # waits its slice, as the real call does, then times out
            return
        steps = self._total if timeout < 0 else 1
        for _ in range(steps):
            self._step += 1
            if self._step >= self._total:
                self._finish()
                return

    def _finish(self) -> None:
        self._completed = True
        if self._failure is not None:
            code_name, text = self._failure
            self._result = HRESULTS[code_name] - (1 << 32)
            self.errorInfo = FakeErrorInfo(code_name, text)
            if self._on_fail:
                self._on_fail()
        elif self._on_done:
            self._on_done()

    def cancel(self) -> None:
        """Cancel (VBOX_E_INVALID_OBJECT_STATE when not cancelable); result E_FAIL, state rolled back."""
        if not self.cancelable:
            raise _err("VBOX_E_INVALID_OBJECT_STATE", "Operation cannot be canceled")
        if self._completed:
            return
        self.canceled = True
        self._completed = True
        self._result = HRESULTS["E_FAIL"] - (1 << 32)
        self.errorInfo = FakeErrorInfo("E_FAIL", "Operation was canceled by the user")
        if self._on_fail:
            self._on_fail()


def _done(server: FakeServer, operation: str, func: Callable[[], None]) -> FakeProgress:
    """A one-operation progress that applies *func* at once (for operations VirtualBox runs synchronously)."""
    progress = FakeProgress(server, operation, [operation], on_done=func)
    progress.waitForCompletion(-1)
    return progress


# -- machines --------------------------------------------------------------------------------


def _new_data(name: str, ostype: str, settings: str) -> dict[str, Any]:
    return {
        "id": str(uuidlib.uuid4()),
        "name": name,
        "OSTypeId": ostype,
        "settingsFilePath": settings,
        "CPUCount": 1,
        "memorySize": 128,
        "description": "",
        "groups": ["/"],
        "CPUExecutionCap": 100,
        "firmware": "BIOS",
        "controllers": {},
        "attachments": [],
        "extradata": {},
        "adapters": [
            {
                "enabled": i == 0,
                "attachmentType": "NAT" if i == 0 else "Null",
                "MACAddress": "080027" + uuidlib.uuid4().hex[:6].upper(),
                "adapterType": 1,
                "cableConnected": True,
            }
            for i in range(8)
        ],
    }


_CONFIG_KEYS = ("CPUCount", "memorySize", "description", "groups", "CPUExecutionCap")


class FakeSnapshot(SnapshotMixin):
    """ISnapshot."""

    def __init__(self, machine: FakeMachine, name: str, description: str, online: bool) -> None:
        self.id = str(uuidlib.uuid4())
        self.name = name
        self.description = description
        self.online = online
        self.parent: FakeSnapshot | None = machine._current
        self.children: list[FakeSnapshot] = []
        self.config = {k: _copy(machine._data[k]) for k in _CONFIG_KEYS}
        self.timeStamp = 0
        capture_hardware(self, machine)


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


class _MachineView(MachineViewMixin):
    """Shared attribute plumbing of IMachine and the session's mutable copy."""

    _server: FakeServer
    _machine: FakeMachine

    def _read(self, key: str) -> Any:
        return self._machine._data[key]

    def _write(self, key: str, value: Any) -> None:
        raise NotImplementedError

    def _check_mutable(self, what: str) -> None:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        machine = self._machine
        if name == "state":
            return machine._server.state_number(machine._state)
        if name == "sessionState":
            return SESSION_STATES.index(machine._lock_state())
        if name in ("snapshotCount",):
            return len(machine._snapshots)
        if name == "currentSnapshot":
            return machine._current
        if name == "accessible":
            return True
        if name == "mediumAttachments":
            return [types.SimpleNamespace(**a) for a in self._read("attachments")]
        if name == "storageControllers":
            return [
                types.SimpleNamespace(name=n, bus=c["bus"], portCount=c["ports"])
                for n, c in self._read("controllers").items()
            ]
        if name == "VRDEServer":
            from .guest import FakeVRDEServer  # late: guest.py builds on this module

            return FakeVRDEServer(self)
        if name in machine._data:
            return _copy(self._read(name))
        return self._extra_attribute(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if self._set_extra_attribute(name, value):
            return
        if name not in _CONFIG_KEYS and name not in ("name", "OSTypeId"):
            raise AttributeError(f"attribute {name} is read-only")
        self._check_mutable(name)
        self._write(name, _copy(value))

    def getNetworkAdapter(self, slot: int) -> NetworkAdapter:
        """INetworkAdapter of *slot* (0-7)."""
        if not 0 <= slot < 8:
            raise _err("E_INVALIDARG", f"Invalid slot number: {slot}")
        return NetworkAdapter(self, slot)

    def getExtraData(self, key: str) -> str:
        """Extradata value, ``""`` when unset."""
        return str(self._machine._data["extradata"].get(key, ""))

    def enumerateGuestProperties(self, patterns: str) -> tuple[list[str], list[str], list[int], list[str]]:
        """``(names, values, timestamps, flags)`` of the guest properties matching *patterns* (:mod:`.guest`)."""
        from .guest import guest_os

        return guest_os(self._machine).enumerate(patterns)

    def getGuestPropertyValue(self, name: str) -> str:
        """One guest property, ``""`` when unset."""
        from .guest import guest_os

        return guest_os(self._machine).properties().get(name, "")

    def findSnapshot(self, name_or_id: str) -> FakeSnapshot:
        """By UUID or name (``""``: the root)."""
        machine = self._machine
        for snap in machine._snapshots:
            if name_or_id.lower().strip("{}") == snap.id or name_or_id == snap.name:
                return snap
        if not name_or_id and machine._snapshots:
            return next(s for s in machine._snapshots if s.parent is None)
        raise _err("VBOX_E_OBJECT_NOT_FOUND", f"Could not find a snapshot with UUID {{{name_or_id}}}")


class FakeMachine(CloneSourceMixin, _MachineView):
    """IMachine: the registered machine, read-only unless not registered yet."""

    def __init__(self, server: FakeServer, data: dict[str, Any]) -> None:
        self._server = server
        self._machine = self
        self._data = data
        self._state = "PoweredOff"
        self._registered = False
        self._snapshots: list[FakeSnapshot] = []
        self._current: FakeSnapshot | None = None
        self._primary: FakeSession | None = None  # the session (ours or the VM process's) holding the lock
        self._vm_process = False
        self._unlocking = 0
        self._linked: list[FakeSession] = []
        self._acpi_pending = False
        object.__setattr__(self, "transitions", ["PoweredOff"])  # every state entered, transient ones too

    # -- internal state ------------------------------------------------------------

    def _set_state(self, name: str) -> None:
        self._state = name
        self.transitions.append(name)

    def _lock_state(self) -> str:
        if self._unlocking:
            self._unlocking -= 1
            return "Unlocking"
        if self._vm_process and self._state == "Starting":
            return "Spawning" if self._primary is None else "Locked"
        return "Locked" if (self._primary is not None or self._vm_process) else "Unlocked"

    def _read(self, key: str) -> Any:
        if key != "state" and self._acpi_pending:
            self._complete_acpi()
        return self._data[key]

    def __getattr__(self, name: str) -> Any:
        if name == "state" and self._acpi_pending:
            self._complete_acpi()
        return super().__getattr__(name)

    def _complete_acpi(self) -> None:
        self._acpi_pending = False
        self._end_vm_process("PoweredOff")

    def _write(self, key: str, value: Any) -> None:
        self._data[key] = value

    def _check_mutable(self, what: str) -> None:
        if self._registered:
            raise _err("VBOX_E_INVALID_VM_STATE", f"The machine is not mutable (state is {self._state})")

    def _end_vm_process(self, final: str) -> None:
        """The VM process exits: its lock goes, and every session linked to it is unlocked."""
        self._vm_process = False
        self._set_state(final)
        for session in self._linked:
            session._force_unlocked()
        self._linked = []
        self._primary = None

    # -- IMachine methods ----------------------------------------------------------

    def saveSettings(self) -> None:
        """Allowed on an unregistered machine (before registerMachine)."""
        self._check_mutable("settings")
        Path(self._data["settingsFilePath"]).parent.mkdir(parents=True, exist_ok=True)
        Path(self._data["settingsFilePath"]).write_text("<VirtualBox/>")

    def lockMachine(self, session: FakeSession, lock_type: int) -> None:
        """Write: exclusive; Shared: links to the holder, or is a write lock on an unlocked machine."""
        kind = LOCK_TYPES[lock_type]
        if not self._registered:
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Cannot lock an unregistered machine '{self._data['name']}'")
        if session._state != "Unlocked":
            raise _err("VBOX_E_INVALID_OBJECT_STATE", "The given session is busy")
        held = self._lock_state()
        if held in ("Unlocking", "Spawning"):
            raise _err(
                "VBOX_E_INVALID_OBJECT_STATE",
                f"The machine '{self._data['name']}' is already locked by a session (or being locked or unlocked)",
            )
        if held == "Locked":
            if kind != "Shared":
                raise _err(
                    "VBOX_E_INVALID_OBJECT_STATE",
                    f"The machine '{self._data['name']}' is already locked for a session (or being unlocked)",
                )
            session._link(self)
            self._linked.append(session)
            return
        session._lock_primary(self)
        self._primary = session

    def launchVMProcess(self, session: FakeSession, kind: str, environment: Any) -> FakeProgress:
        """Start the VM in a new process; *session* becomes a remote session linked to it."""
        if not isinstance(environment, list):
            raise TypeError("environmentChanges is a string array since VirtualBox 6.0")
        if session._state != "Unlocked":
            raise _err("VBOX_E_INVALID_OBJECT_STATE", "The given session is busy")
        if self._lock_state() != "Unlocked":
            raise _err(
                "VBOX_E_INVALID_OBJECT_STATE",
                f"The machine '{self._data['name']}' is already locked by a session (or being locked or unlocked)",
            )
        allowed = {"PoweredOff", "Saved", "Aborted", "Teleported", "AbortedSaved"}
        if self._state not in allowed:
            raise _err("VBOX_E_INVALID_VM_STATE", f"Invalid machine state: {self._state}")
        restoring = self._state == "Saved"
        if self._state == "AbortedSaved":
            self._state = "PoweredOff"  # the broken saved state is discarded
        self._vm_process = True
        self._set_state("Restoring" if restoring else "Starting")
        session._state = "Spawning"
        session._machine = self
        session._type = "Remote"

        def done() -> None:
            self._set_state("Running")
            session._state = "Locked"
            self._linked.append(session)

        def failed() -> None:
            self._vm_process = False
            self._set_state("Saved" if restoring else "PoweredOff")
            session._state = "Unlocked"

        return FakeProgress(
            self._server, "launchVMProcess", ["Creating process for virtual machine", "Powering on"], done, failed
        )

    def unregister(self, cleanup_mode: int) -> list[Any]:
        """Unregister; with a DetachAll mode snapshots are deleted too and hard disks returned."""
        modes = {v: k for k, v in self._server.constants.all_values("CleanupMode").items()}
        mode = modes.get(cleanup_mode, "UnregisterOnly")
        if self._lock_state() != "Unlocked":
            raise _err(
                "VBOX_E_INVALID_OBJECT_STATE",
                f"Cannot unregister the machine '{self._data['name']}' while it is locked",
            )
        if self._snapshots and mode == "UnregisterOnly":
            raise _err(
                "VBOX_E_INVALID_OBJECT_STATE",
                f"Cannot unregister the machine '{self._data['name']}' because it has {len(self._snapshots)} snapshots",
            )
        media = []
        if mode != "UnregisterOnly":
            for att in self._data["attachments"]:
                if att["medium"] is not None and att["type"] == 3:
                    media.append(att["medium"])
            self._data["attachments"] = []
            self._snapshots = []
            self._current = None
        self._server.machines.remove(self)
        self._registered = False
        return media if mode in ("DetachAllReturnHardDisksOnly", "Full") else []

    def deleteConfig(self, media: list[Any]) -> FakeProgress:
        """Delete the given media in order, then the settings files (``Machine::i_deleteConfigHandler``).

        A medium that still has children stops the task there: the progress fails with
        ``i_canClose``'s error, the media before it are gone and the settings file stays.
        """
        if self._registered:
            raise _err("VBOX_E_INVALID_VM_STATE", "Cannot delete settings of a registered machine")
        deletable, refusal = _deletable_prefix(media)
        if refusal is not None:
            self._server.fail_next.setdefault("deleteConfig", ("VBOX_E_OBJECT_IN_USE", str(refusal.msg)))

        def done() -> None:
            for medium in media:
                medium._delete()
            Path(self._data["settingsFilePath"]).unlink(missing_ok=True)

        def failed() -> None:
            for medium in deletable:
                medium._delete()

        return FakeProgress(self._server, "deleteConfig", ["Deleting files"], done, failed)


def _deletable_prefix(media: list[Any]) -> tuple[list[Any], Any]:
    """The media deleting *media* in order gets through, and the error of the first it cannot delete (or None)."""
    deleted: list[Any] = []
    for medium in media:
        error = medium._close_error(ignoring=deleted)
        if error is not None:
            return deleted, error
        deleted.append(medium)
    return deleted, None


class SessionMachine(SessionMachineMixin, _MachineView):
    """``session.machine``: a mutable copy; changes land in the IMachine only on ``saveSettings()``."""

    def __init__(self, session: FakeSession, machine: FakeMachine) -> None:
        self._server = machine._server
        self._machine = machine
        self._session = session
        self._pending: dict[str, Any] = {}

    def _check_session(self) -> None:
        if self._session._state != "Locked" or self._session._machine is not self._machine:
            raise _err("E_UNEXPECTED", "The session is not locked (session state: Unlocked)")

    def _read(self, key: str) -> Any:
        self._check_session()
        return self._pending.get(key, self._machine._data[key])

    def _write(self, key: str, value: Any) -> None:
        self._pending[key] = value

    def _check_mutable(self, what: str) -> None:
        self._check_session()
        state = self._machine._state
        if what == "CPUExecutionCap" and state in ("Running", "Paused"):
            return  # changeable at runtime
        if state not in _MUTABLE:
            raise _err("VBOX_E_INVALID_VM_STATE", f"The machine is not mutable (state is {state})")

    def saveSettings(self) -> None:
        """Commit the pending changes to the machine."""
        self._check_session()
        self._machine._data.update(self._pending)
        self._pending = {}

    def discardSettings(self) -> None:
        """Drop the pending changes."""
        self._pending = {}

    def setExtraData(self, key: str, value: str) -> None:
        """Extradata is saved at once (no saveSettings needed)."""
        self._check_session()
        if value:
            self._machine._data["extradata"][key] = value
        else:
            self._machine._data["extradata"].pop(key, None)

    def addStorageController(self, name: str, bus: int) -> Any:
        """Add a controller (machine must be mutable)."""
        self._check_mutable("storage")
        controllers = dict(self._read("controllers"))
        if name in controllers:
            raise _err("VBOX_E_OBJECT_IN_USE", f"Storage controller named '{name}' already exists")
        controllers[name] = new_controller(bus)
        self._write("controllers", controllers)
        return types.SimpleNamespace(name=name, bus=bus)

    def attachDevice(self, controller: str, port: int, device: int, device_type: int, medium: Any) -> None:
        """Attach *medium* (``None``: an empty drive)."""
        self._check_mutable("storage")
        if controller not in self._read("controllers"):
            raise _err("VBOX_E_OBJECT_NOT_FOUND", f"Could not find a storage controller named '{controller}'")
        check_port(self, controller, port, device)
        atts = [
            a
            for a in self._read("attachments")
            if (a["controller"], a["port"], a["device"]) != (controller, port, device)
        ]
        atts.append({"controller": controller, "port": port, "device": device, "type": device_type, "medium": medium})
        self._write("attachments", atts)

    def detachDevice(self, controller: str, port: int, device: int) -> None:
        """Detach what is at the slot."""
        self._check_mutable("storage")
        atts = self._read("attachments")
        kept = [a for a in atts if (a["controller"], a["port"], a["device"]) != (controller, port, device)]
        if len(kept) == len(atts):
            raise _err(
                "VBOX_E_OBJECT_NOT_FOUND",
                f"No storage device attached to device slot {device} on port {port} of controller '{controller}'",
            )
        self._write("attachments", kept)

    def saveState(self) -> FakeProgress:
        """Save the running VM to disk; the VM process ends (the session is unlocked)."""
        self._check_session()
        machine = self._machine
        if machine._state not in ("Running", "Paused"):
            raise _err(
                "VBOX_E_INVALID_VM_STATE",
                f"Cannot save the execution state as the machine is not running or "
                f"paused (machine state: {machine._state})",
            )
        before = machine._state
        machine._set_state("Saving")
        return FakeProgress(
            self._server,
            "saveState",
            ["Saving the execution state"],
            lambda: machine._end_vm_process("Saved"),
            lambda: machine._set_state(before),
        )

    def takeSnapshot(self, name: str, description: str, pause: bool) -> tuple[FakeProgress, str]:
        """Take a snapshot (live when the VM runs); returns ``(progress, id)``."""
        self._check_session()
        machine = self._machine
        before = machine._state
        online = before in ("Running", "Paused")
        if before not in ("Running", "Paused", "PoweredOff", "Saved", "Aborted", "Teleported"):
            raise _err(
                "VBOX_E_INVALID_VM_STATE",
                f"Cannot take a snapshot of the machine while it is changing the state (machine state: {before})",
            )
        snap = FakeSnapshot(machine, name, description, online or before == "Saved")
        machine._set_state(("LiveSnapshotting" if not pause else "OnlineSnapshotting") if online else "Snapshotting")

        def done() -> None:
            if snap.parent is not None:
                snap.parent.children.append(snap)
            machine._snapshots.append(snap)
            machine._current = snap
            machine._set_state(before)

        return FakeProgress(
            self._server,
            "takeSnapshot",
            ["Taking a snapshot", "Saving the machine state"],
            done,
            lambda: machine._set_state(before),
        ), snap.id

    def restoreSnapshot(self, snapshot: FakeSnapshot) -> FakeProgress:
        """Restore (VM not running): config from the snapshot; Saved when it has memory."""
        self._check_session()
        machine = self._machine
        if machine._state in _ONLINE:
            raise _err(
                "VBOX_E_INVALID_VM_STATE",
                f"Cannot delete the current state of the running machine (machine state: {machine._state})",
            )
        before = machine._state
        machine._set_state("RestoringSnapshot")

        def done() -> None:
            for key, value in snapshot.config.items():
                machine._data[key] = _copy(value)
            self._pending = {}
            machine._current = snapshot
            machine._set_state("Saved" if snapshot.online else "PoweredOff")

        return FakeProgress(
            self._server,
            "restoreSnapshot",
            ["Restoring snapshot", "Restoring machine settings"],
            done,
            lambda: machine._set_state(before),
        )

    def deleteSnapshot(self, snapshot_id: str) -> FakeProgress:
        """Delete one snapshot (at most one child, which moves up)."""
        snap = self.findSnapshot(snapshot_id)
        machine = self._machine
        if len(snap.children) > 1:
            raise _err(
                "VBOX_E_INVALID_OBJECT_STATE",
                f"Snapshot '{snap.name}' of the machine "
                f"'{machine._data['name']}' has more than one child snapshot "
                f"({len(snap.children)})",
            )
        refusal = multi_merge_error(snap)
        if refusal is not None:
            self._server.fail_next.setdefault("deleteSnapshot", refusal)
        before = machine._state
        machine._set_state("DeletingSnapshotOnline" if before in ("Running", "Paused") else "DeletingSnapshot")

        def done() -> None:
            for child in snap.children:
                child.parent = snap.parent
                if snap.parent is not None:
                    snap.parent.children.append(child)
            if snap.parent is not None:
                snap.parent.children.remove(snap)
            if machine._current is snap:
                machine._current = snap.parent
            machine._snapshots.remove(snap)
            machine._set_state(before)

        return FakeProgress(
            self._server,
            "deleteSnapshot",
            ["Merging differencing image", "Deleting snapshot"],
            done,
            lambda: machine._set_state(before),
        )


class FakeConsole:
    """IConsole of the running VM (reached through a session linked to the VM process)."""

    def __init__(self, session: FakeSession, machine: FakeMachine) -> None:
        self._session = session
        self._machine = machine

    def _need(self, *states: str) -> FakeMachine:
        if self._session._state != "Locked":
            raise _err("E_UNEXPECTED", "The session is not locked (session state: Unlocked)")
        machine = self._machine
        if machine._state not in states:
            raise _err("VBOX_E_INVALID_VM_STATE", f"Invalid machine state: {machine._state}")
        return machine

    def powerDown(self) -> FakeProgress:
        """Hard power off (Stopping, then PoweredOff)."""
        machine = self._need("Running", "Paused", "Stuck", "LiveSnapshotting")
        machine._acpi_pending = False
        machine._set_state("Stopping")
        return FakeProgress(
            machine._server,
            "powerDown",
            ["Powering off"],
            lambda: machine._end_vm_process("PoweredOff"),
            cancelable=False,
        )

    def powerButton(self) -> None:
        """ACPI power button: the guest shuts down a moment later (unless it ignores ACPI)."""
        machine = self._need("Running")
        if not machine._server.ignore_acpi:
            machine._acpi_pending = True

    def reset(self) -> None:
        """Hard reset (the guest boots again)."""
        from .guest import guest_os

        self._need("Running")
        self._machine._server.resets += 1
        guest_os(self._machine).reboot()

    def pause(self) -> None:
        """Running → Paused."""
        self._need("Running")._set_state("Paused")

    def resume(self) -> None:
        """Paused → Running."""
        self._need("Paused")._set_state("Running")

    @property
    def guest(self) -> Any:
        """IGuest (:class:`.guest.FakeGuest`)."""
        from .guest import FakeGuest, guest_os

        return FakeGuest(guest_os(self._machine))

    @property
    def VRDEServerInfo(self) -> Any:
        """IVRDEServerInfo (:class:`.guest.FakeVRDEServerInfo`)."""
        from .guest import FakeVRDEServerInfo

        return FakeVRDEServerInfo(self._machine)


class FakeSession:
    """ISession."""

    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self._state = "Unlocked"
        self._unlock_polls = 0
        self._type = "Null"
        self._machine: FakeMachine | None = None
        self._session_machine: SessionMachine | None = None
        server.sessions.append(self)

    @property
    def state(self) -> int:
        """SessionState; an unlock reads ``Unlocking`` for a few polls first."""
        if self._state == "Unlocking":
            self._unlock_polls -= 1
            if self._unlock_polls <= 0:
                self._state = "Unlocked"
                return SESSION_STATES.index("Unlocking")
        return SESSION_STATES.index(self._state)

    @property
    def type(self) -> int:
        """SessionType."""
        return SESSION_TYPES.index(self._type)

    @property
    def machine(self) -> SessionMachine:
        """The mutable session machine (only while locked)."""
        if self._state != "Locked" or self._session_machine is None:
            raise _err("E_UNEXPECTED", f"The session is not locked (session state: {self._state})")
        return self._session_machine

    @property
    def console(self) -> FakeConsole | None:
        """The VM's console when a VM process runs (``None`` for an offline write lock)."""
        if self._state != "Locked":
            raise _err("E_UNEXPECTED", f"The session is not locked (session state: {self._state})")
        machine = self._machine
        if machine is None or not machine._vm_process:
            return None
        return FakeConsole(self, machine)

    def _lock_primary(self, machine: FakeMachine) -> None:
        self._state, self._type, self._machine = "Locked", "WriteLock", machine
        self._session_machine = SessionMachine(self, machine)

    def _link(self, machine: FakeMachine) -> None:
        self._state, self._type, self._machine = "Locked", "Shared", machine
        self._session_machine = SessionMachine(self, machine)

    def _force_unlocked(self) -> None:
        if self._state == "Locked":
            self._state = "Unlocked"
            self._machine = None
            self._session_machine = None

    def unlockMachine(self) -> None:
        """Asynchronous: Unlocking for a few polls; a primary unlock unlocks the linked sessions."""
        if self._state != "Locked":
            raise _err("E_UNEXPECTED", f"The session is not locked (session state: {self._state})")
        machine = self._machine
        assert machine is not None
        if self._session_machine is not None:
            self._session_machine.discardSettings()
        self._state = "Unlocking"
        self._unlock_polls = UNLOCK_POLLS
        self._session_machine = None
        self._machine = None
        self._server.unlocks += 1
        if machine._primary is self:
            machine._primary = None
            machine._unlocking = UNLOCK_POLLS
            for linked in machine._linked:
                linked._force_unlocked()
            machine._linked = []
        elif self in machine._linked:
            machine._linked.remove(self)


# -- media, host, IVirtualBox ---------------------------------------------------------------


class FakeMedium(MediumMixin):
    """IMedium (a VDI)."""

    def __init__(self, server: FakeServer, location: str, device_type: int) -> None:
        self._server = server
        self.id = str(uuidlib.uuid4())
        self.location = location
        self.format = "VDI"
        self.logicalSize = 0
        self.deviceType = device_type
        self.parent = None
        self.variant = [0]
        self._base_snapshot: Any = None  # a linked clone's disk: the snapshot it was made from

    def createBaseStorage(self, logical_size: int, variant: list[int]) -> FakeProgress:
        """Create the image file."""
        if Path(self.location).exists():
            raise _err(
                "VBOX_E_FILE_ERROR",
                f"Could not create the medium storage unit '{self.location}'. "
                f"VDI: cannot create image '{self.location}' (VERR_ALREADY_EXISTS)",
            )

        def done() -> None:
            Path(self.location).parent.mkdir(parents=True, exist_ok=True)
            Path(self.location).write_bytes(b"<<< Oracle VM VirtualBox Disk Image >>>\n")
            self.logicalSize = logical_size
            self.variant = list(variant)
            self._server.media.append(self)

        return FakeProgress(self._server, "createBaseStorage", ["Creating medium storage unit"], done)

    def _delete(self) -> None:
        Path(self.location).unlink(missing_ok=True)
        if self in self._server.media:
            self._server.media.remove(self)

    def deleteStorage(self) -> FakeProgress:
        """Delete the file (refused while a machine uses the medium or differencing children hang off it)."""
        users = self.machineIds
        if users:
            raise _err(
                "VBOX_E_OBJECT_IN_USE",
                f"Cannot delete storage: medium '{self.location}' is still attached to the following {len(users)} "
                f"virtual machine(s): {', '.join(users)}",
            )
        error = self._close_error()
        if error is not None:
            raise error
        return _done(self._server, "deleteStorage", self._delete)

    def close(self) -> None:
        """Forget the medium (the file stays); refused while a machine uses it or it has children (``i_close``)."""
        users = self.machineIds
        if users:
            raise _err(
                "VBOX_E_OBJECT_IN_USE",
                f"Medium '{self.location}' cannot be closed because it is still attached to {len(users)} virtual "
                "machines",
            )
        error = self._close_error()
        if error is not None:
            raise error
        if self in self._server.media:
            self._server.media.remove(self)


class FakeHost(HostNetworkMixin):
    """IHost."""

    processorCount = 4
    processorOnlineCount = 4
    memorySize = 16000
    memoryAvailable = 9000
    operatingSystem = "Linux"
    OSVersion = "6.1.0-18-amd64"

    def getProcessorSpeed(self, cpu: int) -> int:
        """MHz."""
        return 2000

    def getProcessorDescription(self, cpu: int) -> str:
        """Model string."""
        return "Fake(R) CPU @ 2.00GHz"


class FakeVirtualBox(NATNetworksMixin):
    """IVirtualBox."""

    def __init__(self, server: FakeServer) -> None:
        self._server = server
        version, revision = VERSIONS[server.profile]
        self.version = version
        self.versionNormalized = version
        self.revision = revision
        self.APIVersion = server.profile.replace(".", "_")
        self.host = FakeHost()
        self.systemProperties = types.SimpleNamespace(defaultMachineFolder=server.machine_folder)

    @property
    def machines(self) -> list[FakeMachine]:
        """Registered machines."""
        return list(self._server.machines)

    @property
    def guestOSTypes(self) -> list[Any]:
        """IGuestOSType list."""
        return [types.SimpleNamespace(id=k, description=v) for k, v in ostypes(self._server.profile).items()]

    def getGuestOSType(self, os_id: str) -> Any:
        """One IGuestOSType."""
        table = ostypes(self._server.profile)
        if os_id not in table:
            raise _err("VBOX_E_OBJECT_NOT_FOUND", f"'{os_id}' is not a valid Guest OS type")
        return types.SimpleNamespace(id=os_id, description=table[os_id])

    def findMachine(self, name_or_id: str) -> FakeMachine:
        """By UUID or name."""
        ref = name_or_id.strip("{}")
        for machine in self._server.machines:
            if ref.lower() == machine._data["id"] or ref == machine._data["name"]:
                return machine
        what = "with UUID" if len(ref) == 36 and ref.count("-") == 4 else "named"
        raise _err("VBOX_E_OBJECT_NOT_FOUND", f"Could not find a registered machine {what} '{name_or_id}'")

    def composeMachineFilename(self, name: str, group: str, flags: str, base_folder: str) -> str:
        """``<base>[/<group>]/<name>/<name>.vbox``."""
        base = Path(base_folder or self._server.machine_folder)
        if group and group != "/":
            base = base / group.strip("/")
        return str(base / name / f"{name}.vbox")

    def createMachine(self, *args: Any) -> FakeMachine:
        """5 parameters (6.1), 8 (7.0: + cipher, password id, password), 9 (7.1, 7.2: + platform after the name)."""
        arity = CREATE_MACHINE_ARITY[self._server.profile]
        if len(args) != arity:
            raise TypeError(f"createMachine() takes exactly {arity} arguments ({len(args)} given)")
        if since(self._server.profile, "7.1"):
            settings, name, platform, groups, ostype, flags = args[:6]
            if platform != self._server.constants.PlatformArchitecture_x86:
                raise _err("VBOX_E_NOT_SUPPORTED", f"Platform architecture {platform} is not supported on this host")
        else:
            settings, name, groups, ostype, flags = args[:5]
        if not isinstance(groups, list):
            raise TypeError("groups is a string array")
        if not name:
            raise _err("E_INVALIDARG", "Machine name must not be empty")
        self.getGuestOSType(ostype)
        settings = settings or self.composeMachineFilename(name, groups[0] if groups else "", flags, "")
        if Path(settings).exists():
            raise _err("VBOX_E_FILE_ERROR", f"Machine settings file '{settings}' already exists")
        data = _new_data(name, ostype, settings)
        data["groups"] = list(groups) or ["/"]
        for part in flags.split(","):
            if part.startswith("UUID="):
                data["id"] = part[5:].lower()
        return FakeMachine(self._server, data)

    def registerMachine(self, machine: FakeMachine) -> None:
        """Register a created machine (its settings are saved)."""
        if machine._registered:
            raise _err("VBOX_E_INVALID_OBJECT_STATE", "The machine is already registered")
        if any(m._data["id"] == machine._data["id"] for m in self._server.machines):
            raise _err("VBOX_E_OBJECT_IN_USE", f"A machine with UUID {{{machine._data['id']}}} is already registered")
        machine.saveSettings()
        machine._registered = True
        self._server.machines.append(machine)

    def createMedium(self, fmt: str, location: str, access: int, device_type: int) -> FakeMedium:
        """A medium object (its storage is created by createBaseStorage)."""
        if any(m.location == location for m in self._server.media):
            raise _err("VBOX_E_OBJECT_IN_USE", f"Medium '{location}' is already registered")
        return FakeMedium(self._server, location, device_type)

    def openMedium(self, location: str, device_type: int, access: int, force_new_uuid: bool) -> FakeMedium:
        """A registered medium by location (or open an existing file)."""
        for medium in self._server.media:
            if location in (medium.location, medium.id):
                return medium
        if not Path(location).exists():
            raise _err("VBOX_E_FILE_ERROR", f"Could not find file for the medium '{location}' (VERR_FILE_NOT_FOUND)")
        medium = FakeMedium(self._server, location, device_type)
        self._server.media.append(medium)
        return medium


class FakeServer:
    """One VBoxSVC: machines, media, sessions and the fault knobs; shared by every manager of a profile."""

    def __init__(self, profile: str, machine_folder: str) -> None:
        self.profile = profile
        self.machine_folder = machine_folder
        self.constants = Constants(profile)
        self.machines: list[FakeMachine] = []
        self.media: list[FakeMedium] = []
        self.sessions: list[FakeSession] = []
        self.progresses: list[FakeProgress] = []
        self.fail_next: dict[str, tuple[str, str]] = {}
        self.stuck: set[str] = set()
        self.ignore_acpi = False
        self.resets = 0
        self.unlocks = 0
        self.vbox = FakeVirtualBox(self)

    def state_number(self, name: str) -> int:
        """The profile's MachineState number of *name*."""
        return machine_states(self.profile).index(name)

    def locked_sessions(self) -> list[FakeSession]:
        """Sessions still locked or unlocking (lock discipline: empty after every backend call)."""
        return [s for s in self.sessions if s._state in ("Locked", "Unlocking") and s._type != "Remote"]


def make_vboxapi(profile: str, machine_folder: str) -> Any:
    """A module-like ``vboxapi`` for *profile*: ``VirtualBoxManager`` and the ``server`` behind it."""
    server = FakeServer(profile, machine_folder)

    class VirtualBoxManager:
        """vboxapi.VirtualBoxManager(style, params)."""

        def __init__(self, style: Any = None, params: Any = None) -> None:
            self.constants = server.constants
            self.server = server

        def getVirtualBox(self) -> FakeVirtualBox:
            return server.vbox

        def getSessionObject(self, vbox: Any = None) -> FakeSession:
            return FakeSession(server)

        def getArray(self, obj: Any, attr: str) -> list[Any]:
            return list(getattr(obj, attr))

        def xcptIsOurXcptKind(self, exc: BaseException) -> bool:
            return isinstance(exc, COMError)

        def xcptGetResult(self, exc: BaseException) -> int:
            return int(getattr(exc, "errno", HRESULTS["E_FAIL"]))

        def xcptGetMessage(self, exc: BaseException) -> str:
            return str(getattr(exc, "msg", exc))

    module = types.ModuleType("vboxapi")
    module.VirtualBoxManager = VirtualBoxManager  # type: ignore[attr-defined]
    module.server = server  # type: ignore[attr-defined]
    return module
