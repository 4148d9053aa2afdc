"""Fake Main API pieces for machine changes: clones, media, network adapters, host networks, firmware, CPU cap.

The package (``fake_com/__init__.py``) builds its classes from the mixins here. What they
reproduce, from the SDK reference and VirtualBox's Main/src-server sources
(MachineImpl.cpp, MachineImplCloneVM.cpp, NetworkAdapterImpl.cpp, MediumImpl.cpp):

* ``IMachine.cloneTo(target, mode, options)`` returns an IProgress ("Initialize Cloning",
  one "Cloning Disk '<name>' ..." per hard disk, "Create Machine Clone '<name>' ...").
  The target (created, not registered) gets the source's configuration -- the snapshot's
  when called on ``ISnapshot.machine`` -- except its name and UUID, new MAC addresses
  unless ``KeepAllMACs`` (``KeepNATMACs`` keeps those of NAT adapters), copies of the hard
  disks named ``<target>.vdi`` (a disk named after the source VM) or
  ``<target>-disk<n>.vdi``, or with ``Link`` differencing images under the source's media
  in ``<target folder>/Snapshots``; a Saved source (or an online snapshot) gives a Saved
  clone. The target's settings are saved when the progress completes; the caller
  registers it. ``Link`` on a machine that is not a snapshot machine, ``Link`` with a mode
  other than ``MachineState``, and ``KeepAllMACs`` with ``KeepNATMACs`` are E_INVALIDARG.
  Cloning the current state of a running VM fails in the progress: its media are locked
  for writing (VBOX_E_INVALID_OBJECT_STATE). Only ``CloneMode.MachineState`` is
  implemented by the fake (E_NOTIMPL for the other modes). Deleting the snapshot a linked
  clone was made from fails in its progress (E_FAIL "Hard disk '…' has more than one child
  hard disk (2)": the clone's disk is a second child, and VirtualBox does not multi-merge).
* ``IMedium``: ``name``, ``children``, ``machineIds`` (current state and snapshots),
  ``state``; a medium with children can be neither closed nor deleted
  (``Medium::i_canClose``: VBOX_E_OBJECT_IN_USE "Cannot close medium '…' because it has N
  child media"): ``deleteStorage`` refuses at once, and ``IMachine.deleteConfig`` -- run after
  ``unregister``, deleting its media in order -- fails in its progress at such a medium,
  having deleted the ones before it and leaving the settings file: the machine is
  half-deleted, as in VirtualBox. ``resize(bytes)`` returns an IProgress
  (VDI/VHD only, else VBOX_E_NOT_SUPPORTED; VBOX_E_INVALID_OBJECT_STATE while a running VM
  holds the medium; shrinking fails in the progress with VBOX_E_NOT_SUPPORTED);
  ``createDiffStorage(target, variant)`` returns an IProgress (the target's storage must not
  exist yet: VBOX_E_INVALID_OBJECT_STATE).
* ``INetworkAdapter`` with each setter's state dependency: ``enabled``, ``MACAddress``,
  ``adapterType`` need a mutable (powered-off) machine; ``attachmentType``, the network
  names and ``cableConnected`` may also change while the VM is saved or runs (through a
  shared session on a running VM they apply live). A bad MAC address is E_INVALIDARG, an
  unknown adapter type E_FAIL, an empty network name for the active attachment E_FAIL;
  switching the attachment fills an empty internal / NAT network name with ``intnet`` /
  ``NatNetwork``; enabling an adapter without a MAC address generates one.
* ``IHost.networkInterfaces`` (host-only ``vboxnet0`` and bridgeable ``eth0``, as the fake
  VBoxManage lists them) and ``IVirtualBox.NATNetworks`` (``NatNetwork``, 10.0.2.0/24).
* ``IMachine.CPUExecutionCap``: 1-100 (E_INVALIDARG outside, checked before the state),
  changeable while the VM runs.
* Firmware: ``IMachine.firmwareType`` in 6.1 and 7.0; 7.1 and 7.2 have ``IMachine.firmwareSettings``
  (``IFirmwareSettings.firmwareType``) and no ``IMachine.firmwareType``.
* Storage controllers: a new one has its bus's port count and type (SATA 30 ports, IDE 2,
  SCSI 16, NVMe and virtio-scsi 1); ``IMachine.getStorageControllerByName``
  (VBOX_E_OBJECT_NOT_FOUND) with settable ``portCount`` and ``controllerType`` (range and
  types per bus, E_INVALIDARG); ``attachDevice`` checks the port and device against the
  controller (E_INVALIDARG).
* ``IMachine.discardSavedState(fRemoveFile)``: Saved, and AbortedSaved from 7.0, become
  PoweredOff; any other state is VBOX_E_INVALID_VM_STATE.

Knobs: ``server.vbox.host.interfaces`` and ``server.vbox.nat_networks`` are plain lists.
"""

