"""Building vSphere config specs from virtabstract specs: VM creation and device changes.

Choices (documented in the backend's docs):

* disks go on a SCSI controller by default: VMware Paravirtual (``pvscsi``) for Linux and
  Windows guests, LSI Logic for everything else; ``bus="sata"`` adds an AHCI controller,
  ``"ide"`` uses the VM's built-in IDE controller, ``"nvme"`` an NVMe controller;
  ``"virtio"`` does not exist on vSphere and is a SpecError;
* disks are thin unless ``thin=False`` (then eager-zeroed thick is *not* implied: lazy-zeroed);
* NICs are ``vmxnet3`` unless a model is given (``e1000e``, ``e1000``); a network name resolves to a
  standard port group or a distributed port group; ``"default"`` means ``"VM Network"``;
* the CD-ROM sits on IDE 0 (or a SATA controller with ``bus="sata"``);
* firmware ``uefi`` → ``efi`` (+ ``efiSecureBootEnabled``);
* CPU and memory hot-add are enabled, so growing a running VM is live (vSphere's default
  is off; hot-add disables vNUMA for the VM, turn it off in the vSphere client if that matters);
* the instance UUID (the VM's virtabstract id) is a fresh random UUID, never derived from the path.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from virtabstract import Disk, Firmware, Nic, OSFamily, VMSpec, get_guest_os
from virtabstract.errors import NetworkNotFound, SpecError

from ._inventory import TAGS_KEY, controller_bus, is_disk
from ._sdk import sdk

__all__ = ["DeviceBuilder", "NetworkRef", "config_spec_for", "tags_option"]

SCSI_RESERVED_UNIT = 7
UNITS_PER_BUS = {"scsi": 16, "sata": 30, "ide": 2, "nvme": 15}
IDE_CONTROLLER_KEY = 200
DEFAULT_NETWORK = "VM Network"


@dataclass(frozen=True)
class NetworkRef:
    """A network a NIC can attach to: a standard port group or a distributed one."""

    name: str
    obj: Any
    distributed: bool = False
    portgroup_key: str = ""
    switch_uuid: str = ""


@dataclass
class DeviceBuilder:
    """Accumulates device changes for one ConfigSpec, allocating temporary keys and free unit numbers."""

    existing: list[Any] = field(default_factory=list)
    changes: list[Any] = field(default_factory=list)
    guest_family: OSFamily = OSFamily.OTHER
    _next_key: int = -100
    _used_units: dict[int, set[int]] = field(default_factory=dict)
    _new_controllers: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for device in self.existing:
            controller_key = getattr(device, "controllerKey", None)
            unit = getattr(device, "unitNumber", None)
            if controller_key is not None and unit is not None:
                self._used_units.setdefault(int(controller_key), set()).add(int(unit))

    def _key(self) -> int:
        self._next_key -= 1
        return self._next_key

    # -- controllers --------------------------------------------------------------------

    def controller(self, bus: str) -> tuple[int, Any]:
        """The key of a controller for *bus* with a free slot, adding one to the spec when needed."""
        vim = sdk().vim
        for device in self.existing:
            if controller_bus(device) == bus and self._free_unit(int(device.key), bus) is not None:
                return int(device.key), device
        if bus in self._new_controllers:
            device = self._new_controllers[bus]
            return int(device.key), device
        if bus == "ide":
            # ESXi gives every VM two IDE controllers (keys 200 and 201).
            return IDE_CONTROLLER_KEY, None
        device = self._new_controller_device(bus)
        device.key = self._key()
        self._new_controllers[bus] = device
        self.changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=device))
        return int(device.key), device

    def _new_controller_device(self, bus: str) -> Any:
        dev = sdk().vim.vm.device
        if bus == "scsi":
            cls = dev.ParaVirtualSCSIController
            if self.guest_family not in (OSFamily.LINUX, OSFamily.WINDOWS):
                cls = dev.VirtualLsiLogicController
            return cls(busNumber=self._next_bus("scsi"), sharedBus="noSharing")
        if bus == "sata":
            return dev.VirtualAHCIController(busNumber=self._next_bus("sata"))
        if bus == "nvme":
            return dev.VirtualNVMEController(busNumber=self._next_bus("nvme"))
        raise SpecError("bus", "scsi, sata, ide or nvme on vSphere", bus)

    def _next_bus(self, bus: str) -> int:
        used = {int(getattr(d, "busNumber", 0) or 0) for d in self.existing if controller_bus(d) == bus}
        number = 0
        while number in used:
            number += 1
        return number

    def _free_unit(self, controller_key: int, bus: str) -> int | None:
        used = self._used_units.get(controller_key, set())
        for unit in range(UNITS_PER_BUS.get(bus, 16)):
            if bus == "scsi" and unit == SCSI_RESERVED_UNIT:
                continue
            if unit not in used:
                return unit
        return None

    def _take_unit(self, controller_key: int, bus: str) -> int:
        unit = self._free_unit(controller_key, bus)
        if unit is None:
            raise SpecError("bus", f"a {bus} controller with a free slot", bus)
        self._used_units.setdefault(controller_key, set()).add(unit)
        return unit

    # -- devices --------------------------------------------------------------------------

    def add_disk(self, disk: Disk, datastore: str, *, path: str = "disks") -> Any:
        """Add a new thin (or thick) disk, or attach ``disk.path``; return the device object."""
        vim = sdk().vim
        bus = disk.bus or "scsi"
        if bus == "virtio":
            raise SpecError(f"{path}.bus", "scsi, sata, ide or nvme (vSphere has no virtio disks)", bus)
        controller_key, _ = self.controller(bus)
        backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=disk.thin)
        device = vim.vm.device.VirtualDisk(
            key=self._key(), controllerKey=controller_key, unitNumber=self._take_unit(controller_key, bus)
        )
        spec = vim.vm.device.VirtualDeviceSpec(operation="add", device=device)
        if disk.path:
            backing.fileName = disk.path
        else:
            size_mib = disk.size_mib or 0
            device.capacityInKB = size_mib * 1024
            backing.fileName = f"[{disk.storage or datastore}]" if (disk.storage or datastore) else ""
            spec.fileOperation = "create"
        device.backing = backing
        self.changes.append(spec)
        return device

    def add_nic(self, nic: Nic, network: NetworkRef, *, path: str = "nics") -> Any:
        """Add a NIC on *network*; return the device object."""
        dev = sdk().vim.vm.device
        model = nic.model or "vmxnet3"
        classes = {"vmxnet3": dev.VirtualVmxnet3, "e1000e": dev.VirtualE1000e, "e1000": dev.VirtualE1000}
        if model not in classes:
            raise SpecError(f"{path}.model", "vmxnet3, e1000e or e1000 on vSphere", model)
        device = classes[model](key=self._key())
        device.backing = backing_for(network)
        device.connectable = dev.VirtualDevice.ConnectInfo(
            startConnected=nic.connected, connected=nic.connected, allowGuestControl=True
        )
        if nic.mac:
            device.addressType = "manual"
            device.macAddress = nic.mac
        else:
            device.addressType = "generated"
        self.changes.append(dev.VirtualDeviceSpec(operation="add", device=device))
        return device

    def add_cdrom(self, iso: str | None, bus: str | None) -> Any:
        """Add a CD-ROM drive, with *iso* inserted when given."""
        dev = sdk().vim.vm.device
        chosen = bus or "ide"
        if chosen == "scsi":
            raise SpecError("cdrom.bus", "ide or sata on vSphere", chosen)
        controller_key, _ = self.controller(chosen)
        device = dev.VirtualCdrom(key=self._key(), controllerKey=controller_key)
        device.unitNumber = self._take_unit(controller_key, chosen)
        if iso:
            device.backing = dev.VirtualCdrom.IsoBackingInfo(fileName=iso)
        else:
            device.backing = dev.VirtualCdrom.RemotePassthroughBackingInfo(deviceName="", exclusive=False)
        device.connectable = dev.VirtualDevice.ConnectInfo(startConnected=bool(iso), allowGuestControl=True)
        self.changes.append(dev.VirtualDeviceSpec(operation="add", device=device))
        return device

    def remove(self, device: Any, *, destroy_file: bool = False) -> None:
        """Remove *device* (and its backing file with *destroy_file*)."""
        spec = sdk().vim.vm.device.VirtualDeviceSpec(operation="remove", device=device)
        if destroy_file and is_disk(device):
            spec.fileOperation = "destroy"
        self.changes.append(spec)

    def edit(self, device: Any) -> None:
        """Apply the in-place changes made to *device*."""
        self.changes.append(sdk().vim.vm.device.VirtualDeviceSpec(operation="edit", device=device))


def backing_for(network: NetworkRef) -> Any:
    """The NIC backing for a standard or distributed port group."""
    dev = sdk().vim.vm.device
    if network.distributed:
        port = sdk().vim.dvs.PortConnection(portgroupKey=network.portgroup_key, switchUuid=network.switch_uuid)
        return dev.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return dev.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name, network=network.obj)


def resolve_network(name: str, networks: Mapping[str, NetworkRef], *, path: str) -> NetworkRef:
    """The network named *name* (``"default"`` → ``"VM Network"``)."""
    wanted = DEFAULT_NETWORK if name == "default" and name not in networks else name
    found = networks.get(wanted)
    if found is None:
        known = ", ".join(sorted(networks)) or "none"
        raise NetworkNotFound(f"{path}: no port group named {name!r} (known: {known})")
    return found


def tags_option(tags: Iterable[str]) -> Any:
    """The extraConfig option that stores virtabstract tags."""
    return sdk().vim.option.OptionValue(key=TAGS_KEY, value=",".join(sorted(set(tags))))


def check_spec_for_vsphere(spec: VMSpec) -> None:
    """Refuse spec fields vSphere cannot honour, before anything is created."""
    if spec.graphics == "spice":
        raise SpecError("graphics", "'vnc' or 'none' on vSphere (its console is WebMKS)", spec.graphics)
    if spec.acceleration == "software":
        raise SpecError("acceleration", "'auto' or 'hardware' on vSphere (ESXi always uses hardware virtualisation)")
    if spec.autostart:
        raise SpecError("autostart", "false: the esxi backend does not manage host autostart", True)
    for i, disk in enumerate(spec.disks):
        assert isinstance(disk, Disk)
        if disk.bus == "virtio":
            raise SpecError(f"disks[{i}].bus", "scsi, sata, ide or nvme (vSphere has no virtio disks)", disk.bus)
    for i, nic in enumerate(spec.nics):
        assert isinstance(nic, Nic)
        if nic.model not in (None, "vmxnet3", "e1000e", "e1000"):
            raise SpecError(f"nics[{i}].model", "vmxnet3, e1000e or e1000 on vSphere", nic.model)
        if nic.kind not in ("network", "bridge"):
            raise SpecError(f"nics[{i}].kind", "'network' (a port group) on vSphere", nic.kind)


def config_spec_for(
    spec: VMSpec,
    *,
    guest_id: str,
    datastore: str,
    networks: Mapping[str, NetworkRef],
) -> Any:
    """The ``VirtualMachineConfigSpec`` that creates *spec* on *datastore*."""
    vim = sdk().vim
    family = get_guest_os(spec.guest_os).family
    builder = DeviceBuilder(guest_family=family)
    for i, disk in enumerate(spec.disks):
        assert isinstance(disk, Disk)
        builder.add_disk(disk, datastore, path=f"disks[{i}]")
    for i, nic in enumerate(spec.nics):
        assert isinstance(nic, Nic)
        builder.add_nic(nic, resolve_network(nic.network, networks, path=f"nics[{i}].network"), path=f"nics[{i}]")
    if spec.cdrom is not None:
        builder.add_cdrom(spec.cdrom.iso, spec.cdrom.bus)  # type: ignore[union-attr]
    config = vim.vm.ConfigSpec(
        name=spec.name,
        guestId=guest_id,
        numCPUs=spec.cpus,
        memoryMB=spec.memory_mib,
        annotation=spec.description,
        files=vim.vm.FileInfo(vmPathName=f"[{datastore}]"),
        deviceChange=builder.changes,
        firmware="efi" if spec.firmware is Firmware.UEFI else "bios",
        instanceUuid=str(uuid.uuid4()),
        cpuHotAddEnabled=True,
        memoryHotAddEnabled=True,
    )
    if spec.secure_boot:
        config.bootOptions = vim.vm.BootOptions(efiSecureBootEnabled=True)
    if spec.tags:
        config.extraConfig = [tags_option(spec.tags)]
    return config
