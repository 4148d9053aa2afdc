"""Clones, device changes, CPU cap, firmware and networks on the API transport.

:class:`ApiMachineMixin` is a base of :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`.
It keeps the semantics of the VBoxManage transport
(:class:`~virtabstract_vbox._backend.VBoxBackend`, whose helpers it reuses: NIC
resolution, disk naming, the CPU-cap conversion), done through the Main API:

* clone -- ``IVirtualBox.createMachine`` (version shim) for the target, then
  ``IMachine.cloneTo(target, CloneMode.MachineState, options)`` on the source, or on the
  snapshot's machine (``ISnapshot.machine``) to clone a snapshot, waited, then
  ``registerMachine``. A linked clone passes ``CloneOptions.Link``, which VirtualBox
  accepts only from a snapshot machine: without a snapshot, one named
  ``linked-clone-base-<name>`` is taken first, as the VBoxManage transport (and Vagrant)
  do. VirtualBox gives the clone new MAC addresses (no ``KeepAllMACs``). A failure midway
  deletes the half-made clone (``deleteConfig`` of the unregistered target with its new
  media) and the snapshot taken for it.
* disks -- ``createMedium`` + ``createBaseStorage`` (or ``openMedium`` for an existing
  image) and ``attachDevice`` on the bus's controller (added when missing, its port count
  raised when full), under a write lock, VM off (as on the VBoxManage transport, which does
  not hot-plug); removal is ``detachDevice`` then ``deleteStorage`` or ``close``; growing is
  ``IMedium.resize`` (VirtualBox refuses it while a running VM holds the medium).
* NICs -- ``INetworkAdapter`` of the first disabled slot (``enabled``, ``attachmentType``
  and the network attribute of that kind, ``adapterType``, ``cableConnected``,
  ``MACAddress``), VM off. ``update_nic`` goes through a *shared* lock: on a running VM it
  links to the VM process's session, and VirtualBox applies the cable and attachment
  changes live (its ``MutableOrSavedOrRunning`` setters). What may change when is the
  VBoxManage transport's table (:mod:`~virtabstract_vbox._nic_rules`), planned by the same
  ``_plan_nic_update``.
* linked clones of a VM -- the children of its media (current state and snapshots,
  ``IMedium.children``) that it does not use itself, named by ``IMedium.machineIds``; the
  same records and rule as on the VBoxManage transport decide what ``delete`` may do.
* CPU limit -- ``IMachine.CPUExecutionCap`` (1-100 %), converted like the VBoxManage
  transport does, settable while the VM runs (shared lock).
* firmware -- BIOS/UEFI through the version shim (``IMachine.firmwareType`` up to 7.0,
  ``IMachine.firmwareSettings.firmwareType`` from 7.1 on).
* networks -- the default NAT, ``IVirtualBox.NATNetworks`` and ``IHost.networkInterfaces``
  (host-only and bridgeable), the same list as ``VBoxManage list natnetworks / hostonlyifs /
  bridgedifs``.
* a saved state is discarded with ``IMachine.discardSavedState(true)`` (write lock), where
  the VBoxManage transport runs ``discardstate``.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from virtabstract import Disk, DiskInfo, Firmware, NetworkInfo, Nic, NicInfo, ResourceAllocation, VMInfo
from virtabstract.errors import AlreadyExists, DeviceNotFound, InvalidState, SpecError, VirtAbstractError

from ._api import LOCK_SHARED, LOCK_WRITE
from ._api_hooks import ApiHooks
from ._backend import (
    _BUS_CONTROLLERS,
    _NIC_KINDS,
    MAX_NICS,
    _mac_out,
    cidr,
    disk_path,
    linked_clone_names,
    nic_model,
    nic_type,
    resolve_nic,
)
from ._nic_rules import require_nic_change
from ._parse import MediumRecord
from ._states import is_online

__all__ = ["ApiMachineMixin"]

log = logging.getLogger("virtabstract.vbox")

_ATTACHMENTS: dict[str, tuple[str, str]] = {
    # attachment mode (as resolve_nic names it) -> (NetworkAttachmentType, INetworkAdapter attribute of its network)
    "nat": ("NAT", ""),
    "natnetwork": ("NATNetwork", "NATNetwork"),
    "hostonly": ("HostOnly", "hostOnlyInterface"),
    "bridged": ("Bridged", "bridgedInterface"),
    "intnet": ("Internal", "internalNetwork"),
}
_NICTYPES = {
    # NetworkAdapterType -> VBoxManage's --nictype name (the model helpers of _backend speak those)
    "Am79C970A": "Am79C970A",
    "Am79C973": "Am79C973",
    "Am79C960": "Am79C960",
    "I82540EM": "82540EM",
    "I82543GC": "82543GC",
    "I82545EM": "82545EM",
    "Virtio": "virtio",
}
_ADAPTER_TYPES = {nictype: name for name, nictype in _NICTYPES.items()}
_CONTROLLER_TYPES: dict[str, tuple[str, str, int | None]] = {
    # bus -> (StorageBus, StorageControllerType, ports to start with: those the VBoxManage transport gives)
    "sata": ("SATA", "IntelAhci", 4),
    "ide": ("IDE", "PIIX4", None),
    "scsi": ("SCSI", "LsiLogic", None),
    "nvme": ("PCIe", "NVMe", 4),
    "virtio": ("VirtioSCSI", "VirtioSCSI", 4),
}


class ApiMachineMixin(ApiHooks):
    """Clones, disks, NICs, resources, firmware and networks through the Main API (see the module docstring).

    Mixed into :class:`~virtabstract_vbox._api_backend.VBoxApiBackend`, which provides the
    hooks declared by :class:`~virtabstract_vbox._api_hooks.ApiHooks`.
    """

    # -- networks -------------------------------------------------------------------

    def list_networks(self) -> list[NetworkInfo]:
        """The default NAT, NAT networks, host-only and bridgeable host interfaces (as on VBoxManage)."""
        api = self.api
        nets = [NetworkInfo(name="default", id="nat", kind="nat")]
        for net in api.call("IVirtualBox.NATNetworks", lambda: list(api.vbox.NATNetworks)):
            name = str(net.networkName)
            nets.append(NetworkInfo(name=name, id=f"natnetwork:{name}", kind="nat", active=bool(net.enabled),
                                    cidr=str(net.network)))  # fmt: skip
        host_only = api.constant("HostNetworkInterfaceType", "HostOnly")
        up = api.constant("HostNetworkInterfaceStatus", "Up")
        bridged: list[NetworkInfo] = []
        for iface in api.call("IHost.networkInterfaces", lambda: list(api.vbox.host.networkInterfaces)):
            name, active = str(iface.name), int(iface.status) == up
            if int(iface.interfaceType) == host_only:
                address = cidr(str(iface.IPAddress), str(iface.networkMask))
                nets.append(NetworkInfo(name=name, id=f"hostonly:{name}", kind="hostonly", active=active, bridge=name,
                                        cidr=address))  # fmt: skip
            else:
                bridged.append(NetworkInfo(name=name, id=f"bridged:{name}", kind="bridge", active=active, bridge=name))
        return nets + bridged

    def _resolve_nics(self, nics: Sequence[Nic]) -> list[tuple[str, str, str]]:
        """``(mode, network, adapter type)`` of each NIC, validated against the host's networks."""
        nets = self.list_networks() if nics else []
        resolved = []
        for i, nic in enumerate(nics):
            try:
                mode, network = resolve_nic(nic, nets)
                resolved.append((mode, network, nic_type(nic)))
            except SpecError as err:
                raise err.within(f"nics[{i}]") from None
        return resolved

    # -- NICs -------------------------------------------------------------------------

    def _attachment_modes(self) -> dict[int, str]:
        api = self.api
        return {api.constant("NetworkAttachmentType", t): mode for mode, (t, _) in _ATTACHMENTS.items()}

    def _nic_info(self, slot: int, adapter: Any, modes: dict[int, str]) -> NicInfo:
        api = self.api
        mode = modes.get(int(adapter.attachmentType), "")
        attribute = _ATTACHMENTS[mode][1] if mode else ""
        network = "default" if mode == "nat" else str(getattr(adapter, attribute)) if attribute else ""
        types = {api.constant("NetworkAdapterType", name): nictype for name, nictype in _NICTYPES.items()}
        chip = types.get(int(adapter.adapterType), "")
        return NicInfo(
            id=f"nic{slot + 1}",
            mac=_mac_out(str(adapter.MACAddress)),
            network=network,
            kind=_NIC_KINDS.get(mode, "other"),
            model=nic_model(chip),
            connected=bool(adapter.cableConnected),
        )

    def _nics_api(self, machine: Any) -> list[NicInfo]:
        """The attached network adapters of *machine* as NicInfo (``nic1`` is slot 0).

        A disabled adapter, or one attached to nothing (``Null``), is no NIC: VBoxManage prints
        ``none`` / ``null`` for those and the VBoxManage transport skips them too.
        """
        null = self.api.constant("NetworkAttachmentType", "Null")
        modes = self._attachment_modes()
        found = []
        for slot in range(MAX_NICS):
            adapter = machine.getNetworkAdapter(slot)
            if adapter.enabled and int(adapter.attachmentType) != null:
                found.append(self._nic_info(slot, adapter, modes))
        return found

    def _find_nic_api(self, machine: Any, nic_id: str) -> NicInfo:
        wanted = nic_id.lower()
        for nic in self._nics_api(machine):
            if wanted in (nic.id, nic.mac, nic.mac.replace(":", "")):
                return nic
        raise DeviceNotFound(f"VM {machine.name!r} has no NIC {nic_id!r}")

    def _attach_adapter(self, adapter: Any, mode: str, network: str) -> None:
        """Point *adapter* at *network*: the network's name first, so the attachment switches straight to it."""
        api = self.api
        attachment, attribute = _ATTACHMENTS[mode]
        if attribute:
            api.set(adapter, attribute, network)
        api.set(adapter, "attachmentType", api.constant("NetworkAttachmentType", attachment))

    def _configure_adapters(self, mutable: Any, nics: Sequence[Nic], resolved: Sequence[tuple[str, str, str]]) -> None:
        """Enable and set up one adapter per NIC (slots in order); disable the other slots."""
        api = self.api
        for slot in range(MAX_NICS):
            adapter = mutable.getNetworkAdapter(slot)
            if slot >= len(nics):
                api.set(adapter, "enabled", False)
                continue
            self._configure_adapter(adapter, nics[slot], *resolved[slot])

    def _configure_adapter(self, adapter: Any, nic: Nic, mode: str, network: str, chip: str) -> None:
        api = self.api
        api.set(adapter, "enabled", True)
        api.set(adapter, "adapterType", api.constant("NetworkAdapterType", _ADAPTER_TYPES[chip]))
        self._attach_adapter(adapter, mode, network)
        api.set(adapter, "cableConnected", nic.connected)
        if nic.mac:
            api.set(adapter, "MACAddress", nic.mac.replace(":", "").upper())

    def add_nic(self, vm_id: str, nic: Nic) -> NicInfo:
        """Set up the first free adapter slot under a write lock (VM off, as on VBoxManage)."""
        api = self.api
        machine = self._machine(vm_id)
        self._require_slot_change(machine, "add_nic")
        used = {int(n.id[3:]) - 1 for n in self._nics_api(machine)}
        free = [s for s in range(MAX_NICS) if s not in used]
        if not free:
            raise InvalidState(f"VM already has {MAX_NICS} NICs", operation="add_nic")
        ((mode, network, chip),) = self._resolve_nics([nic])
        with api.session(machine, LOCK_WRITE) as session:
            self._configure_adapter(session.machine.getNetworkAdapter(free[0]), nic, mode, network, chip)
            api.call("saveSettings", session.machine.saveSettings)
        return self._find_nic_api(machine, f"nic{free[0] + 1}")

    def remove_nic(self, vm_id: str, nic_id: str) -> None:
        """Disable the adapter under a write lock (VM off), as ``modifyvm --nicN none`` does."""
        api = self.api
        machine = self._machine(vm_id)
        self._require_slot_change(machine, "remove_nic")
        nic = self._find_nic_api(machine, nic_id)
        with api.session(machine, LOCK_WRITE) as session:
            api.set(session.machine.getNetworkAdapter(int(nic.id[3:]) - 1), "enabled", False)
            api.call("saveSettings", session.machine.saveSettings)

    def _require_slot_change(self, machine: Any, operation: str) -> None:
        """Adding or removing a NIC sets ``INetworkAdapter.enabled``: the NIC rules allow it only while off."""
        require_nic_change(["present"], self._state(machine), str(machine.name), operation)

    def update_nic(self, vm_id: str, nic_id: str, *, network: str | None, connected: bool | None) -> NicInfo:
        """Move the NIC and/or set its link under a shared lock: live on a running VM, in the settings otherwise.

        Planned by the VBoxManage transport's ``_plan_nic_update`` (same networks, same state
        rules). The MAC address and adapter type stay (VirtualBox changes those only while off).
        """
        api = self.api
        machine = self._machine(vm_id)
        nic = self._find_nic_api(machine, nic_id)
        plan = self._plan_nic_update(self._state(machine), str(machine.name), nic, network, connected)
        if plan is None:
            return nic  # nothing to change: no lock taken
        with api.session(machine, LOCK_SHARED) as session:
            adapter = session.machine.getNetworkAdapter(plan.slot - 1)
            if plan.attachment is not None:
                self._attach_adapter(adapter, *plan.attachment)
            if plan.connected is not None:
                api.set(adapter, "cableConnected", plan.connected)
            api.call("saveSettings", session.machine.saveSettings)
        return self._find_nic_api(machine, nic.id)

    # -- disks ------------------------------------------------------------------------

    def _hard_disk(self) -> int:
        return self.api.constant("DeviceType", "HardDisk")

    def _ensure_controller_api(self, mutable: Any, bus: str) -> str:
        """The controller of *bus* (the VBoxManage transport's name and type), added when missing."""
        api = self.api
        name = _BUS_CONTROLLERS[bus][0]
        if name in {str(c.name) for c in mutable.storageControllers}:
            return name
        storage_bus, controller_type, ports = _CONTROLLER_TYPES[bus]
        api.call("addStorageController", mutable.addStorageController, name, api.constant("StorageBus", storage_bus))
        controller = api.call("getStorageControllerByName", mutable.getStorageControllerByName, name)
        api.set(controller, "controllerType", api.constant("StorageControllerType", controller_type))
        if ports is not None:
            api.set(controller, "portCount", ports)
        return name

    def _free_port_api(self, mutable: Any, controller: str) -> int:
        """The lowest free port of *controller*; the port count grows when every port is taken."""
        used = {int(a.port) for a in mutable.mediumAttachments if str(a.controller) == controller}
        port = 0
        while port in used:
            port += 1
        ctl = self.api.call("getStorageControllerByName", mutable.getStorageControllerByName, controller)
        if port >= int(ctl.portCount):
            self.api.set(ctl, "portCount", port + 1)
        return port

    def _attach_disk_api(self, mutable: Any, folder: Path, disk: Disk, default_name: str, created: list[Any]) -> str:
        """Create (or open) *disk* and attach it to *mutable*; return its id ``<controller>-<port>-<device>``.

        New media are appended to *created* (the caller deletes them when the whole change fails).
        """
        api = self.api
        controller = self._ensure_controller_api(mutable, disk.bus or "sata")
        port = self._free_port_api(mutable, controller)
        access = api.constant("AccessMode", "ReadWrite")
        if disk.path:
            medium = api.call("IVirtualBox.openMedium", api.vbox.openMedium, disk.path, self._hard_disk(), access,
                              False)  # fmt: skip
        else:
            path = disk_path(str(folder), disk, default_name)
            medium = api.call("IVirtualBox.createMedium", api.vbox.createMedium, "VDI", path, access,
                              self._hard_disk())  # fmt: skip
            variant = api.constant("MediumVariant", "Standard" if disk.thin else "Fixed")
            progress = api.call("IMedium.createBaseStorage", medium.createBaseStorage, (disk.size_mib or 0) * 2**20,
                                [variant])  # fmt: skip
            api.wait(progress, "create disk")
            created.append(medium)
        api.call("IMachine.attachDevice", mutable.attachDevice, controller, port, 0, self._hard_disk(), medium)
        return f"{controller}-{port}-0"

    def _delete_media(self, media: Sequence[Any]) -> None:
        """Delete the media a failed change made (best effort: failures are logged, the change's error is raised)."""
        for medium in media:
            try:
                self.api.wait(self.api.call("IMedium.deleteStorage", medium.deleteStorage), "delete disk")
            except VirtAbstractError as exc:
                log.warning("could not delete %s after a failed change: %s", medium.location, exc)

    def _medium_at(self, machine: Any, disk_id: str) -> Any:
        ctl, port, device = disk_id.rsplit("-", 2)
        for att in machine.mediumAttachments:
            if (str(att.controller), int(att.port), int(att.device)) == (ctl, int(port), int(device)):
                return att.medium
        raise DeviceNotFound(f"VM {machine.name!r} has no disk {disk_id!r}")

    def add_disk(self, vm_id: str, disk: Disk) -> DiskInfo:
        """Create (or open) the image and attach it under a write lock (VM off, as on VBoxManage)."""
        api = self.api
        machine = self._machine(vm_id)
        self._require_off_api(machine, "add a disk to")
        self._check_storage(disk, "disk")
        name = str(machine.name)
        count = sum(1 for a in machine.mediumAttachments if int(a.type) == self._hard_disk())
        folder = Path(str(machine.settingsFilePath)).parent
        created: list[Any] = []
        try:
            with api.session(machine, LOCK_WRITE) as session:
                default = f"{name}-disk{count}-{uuidlib.uuid4().hex[:6]}"
                disk_id = self._attach_disk_api(session.machine, folder, disk, default, created)
                api.call("saveSettings", session.machine.saveSettings)
        except BaseException:
            self._delete_media(created)
            raise
        return self._find_disk(vm_id, disk_id)

    def remove_disk(self, vm_id: str, disk_id: str, *, delete: bool) -> None:
        """``detachDevice`` under a write lock (VM off), then ``deleteStorage`` or ``close`` the medium.

        Like ``closemedium`` on the VBoxManage transport, a medium VirtualBox keeps (one a
        snapshot still uses) is left in place, with a warning.
        """
        api = self.api
        machine = self._machine(vm_id)
        self._require_off_api(machine, "remove a disk from")
        disk = self._find_disk(vm_id, disk_id)
        medium = self._medium_at(machine, disk.id)
        ctl, port, device = disk.id.rsplit("-", 2)
        with api.session(machine, LOCK_WRITE) as session:
            api.call("IMachine.detachDevice", session.machine.detachDevice, ctl, int(port), int(device))
            api.call("saveSettings", session.machine.saveSettings)
        try:
            if delete:
                api.wait(api.call("IMedium.deleteStorage", medium.deleteStorage), "delete disk")
            else:
                api.call("IMedium.close", medium.close)
        except VirtAbstractError as exc:
            log.warning("disk %s was detached but VirtualBox keeps its medium: %s", disk.path, exc)

    def resize_disk(self, vm_id: str, disk_id: str, size_mib: int) -> DiskInfo:
        """``IMedium.resize`` (VDI/VHD grow only; VirtualBox refuses while a running VM holds the medium)."""
        machine = self._machine(vm_id)
        disk = self._find_disk(vm_id, disk_id)
        medium = self._medium_at(machine, disk.id)
        self.api.wait(self.api.call("IMedium.resize", medium.resize, size_mib * 2**20), "resize disk")
        return self._find_disk(vm_id, disk.id)

    # -- resources and firmware -----------------------------------------------------------

    def _host_mhz(self) -> int:
        """``IHost.getProcessorSpeed(0)``, 0 when VirtualBox does not know it (the CPU cap helpers use it)."""
        try:
            return int(self.api.call("IHost.getProcessorSpeed", self.api.vbox.host.getProcessorSpeed, 0))
        except VirtAbstractError as exc:
            log.debug("host CPU speed unknown: %s", exc)
            return 0

    def get_resources(self, vm_id: str) -> ResourceAllocation:
        """The CPU execution cap as ``cpu_limit_mhz``; VirtualBox has no other entitlement."""
        machine = self._machine(vm_id)
        cap, cpus = int(machine.CPUExecutionCap), int(machine.CPUCount)
        return ResourceAllocation(cpu_limit_mhz=self._cap_to_mhz(cap, cpus))

    def set_resources(self, vm_id: str, resources: ResourceAllocation) -> ResourceAllocation:
        """Set ``CPUExecutionCap`` under a shared lock (a running VM takes it live)."""
        api = self.api
        machine = self._machine(vm_id)
        cap = self._cpu_cap(resources, int(machine.CPUCount))
        with api.session(machine, LOCK_SHARED) as session:
            api.set(session.machine, "CPUExecutionCap", cap)
            api.call("saveSettings", session.machine.saveSettings)
        return self.get_resources(vm_id)

    def _firmware_api(self, machine: Any) -> Firmware:
        """UEFI for the ``EFI*`` firmware types, else BIOS."""
        return Firmware.UEFI if self.api.firmware_type(machine).startswith("EFI") else Firmware.BIOS

    def _discard_saved_state(self, machine: Any) -> None:
        """``IMachine.discardSavedState(true)`` under a write lock: Saved / AbortedSaved -> PoweredOff."""
        with self.api.session(machine, LOCK_WRITE) as session:
            self.api.call("IMachine.discardSavedState", session.machine.discardSavedState, True)

    # -- create and clone -----------------------------------------------------------------

    def _new_machine(self, name: str, ostype: str, groups: list[str], vm_uuid: str) -> Any:
        """``createMachine`` (not registered yet); in a folder of its own when the default settings file is taken."""
        api = self.api
        try:
            return api.create_machine(name, ostype, groups, f"UUID={vm_uuid}")
        except AlreadyExists:
            # Duplicate names are allowed; the default <folder>/<name>/<name>.vbox is not (see VBoxBackend.create_vm).
            base = f"{api.vbox.systemProperties.defaultMachineFolder}/{name}-{vm_uuid[:8]}"
            settings = api.call("composeMachineFilename", api.vbox.composeMachineFilename, name, "", "", base)
            return api.create_machine(name, ostype, groups, f"UUID={vm_uuid}", settings)

    def clone_vm(self, vm_id: str, name: str, *, linked: bool, snapshot_id: str | None) -> VMInfo:
        """``cloneTo`` a new machine (from the snapshot's machine when given), then register it; new MACs.

        A linked clone without a snapshot takes ``linked-clone-base-<name>`` first (with memory
        when the VM runs); it is deleted again when the clone fails.
        """
        machine = self._machine(vm_id)
        taken = None
        if linked and snapshot_id is None:
            memory = is_online(self._state(machine))
            taken = self.create_snapshot(vm_id, f"linked-clone-base-{name}", description="", memory=memory,
                                         quiesce=False).id  # fmt: skip
            snapshot_id = taken
        try:
            source = machine
            if snapshot_id is not None:
                snapshot = self.api.call("IMachine.findSnapshot", machine.findSnapshot, snapshot_id)
                source = self.api.call("ISnapshot.machine", lambda: snapshot.machine)
            return self._clone_machine(source, name, linked)
        except BaseException:
            if taken is not None:
                self._forget_snapshot(vm_id, taken)
            raise

    def _clone_machine(self, source: Any, name: str, linked: bool) -> VMInfo:
        api = self.api
        new_uuid = str(uuidlib.uuid4())
        target = self._new_machine(name, str(source.OSTypeId), list(source.groups) or ["/"], new_uuid)
        options = [api.constant("CloneOptions", "Link")] if linked else []
        registered = False
        try:
            progress = api.call("IMachine.cloneTo", source.cloneTo, target, api.constant("CloneMode", "MachineState"),
                                options)  # fmt: skip
            api.wait(progress, "clone")
            api.call("IVirtualBox.registerMachine", api.vbox.registerMachine, target)
            registered = True
            return self.get_vm(new_uuid)
        except BaseException:
            log.warning("cloning into %r failed; removing the half-made clone", name)
            self._discard_clone(target, registered)
            raise

    def _discard_clone(self, target: Any, registered: bool) -> None:
        """Delete a clone that failed: its settings and the media cloneTo made (never the source's)."""
        api = self.api
        try:
            if registered:
                self._delete(target, True)
                return
            disk = self._hard_disk()
            media = [a.medium for a in target.mediumAttachments if int(a.type) == disk and a.medium is not None]
            api.wait(api.call("IMachine.deleteConfig", target.deleteConfig, media), "delete the half-made clone")
        except VirtAbstractError as exc:
            log.warning("could not remove the half-made clone %s: %s", target.name, exc)

    def _linked_clones_api(self, machine: Any) -> list[str]:
        """The linked clones built on *machine*'s disks, by name (the VBoxManage transport's rule and records)."""
        own = self._own_media(machine)
        children = [c for m in own for c in self.api.call("IMedium.children", lambda m=m: list(m.children))]
        return linked_clone_names(str(machine.id), [self._medium_record(m) for m in own + children])

    def _own_media(self, machine: Any) -> list[Any]:
        """The hard disks of *machine*'s current state and of every snapshot: what deleting it deletes."""
        disk = self._hard_disk()
        found: dict[str, Any] = {}
        for view in [machine, *(snap.machine for snap in self._snapshot_objects(machine))]:
            for att in view.mediumAttachments:
                if int(att.type) == disk and att.medium is not None:
                    found.setdefault(str(att.medium.id), att.medium)
        return list(found.values())

    def _snapshot_objects(self, machine: Any) -> list[Any]:
        """Every ``ISnapshot`` of *machine* (the whole tree)."""
        if not int(machine.snapshotCount):
            return []
        pending = [self.api.call("IMachine.findSnapshot", machine.findSnapshot, "")]
        found = []
        while pending:
            snap = pending.pop()
            found.append(snap)
            pending.extend(snap.children)
        return found

    def _medium_record(self, medium: Any) -> MediumRecord:
        """*medium* as ``list hdds`` describes it: UUID, parent, location and the VMs using it (``machineIds``)."""
        api = self.api
        users = []
        for machine_id in api.call("IMedium.machineIds", lambda: list(medium.machineIds)):
            user = api.call("IVirtualBox.findMachine", api.vbox.findMachine, str(machine_id))
            users.append((str(user.name), str(machine_id).lower()))
        parent = medium.parent
        return MediumRecord(uuid=str(medium.id).lower(), parent=str(parent.id).lower() if parent is not None else "",
                            location=str(medium.location), users=tuple(users))  # fmt: skip

    def _forget_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        try:
            self.delete_snapshot(vm_id, snapshot_id, children=False)
        except VirtAbstractError as exc:
            log.warning("could not delete the snapshot %s taken for a failed linked clone: %s", snapshot_id, exc)

    def _attach_new_disks(self, mutable: Any, machine: Any, disks: Sequence[Disk], created: list[Any]) -> None:
        """Attach the disks of a new VM in order; new images are named ``<vm name>-disk<i>``."""
        folder = Path(str(machine.settingsFilePath)).parent
        for i, disk in enumerate(disks):
            self._attach_disk_api(mutable, folder, disk, f"{machine.name}-disk{i}", created)