from __future__ import annotations

import copy
import types
import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..fake_vboxmanage import since

HARD_DISK = 3
_MUTABLE = frozenset({"PoweredOff", "Aborted", "Teleported"})
_SAVED = frozenset({"Saved", "AbortedSaved"})
_RUNNING = frozenset({"Running", "Paused"})
_DIFF_VARIANT = 0x20000


def machine_enums(profile: str) -> dict[str, dict[str, int]]:
    """The enums of these fakes, as ``manager.constants`` carries them (values kept since 6.1)."""
    attachments = {"Null": 0, "NAT": 1, "Bridged": 2, "Internal": 3, "HostOnly": 4, "Generic": 5, "NATNetwork": 6,
                   "Cloud": 7}  # fmt: skip
    if since(profile, "7.0"):
        attachments["HostOnlyNetwork"] = 8  # 7.0: vmnet host-only networks (7.2's xidl: the same 0-8)
    return {
        "NetworkAttachmentType": attachments,
        "NetworkAdapterType": {
            "Null": 0,
            "Am79C970A": 1,
            "Am79C973": 2,
            "I82540EM": 3,
            "I82543GC": 4,
            "I82545EM": 5,
            "Virtio": 6,
            "Am79C960": 7,
        },
        "FirmwareType": {"BIOS": 1, "EFI": 2, "EFI32": 3, "EFI64": 4, "EFIDUAL": 5},
        "CloneMode": {"MachineState": 1, "MachineAndChildStates": 2, "AllStates": 3},
        "CloneOptions": {"Link": 1, "KeepAllMACs": 2, "KeepNATMACs": 3, "KeepDiskNames": 4, "KeepHwUUIDs": 5},
        "HostNetworkInterfaceType": {"Bridged": 1, "HostOnly": 2},
        "HostNetworkInterfaceStatus": {"Unknown": 0, "Up": 1, "Down": 2},
        "StorageControllerType": {
            "Null": 0,
            "LsiLogic": 1,
            "BusLogic": 2,
            "IntelAhci": 3,
            "PIIX3": 4,
            "PIIX4": 5,
            "ICH6": 6,
            "I82078": 7,
            "LsiLogicSas": 8,
            "USB": 9,
            "NVMe": 10,
            "VirtioSCSI": 11,
        },
        "MediumState": {"NotCreated": 0, "Created": 1, "LockedRead": 2, "LockedWrite": 3, "Inaccessible": 4},
        "MediumVariant": {"Standard": 0, "Fixed": 0x10000, "Diff": _DIFF_VARIANT},
    }


# The package imports this module while it builds its classes, so what this module needs
# from the package is imported when called.


def _err(code_name: str, msg: str) -> Exception:
    from . import COMError

    return COMError(code_name, msg)


def _progress(server: Any, operation: str, descriptions: list[str], on_done: Any) -> Any:
    from . import FakeProgress

    return FakeProgress(server, operation, descriptions, on_done)


def _online_states() -> frozenset[str]:
    from . import _ONLINE

    return frozenset(_ONLINE)


