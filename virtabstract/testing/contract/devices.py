"""Devices: disks (add, resize, remove) and NICs (add, update, remove), as seen in ``info()``."""

from __future__ import annotations

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, DiskInfo, NicInfo
from ..._spec import Disk, Nic
from ...errors import DeviceNotFound, SpecError
from ._base import ContractBase, require

__all__ = ["DevicesContract"]

FIXED_MAC = "52:54:00:7a:c0:01"


class DevicesContract(ContractBase):
    """Device changes on a stopped VM are visible in ``info()`` at once."""

    # -- disks -------------------------------------------------------------------------------

    def _disk(self, **overrides: object) -> Disk:
        fields: dict[str, object] = {"size": "64MiB", "storage": self.spec_storage}
        fields.update(overrides)
        return Disk.from_dict(fields)

    def test_devices_add_disk(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """An added disk appears in ``info().disks`` with its size and a new id."""
        require(hypervisor, Capability.DISKS)
        before = stopped_vm.info().disks
        added = stopped_vm.add_disk(self._disk())
        assert isinstance(added, DiskInfo)
        assert added.size_mib == 64
        assert added.id not in {d.id for d in before}
        after = {d.id: d for d in stopped_vm.info().disks}
        assert len(after) == len(before) + 1
        assert after[added.id].size_mib == 64
        assert {d.id for d in before} <= set(after), "adding a disk changed the ids of the others"

    def test_devices_add_disk_from_mapping(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``add_disk()`` accepts plain data; a bad size is a :class:`SpecError` and adds nothing."""
        require(hypervisor, Capability.DISKS)
        count = len(stopped_vm.info().disks)
        added = stopped_vm.add_disk({"size": 32, "storage": self.spec_storage})
        assert added.size_mib == 32
        with pytest.raises(SpecError):
            stopped_vm.add_disk({"size": "huge"})
        assert len(stopped_vm.info().disks) == count + 1

    def test_devices_remove_disk(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A removed disk is gone from ``info().disks``; the others stay."""
        require(hypervisor, Capability.DISKS)
        before = {d.id for d in stopped_vm.info().disks}
        added = stopped_vm.add_disk(self._disk())
        stopped_vm.remove_disk(added.id)
        assert {d.id for d in stopped_vm.info().disks} == before

    def test_devices_remove_disk_keep_storage(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``remove_disk(delete=False)`` detaches the disk."""
        require(hypervisor, Capability.DISKS)
        added = stopped_vm.add_disk(self._disk())
        stopped_vm.remove_disk(added.id, delete=False)
        assert added.id not in {d.id for d in stopped_vm.info().disks}

    def test_devices_remove_unknown_disk(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Removing a disk the VM does not have raises :class:`DeviceNotFound`."""
        require(hypervisor, Capability.DISKS)
        before = stopped_vm.info().disks
        with pytest.raises(DeviceNotFound):
            stopped_vm.remove_disk("no-such-disk")
        assert stopped_vm.info().disks == before

    def test_devices_resize_disk(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A disk grows to the size asked; shrinking is a :class:`SpecError` and changes nothing."""
        require(hypervisor, Capability.DISKS, Capability.DISK_RESIZE)
        added = stopped_vm.add_disk(self._disk())
        resized = stopped_vm.resize_disk(added.id, "128MiB")
        assert isinstance(resized, DiskInfo)
        assert resized.id == added.id
        assert resized.size_mib == 128
        by_id = {d.id: d for d in stopped_vm.info().disks}
        assert by_id[added.id].size_mib == 128
        with pytest.raises(SpecError):
            stopped_vm.resize_disk(added.id, "32MiB")
        assert {d.id: d for d in stopped_vm.info().disks}[added.id].size_mib == 128

    def test_devices_resize_unknown_disk(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Resizing a disk the VM does not have raises :class:`DeviceNotFound`."""
        require(hypervisor, Capability.DISKS, Capability.DISK_RESIZE)
        with pytest.raises(DeviceNotFound):
            stopped_vm.resize_disk("no-such-disk", "1GiB")

    # -- NICs --------------------------------------------------------------------------------

    def _network(self) -> str:
        if self.spec_network is None:
            pytest.skip("spec_network is None: the contract knows no network to attach NICs to")
        return self.spec_network

    def _other_network(self, hypervisor: Hypervisor, current: str) -> str | None:
        if not hypervisor.supports(Capability.NETWORKS):
            return None
        return next((n.name for n in hypervisor.networks() if n.name != current and n.active), None)

    def test_devices_add_nic(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """An added NIC appears in ``info().nics`` on its network, with a MAC no other NIC has."""
        require(hypervisor, Capability.NICS)
        network = self._network()
        before = stopped_vm.info().nics
        added = stopped_vm.add_nic(Nic(network=network))
        assert isinstance(added, NicInfo)
        assert added.network == network
        assert added.mac
        assert added.mac.lower() not in {n.mac.lower() for n in before}
        after = {n.id: n for n in stopped_vm.info().nics}
        assert len(after) == len(before) + 1
        assert after[added.id].mac == added.mac
        assert after[added.id].connected is True

    def test_devices_add_nic_fixed_mac(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A NIC keeps the MAC address it was given."""
        require(hypervisor, Capability.NICS)
        added = stopped_vm.add_nic({"network": self._network(), "mac": FIXED_MAC.upper()})
        assert added.mac.lower() == FIXED_MAC
        assert FIXED_MAC in {n.mac.lower() for n in stopped_vm.info().nics}

    def test_devices_update_nic_link(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``update_nic(connected=...)`` unplugs and replugs the link, visibly."""
        require(hypervisor, Capability.NICS)
        added = stopped_vm.add_nic(Nic(network=self._network()))
        updated = stopped_vm.update_nic(added.id, connected=False)
        assert updated.connected is False
        assert {n.id: n for n in stopped_vm.info().nics}[added.id].connected is False
        stopped_vm.update_nic(added.id, connected=True)
        nic = {n.id: n for n in stopped_vm.info().nics}[added.id]
        assert nic.connected is True
        assert nic.mac == added.mac, "changing the link state changed the MAC"

    def test_devices_update_nic_network(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``update_nic(network=...)`` moves the NIC to another network, keeping its MAC."""
        require(hypervisor, Capability.NICS)
        network = self._network()
        other = self._other_network(hypervisor, network)
        if other is None:
            pytest.skip("the hypervisor lists no second network to move a NIC to")
        added = stopped_vm.add_nic(Nic(network=network))
        moved = stopped_vm.update_nic(added.id, network=other)
        assert moved.network == other
        nic = {n.id: n for n in stopped_vm.info().nics}[added.id]
        assert nic.network == other
        assert nic.mac == added.mac

    def test_devices_remove_nic(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A removed NIC is gone from ``info().nics``; the others stay."""
        require(hypervisor, Capability.NICS)
        before = {n.id for n in stopped_vm.info().nics}
        added = stopped_vm.add_nic(Nic(network=self._network()))
        stopped_vm.remove_nic(added.id)
        assert {n.id for n in stopped_vm.info().nics} == before

    def test_devices_remove_nic_by_mac(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A NIC can be removed by its MAC address."""
        require(hypervisor, Capability.NICS)
        added = stopped_vm.add_nic(Nic(network=self._network(), mac=FIXED_MAC))
        stopped_vm.remove_nic(FIXED_MAC)
        assert added.id not in {n.id for n in stopped_vm.info().nics}

    def test_devices_unknown_nic(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Updating or removing a NIC the VM does not have raises :class:`DeviceNotFound`."""
        require(hypervisor, Capability.NICS)
        before = stopped_vm.info().nics
        with pytest.raises(DeviceNotFound):
            stopped_vm.remove_nic("no-such-nic")
        with pytest.raises(DeviceNotFound):
            stopped_vm.update_nic("no-such-nic", connected=False)
        assert stopped_vm.info().nics == before