def new_mac() -> str:
    """A VirtualBox MAC address (OUI 08:00:27), as ``Host::i_generateMACAddress`` makes them."""
    return "080027" + uuidlib.uuid4().hex[:6].upper()


def require_state(view: Any, allowed: frozenset[str]) -> None:
    """A setter's state dependency: a registered IMachine is read-only; ``session.machine`` needs *allowed*."""
    if getattr(view, "_session", None) is None:
        view._check_mutable("settings")  # not registered yet: mutable; registered: VBOX_E_INVALID_VM_STATE
        return
    view._check_session()
    state = view._machine._state
    if state not in allowed:
        raise _err("VBOX_E_INVALID_VM_STATE", f"The machine is not mutable (state is {state})")


# -- network adapters --------------------------------------------------------------------------

_ADAPTER_DEFAULTS: dict[str, Any] = {
    "bridgedInterface": "",
    "hostOnlyInterface": "",
    "internalNetwork": "",
    "NATNetwork": "",
}
_NETWORK_ATTRIBUTES = {
    "Bridged": ("bridgedInterface", "bridged interface"),
    "HostOnly": ("hostOnlyInterface", "host only interface"),
    "Internal": ("internalNetwork", "internal network"),
    "NATNetwork": ("NATNetwork", "NAT network"),
}
_OFF_ONLY = frozenset({"enabled", "MACAddress", "adapterType"})
_LIVE = frozenset({"attachmentType", "cableConnected", *(a for a, _ in _NETWORK_ATTRIBUTES.values())})


class NetworkAdapter:
    """INetworkAdapter of a machine view: read-only on a registered IMachine, settable on ``session.machine``."""

    def __init__(self, view: Any, slot: int) -> None:
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "slot", slot)

    def _data(self) -> dict[str, Any]:
        return {**_ADAPTER_DEFAULTS, **self._view._read("adapters")[self.slot]}

    def _enum(self, name: str) -> dict[str, int]:
        return dict(self._view._server.constants.all_values(name))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = self._data()
        if name == "attachmentType":
            return self._enum("NetworkAttachmentType")[data["attachmentType"]]
        if name in data:
            return data[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in _OFF_ONLY and name not in _LIVE:
            raise AttributeError(f"attribute {name} is read-only")
        require_state(self._view, _MUTABLE if name in _OFF_ONLY else _MUTABLE | _SAVED | _RUNNING)
        data = self._data()
        if name == "attachmentType":
            self._set_attachment(data, value)
        elif name == "MACAddress":
            data["MACAddress"] = self._checked_mac(str(value), data["enabled"])
        elif name == "adapterType":
            valid = {v for k, v in self._enum("NetworkAdapterType").items() if k != "Null"}
            if value not in valid:
                raise _err("E_FAIL", f"Invalid network adapter type '{value}'")
            data["adapterType"] = value
        elif name == "enabled":
            data["enabled"] = bool(value)
            if data["enabled"] and not data["MACAddress"]:
                data["MACAddress"] = new_mac()
        elif name == "cableConnected":
            data["cableConnected"] = bool(value)
        else:
            mode = next(m for m, (attribute, _) in _NETWORK_ATTRIBUTES.items() if attribute == name)
            if not value and data["enabled"] and data["attachmentType"] == mode:
                raise _err("E_FAIL", f"Empty or null {_NETWORK_ATTRIBUTES[mode][1]} name is not valid")
            data[name] = str(value)
        adapters = [dict(a) for a in self._view._read("adapters")]
        adapters[self.slot] = data
        self._view._write("adapters", adapters)

    def _set_attachment(self, data: dict[str, Any], value: int) -> None:
        names = {v: k for k, v in self._enum("NetworkAttachmentType").items()}
        if value not in names:
            raise _err("E_INVALIDARG", f"Invalid attachment type {value}")
        if names[value] != data["attachmentType"]:
            data["internalNetwork"] = data["internalNetwork"] or "intnet"
            data["NATNetwork"] = data["NATNetwork"] or "NatNetwork"
        data["attachmentType"] = names[value]

    @staticmethod
    def _checked_mac(mac: str, enabled: bool) -> str:
        """``NetworkAdapter::i_updateMacAddress``: 12 hex digits, unicast (even second digit); empty: a new one."""
        if not mac:
            return new_mac() if enabled else ""
        mac = mac.upper()
        if len(mac) != 12 or any(c not in "0123456789ABCDEF" for c in mac) or int(mac[1], 16) % 2:
            raise _err("E_INVALIDARG", "Invalid MAC address format")
        return mac


# -- firmware, CPU cap, storage controllers: the machine views -----------------------------------


def _set_firmware(view: Any, value: int) -> None:
    require_state(view, _MUTABLE)
    names = {v: k for k, v in view._server.constants.all_values("FirmwareType").items()}
    if value not in names:
        raise _err("E_INVALIDARG", f"Invalid firmware type {value}")
    view._write("firmware", names[value])


def _firmware_number(view: Any) -> int:
    return int(view._server.constants.all_values("FirmwareType")[view._read("firmware")])


class FirmwareSettings:
    """IFirmwareSettings (7.1): where the firmware type went from IMachine."""

    def __init__(self, view: Any) -> None:
        self._view = view

    @property
    def firmwareType(self) -> int:
        """FirmwareType."""
        return _firmware_number(self._view)

    @firmwareType.setter
    def firmwareType(self, value: int) -> None:
        _set_firmware(self._view, value)


_CONTROLLER_RULES: dict[int, tuple[int, tuple[int, int], tuple[int, ...]]] = {
    # StorageBus -> (ports of a new controller, (min, max) ports, StorageControllerTypes; the first is the default)
    1: (2, (2, 2), (5, 4, 6)),  # IDE: PIIX4, PIIX3, ICH6
    2: (30, (1, 30), (3,)),  # SATA: IntelAhci
    3: (16, (16, 16), (1, 2)),  # SCSI: LsiLogic, BusLogic
    4: (1, (1, 1), (7,)),  # Floppy: I82078
    5: (8, (1, 255), (8,)),  # SAS: LsiLogicSas
    6: (8, (8, 8), (9,)),  # USB
    7: (1, (1, 255), (10,)),  # PCIe: NVMe
    8: (1, (1, 256), (11,)),  # VirtioSCSI
}
"""StorageController::init / setPortCount / setControllerType."""


def new_controller(bus: int) -> dict[str, int]:
    """The data of a controller ``addStorageController`` just made (its bus's default ports and type)."""
    ports, _range, controller_types = _CONTROLLER_RULES[bus]
    return {"bus": bus, "ports": ports, "type": controller_types[0]}


class StorageController:
    """IStorageController of a machine view (``portCount`` and ``controllerType`` settable when mutable)."""

    def __init__(self, view: Any, name: str) -> None:
        object.__setattr__(self, "_view", view)
        object.__setattr__(self, "name", name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data = self._view._read("controllers")[self.name]
        values = {"bus": data["bus"], "portCount": data["ports"], "controllerType": data.get("type", 0)}
        if name in values:
            return values[name]
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in ("portCount", "controllerType"):
            raise AttributeError(f"attribute {name} is read-only")
        require_state(self._view, _MUTABLE)
        controllers = {k: dict(v) for k, v in self._view._read("controllers").items()}
        data = controllers[self.name]
        _ports, (low, high), controller_types = _CONTROLLER_RULES[data["bus"]]
        if name == "portCount":
            if not low <= int(value) <= high:
                raise _err("E_INVALIDARG", f"Invalid port count: {value} (must be in range [{low}, {high}])")
            data["ports"] = int(value)
        else:
            if int(value) not in controller_types:
                raise _err("E_INVALIDARG", f"Invalid controller type {value}")
            data["type"] = int(value)
        self._view._write("controllers", controllers)


def check_port(view: Any, controller: str, port: int, device: int) -> None:
    """``StorageController::i_checkPortAndDeviceValid`` (attachDevice): E_INVALIDARG out of range."""
    data = view._read("controllers")[controller]
    devices = 2 if data["bus"] == 1 else 1  # IDE: master and slave
    if not (0 <= port < data["ports"] and 0 <= device < devices):
        raise _err(
            "E_INVALIDARG",
            f"The port and/or device parameter are out of range: port={port} (must be in range "
            f"[0, {data['ports'] - 1}]), device={device} (must be in range [0, {devices - 1}])",
        )


class MachineViewMixin:
    """What every machine view (IMachine, ``session.machine``) adds: firmware, CPU cap range, controllers."""

    _server: Any
    _read: Callable[[str], Any]  # defined by the package's _MachineView

    def _extra_attribute(self, name: str) -> Any:
        """Attributes the generic lookup does not know: the firmware, where the profile keeps it."""
        if since(self._server.profile, "7.1"):
            if name == "firmwareSettings":
                return FirmwareSettings(self)
        elif name == "firmwareType":
            return _firmware_number(self)
        raise AttributeError(name)

    def _set_extra_attribute(self, name: str, value: Any) -> bool:
        """Setters with checks of their own; False hands the attribute to the generic setter."""
        if name == "firmwareType" and not since(self._server.profile, "7.1"):
            _set_firmware(self, value)
            return True
        if name == "CPUExecutionCap" and not 1 <= int(value) <= 100:
            raise _err("E_INVALIDARG", f"Invalid CPU execution cap value: {value} (must be in range [1, 100])")
        return False

    def getStorageControllerByName(self, name: str) -> StorageController:
        """The controller named *name* (VBOX_E_OBJECT_NOT_FOUND)."""
        if name not in self._read("controllers"):
            raise _err("VBOX_E_OBJECT_NOT_FOUND", f"Could not find a storage controller named '{name}'")
        return StorageController(self, name)


class SessionMachineMixin:
    """``session.machine`` methods: discarding a saved state."""

    _machine: Any
    _server: Any
    _check_session: Callable[[], None]  # defined by the package's SessionMachine

    def discardSavedState(self, remove_file: bool) -> None:
        """Saved (and AbortedSaved, 7.0+) -> PoweredOff; the state file goes."""
        self._check_session()
        machine = self._machine
        if machine._state not in _SAVED:
            which = "Saved or Aborted-Saved" if since(self._server.profile, "7.0") else "Saved"
            raise _err(
                "VBOX_E_INVALID_VM_STATE",
                f"Cannot discard the saved state as the machine is not in the {which} state "
                f"(machine state: {machine._state})",
            )
        machine._set_state("PoweredOff")


# -- snapshots and clones --------------------------------------------------------------------------

_CLONED_KEYS = ("OSTypeId", "CPUCount", "memorySize", "description", "groups", "CPUExecutionCap", "firmware",
                "controllers", "extradata", "adapters")  # fmt: skip


def capture_hardware(snapshot: Any, machine: Any) -> None:
    """Keep the storage, network and firmware of *machine* in *snapshot* (for ``ISnapshot.machine``)."""
    data = machine._data
    snapshot._origin = machine
    snapshot.hardware = {
        "firmware": data["firmware"],
        "adapters": [dict(a) for a in data["adapters"]],
        "controllers": {k: dict(v) for k, v in data["controllers"].items()},
        "attachments": [dict(a) for a in data["attachments"]],
    }


class CloneSourceMixin:
    """``IMachine.cloneTo`` of the current state (FakeMachine) or of a snapshot (SnapshotMachine)."""

    _server: Any

    def _clone_source(self) -> tuple[dict[str, Any], Any, str]:
        """``(configuration, snapshot or None, machine state)`` to clone."""
        machine: Any = self
        return machine._data, None, machine._state

    def cloneTo(self, target: Any, mode: int, options: list[int]) -> Any:
        """Clone into *target* (created with createMachine, not registered); see the module docstring."""
        server = self._server
        modes = {v: k for k, v in server.constants.all_values("CloneMode").items()}
        names = {v: k for k, v in server.constants.all_values("CloneOptions").items()}
        opts = {names.get(o, str(o)) for o in options}
        data, snapshot, state = self._clone_source()
        if "Link" in opts and snapshot is None:
            raise _err("E_INVALIDARG", "Linked clone can only be created from a snapshot")
        if "Link" in opts and modes.get(mode) != "MachineState":
            raise _err("E_INVALIDARG", "Linked clone can only be created for a single machine state")
        if {"KeepAllMACs", "KeepNATMACs"} <= opts:
            raise _err("E_INVALIDARG", "KeepAllMACs and KeepNATMACs cannot be combined")
        if modes.get(mode) != "MachineState":
            raise _err("E_NOTIMPL", f"the fake clones CloneMode.MachineState only, not {modes.get(mode, mode)}")
        disks = [a for a in data["attachments"] if a["type"] == HARD_DISK and a["medium"] is not None]
        if state in _online_states() and "Link" not in opts and disks:
            location = disks[0]["medium"].location
            server.fail_next.setdefault(
                "cloneTo", ("VBOX_E_INVALID_OBJECT_STATE", f"Medium '{location}' is locked for writing by another task")
            )
        descriptions = [
            "Initialize Cloning",
            *(f"Cloning Disk '{a['medium'].name}' ..." for a in disks),
            f"Create Machine Clone '{target._data['name']}' ...",
        ]
        saved = state == "Saved" or bool(snapshot is not None and snapshot.online)
        return _progress(server, "cloneTo", descriptions, lambda: _finish_clone(data, target, opts, saved, snapshot))


def _finish_clone(data: dict[str, Any], target: Any, opts: set[str], saved: bool, snapshot: Any) -> None:
    from . import FakeMedium

    server = target._server
    new = target._data
    folder = Path(new["settingsFilePath"]).parent
    for key in _CLONED_KEYS:
        new[key] = copy.deepcopy(data[key])
    for adapter in new["adapters"]:
        keep = "KeepAllMACs" in opts or ("KeepNATMACs" in opts and adapter["attachmentType"] == "NAT")
        if not keep:
            adapter["MACAddress"] = new_mac()
    attachments, count = [], 0
    for att in data["attachments"]:
        source = att["medium"]
        if att["type"] != HARD_DISK or source is None:
            attachments.append(dict(att))
            continue
        if "Link" in opts:
            medium = FakeMedium(server, str(folder / "Snapshots" / f"{{{uuidlib.uuid4()}}}.vdi"), HARD_DISK)
            make_diff(source, medium, [_DIFF_VARIANT])
            medium._base_snapshot = snapshot  # a second child of that snapshot's disk (see multi_merge_error)
        else:
            count += 1
            medium = FakeMedium(server, str(folder / _clone_disk_name(source, data["name"], new["name"], count, opts)),
                                HARD_DISK)  # fmt: skip
            _write_image(medium, source.logicalSize, list(source.variant))
        attachments.append({**att, "medium": medium})
    new["attachments"] = attachments
    if saved:
        target._set_state("Saved")
    target.saveSettings()


def _clone_disk_name(source: Any, old_vm: str, new_vm: str, count: int, opts: set[str]) -> str:
    """MachineCloneVM's names: kept with KeepDiskNames; ``<new>.vdi`` for a disk named after the VM."""
    if "KeepDiskNames" in opts:
        return str(source.name)
    stem, suffix = Path(source.name).stem, Path(source.name).suffix
    return f"{new_vm}{suffix}" if stem == old_vm else f"{new_vm}-disk{count}{suffix}"


def _write_image(medium: Any, logical_size: int, variant: list[int]) -> None:
    path = Path(medium.location)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<<< Oracle VM VirtualBox Disk Image >>>\n")
    medium.logicalSize = logical_size
    medium.variant = variant
    medium._server.media.append(medium)


def multi_merge_error(snapshot: Any) -> tuple[str, str] | None:
    """Why deleting *snapshot* fails, if it does: a linked clone made from it is a second child of its disk.

    Deleting a snapshot merges its disk with the one child the machine's current state uses;
    VirtualBox does not merge a disk with several children (SnapshotImpl.cpp, E_FAIL).
    """
    clones = [m for m in snapshot._origin._server.media if m._base_snapshot is snapshot]
    if not clones:
        return None
    return "E_FAIL", f"Hard disk '{clones[0].parent.location}' has more than one child hard disk ({len(clones) + 1})"


def make_diff(parent: Any, target: Any, variant: list[int]) -> None:
    """Create *target* as a differencing image of *parent* (same format and logical size)."""
    target.parent = parent
    target.format = parent.format
    _write_image(target, parent.logicalSize, [(variant[0] if variant else 0) | _DIFF_VARIANT])


class SnapshotMachine(CloneSourceMixin):
    """``ISnapshot.machine``: the read-only machine of a snapshot (the configuration it was taken with)."""

    def __init__(self, snapshot: Any) -> None:
        self._server = snapshot._origin._server
        self._snapshot = snapshot

    def _clone_source(self) -> tuple[dict[str, Any], Any, str]:
        snap = self._snapshot
        data = {**snap._origin._data, **snap.config, **snap.hardware}
        return data, snap, "Saved" if snap.online else "PoweredOff"

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        data, _snap, state = self._clone_source()
        if name == "state":
            return self._server.state_number(state)
        if name == "mediumAttachments":
            return [types.SimpleNamespace(**a) for a in data["attachments"]]
        if name in data:
            value = data[name]
            return list(value) if isinstance(value, list) else value
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        raise _err("VBOX_E_INVALID_VM_STATE", "The machine is not mutable (it is the machine of a snapshot)")


class SnapshotMixin:
    """ISnapshot.machine."""

    @property
    def machine(self) -> SnapshotMachine:
        """The snapshot's machine (clone it to clone the snapshot)."""
        return SnapshotMachine(self)


# -- media --------------------------------------------------------------------------------------


class MediumMixin:
    """IMedium: name, children, state, resize, createDiffStorage."""

    _server: Any
    location: str
    format: str
    logicalSize: int
    parent: Any

    @property
    def name(self) -> str:
        """The file name."""
        return Path(self.location).name

    @property
    def children(self) -> list[Any]:
        """Differencing images based on this one."""
        return [m for m in self._server.media if m.parent is self]

    @property
    def machineIds(self) -> list[str]:
        """UUIDs of the registered machines using this medium, in their current state or a snapshot."""
        found = []
        for machine in self._server.machines:
            attachments = [*machine._data["attachments"], *(a for s in machine._snapshots
                                                            for a in s.hardware["attachments"])]  # fmt: skip
            if any(a["medium"] is self for a in attachments):
                found.append(machine._data["id"])
        return found

    def _close_error(self, ignoring: Sequence[Any] = ()) -> Exception | None:
        """``Medium::i_canClose``: the error closing or deleting this medium meets (its children), if any.

        :param ignoring: children already gone by then (deleted earlier in the same task).
        """
        children = [c for c in self.children if c not in ignoring]
        if not children:
            return None
        return _err("VBOX_E_OBJECT_IN_USE", f"Cannot close medium '{self.location}' because it has {len(children)} "
                                            "child media")  # fmt: skip

    def _locked_for_writing(self) -> bool:
        online = _online_states()
        return any(
            a["medium"] is self for m in self._server.machines if m._state in online for a in m._data["attachments"]
        )

    @property
    def state(self) -> int:
        """MediumState: NotCreated, Created, or LockedWrite while a running VM uses it."""
        states = self._server.constants.all_values("MediumState")
        if self not in self._server.media:
            return int(states["NotCreated"])
        return int(states["LockedWrite" if self._locked_for_writing() else "Created"])

    def resize(self, logical_size: int) -> Any:
        """Grow the image (VDI/VHD); shrinking fails in the progress, as VirtualBox's task does."""
        if self not in self._server.media:
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Storage for the medium '{self.location}' is not created")
        if self.format not in ("VDI", "VHD"):
            raise _err("VBOX_E_NOT_SUPPORTED", f"Medium format '{self.format}' does not support resizing")
        if self._locked_for_writing():
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Medium '{self.location}' is locked for writing by another task")
        if logical_size < self.logicalSize:
            self._server.fail_next.setdefault(
                "resize", ("VBOX_E_NOT_SUPPORTED", f"Shrinking is not yet supported for medium '{self.location}'")
            )

        def done() -> None:
            self.logicalSize = logical_size

        return _progress(self._server, "resize", [f"Resizing medium '{self.name}'"], done)

    def createDiffStorage(self, target: Any, variant: list[int]) -> Any:
        """Create *target* (from createMedium, not created yet) as a differencing image of this medium."""
        if self not in self._server.media:
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Storage for the medium '{self.location}' is not created")
        if target in self._server.media or Path(target.location).exists():
            raise _err("VBOX_E_INVALID_OBJECT_STATE", f"Storage for the medium '{target.location}' is already created")
        description = f"Creating differencing medium storage unit '{target.location}'"
        return _progress(self._server, "createDiffStorage", [description], lambda: make_diff(self, target, variant))


# -- host networks ---------------------------------------------------------------------------------


@dataclass
class FakeHostNetworkInterface:
    """IHostNetworkInterface (interfaceType: 1 Bridged, 2 HostOnly; status: 1 Up, 2 Down)."""

    name: str
    interfaceType: int
    IPAddress: str = ""
    networkMask: str = ""
    status: int = 1
    hardwareAddress: str = "0a:00:27:00:00:00"
    DHCPEnabled: bool = False

    @property
    def shortName(self) -> str:
        """The name without decorations (the same on Linux)."""
        return self.name

    @property
    def networkName(self) -> str:
        """``HostInterfaceNetworking-<name>``."""
        return f"HostInterfaceNetworking-{self.name}"


@dataclass
class FakeNATNetwork:
    """INATNetwork."""

    networkName: str
    network: str
    enabled: bool = True
    gateway: str = "10.0.2.1"
    needDhcpServer: bool = True


class HostNetworkMixin:
    """IHost.networkInterfaces (``interfaces`` is the knob)."""

    @property
    def interfaces(self) -> list[FakeHostNetworkInterface]:
        """The host's interfaces (a list tests may change)."""
        found: list[FakeHostNetworkInterface] = self.__dict__.setdefault(
            "_interfaces",
            [FakeHostNetworkInterface("vboxnet0", 2, "192.168.56.1", "255.255.255.0"),
             FakeHostNetworkInterface("eth0", 1, "10.0.0.5", "255.255.255.0", hardwareAddress="52:54:00:12:34:56")],
        )  # fmt: skip
        return found

    @property
    def networkInterfaces(self) -> list[FakeHostNetworkInterface]:
        """Every host interface, bridgeable and host-only."""
        return list(self.interfaces)


class NATNetworksMixin:
    """IVirtualBox.NATNetworks (``nat_networks`` is the knob)."""

    @property
    def nat_networks(self) -> list[FakeNATNetwork]:
        """The NAT networks (a list tests may change)."""
        found: list[FakeNATNetwork] = self.__dict__.setdefault(
            "_nat_networks", [FakeNATNetwork("NatNetwork", "10.0.2.0/24")]
        )
        return found

    @property
    def NATNetworks(self) -> list[FakeNATNetwork]:
        """Every NAT network."""
        return list(self.nat_networks)
