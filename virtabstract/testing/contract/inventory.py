"""Inventory: the host, capabilities, listing, lookup by name and id, filters, networks, storage."""

from __future__ import annotations

import pytest

from ..._hypervisor import Hypervisor
from ..._model import Capability, HostInfo, NetworkInfo, PowerState, StorageInfo, VMInfo
from ..._spec import Disk, Nic
from ...errors import VMNotFound
from .._factory import VMFactory
from ._base import ContractBase, require

__all__ = ["InventoryContract"]


class InventoryContract(ContractBase):
    """The host description, capability declaration, VM listing and lookup."""

    def test_inventory_host_info(self, hypervisor: Hypervisor) -> None:
        """``hv.host`` is a filled-in :class:`HostInfo` naming this backend."""
        host = hypervisor.host
        assert isinstance(host, HostInfo)
        assert host.backend == hypervisor.backend_name
        assert host.hostname, "HostInfo.hostname is empty"
        assert host.hypervisor, "HostInfo.hypervisor (product name) is empty"
        assert host.cpu_count >= 1
        assert host.memory_mib >= 1

    def test_inventory_capabilities_are_declared(self, hypervisor: Hypervisor) -> None:
        """Capabilities are a frozenset of :class:`Capability`; dependent ones come with their base."""
        caps = hypervisor.capabilities
        assert isinstance(caps, frozenset)
        assert all(isinstance(c, Capability) for c in caps), caps
        needs = {
            Capability.RECONFIGURE_LIVE: Capability.RECONFIGURE,
            Capability.RECONFIGURE_DEFERRED: Capability.RECONFIGURE,
            Capability.SNAPSHOT_MEMORY: Capability.SNAPSHOTS,
            Capability.LINKED_CLONE: Capability.CLONE,
            Capability.DISK_RESIZE: Capability.DISKS,
        }
        for dependent, base in needs.items():
            if dependent in caps:
                assert base in caps, f"{dependent.name} is declared without {base.name}"
        if Capability.CREATE in caps:
            assert Capability.DELETE in caps, "a backend that creates VMs must be able to delete them"

    def test_inventory_created_vm_is_listed(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A created VM shows up in iteration, ``len()``, ``list_info()`` and ``in``, exactly once."""
        require(hypervisor, Capability.CREATE)
        before = len(hypervisor.vms)
        vm = vm_factory()
        infos = hypervisor.vms.list_info()
        assert all(isinstance(i, VMInfo) for i in infos)
        ids = [i.id for i in infos]
        assert len(ids) == len(set(ids)), "list_vms() returned a VM id twice"
        assert ids.count(vm.id) == 1
        assert len(hypervisor.vms) == before + 1
        assert vm.id in [v.id for v in hypervisor.vms]
        assert vm.id in hypervisor.vms
        assert vm.name in hypervisor.vms
        assert vm_factory.name("absent") not in hypervisor.vms

    def test_inventory_get_by_id_and_by_name(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``vms.get()`` finds a VM by its id and by its exact name; both give the same VM."""
        require(hypervisor, Capability.CREATE)
        vm = vm_factory()
        by_id = hypervisor.vms.get(vm.id)
        by_name = hypervisor.vms.get(vm.name)
        assert by_id.id == by_name.id == vm.id
        assert by_id == vm
        assert hash(by_id) == hash(vm)
        assert by_name.name == vm.name
        info = hypervisor.backend.get_vm(vm.id)
        assert info.id == vm.id
        assert [i.id for i in hypervisor.backend.find_vms_by_name(vm.name)] == [vm.id]

    def test_inventory_info_reflects_spec(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``info()`` reports what the spec asked for: name, CPUs, memory, OS, disks, NICs, text, tags."""
        require(hypervisor, Capability.CREATE)
        spec = vm_factory.spec(cpus=2, description="contract test VM", tags=["contract", "inventory"])
        vm = vm_factory(spec)
        info = vm.info()
        assert info.id == vm.id
        assert info.name == spec.name
        assert info.backend in ("", hypervisor.backend_name)
        assert info.state is PowerState.STOPPED
        assert isinstance(info.native_state, str)
        assert info.native_state
        assert info.cpus == 2
        assert info.memory_mib == spec.memory_mib
        assert info.guest_os == spec.guest_os
        assert info.description == "contract test VM"
        assert set(info.tags) == {"contract", "inventory"}
        assert len(info.disks) == len(spec.disks)
        for disk_info, disk_spec in zip(info.disks, spec.disks, strict=True):
            assert isinstance(disk_spec, Disk)
            if disk_spec.size_mib is not None:
                assert disk_info.size_mib == disk_spec.size_mib
        assert len(info.nics) == len(spec.nics)
        for nic_info, nic_spec in zip(info.nics, spec.nics, strict=True):
            assert isinstance(nic_spec, Nic)
            assert nic_info.network == nic_spec.network
            assert nic_info.mac, "a NIC has no MAC address"
        assert len({d.id for d in info.disks}) == len(info.disks), "disk ids are not unique"
        assert len({n.id for n in info.nics}) == len(info.nics), "NIC ids are not unique"

    def test_inventory_list_matches_get(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """The inventory listing and a single read agree on a VM's configuration."""
        require(hypervisor, Capability.CREATE)
        vm = vm_factory(cpus=2)
        listed = next(i for i in hypervisor.vms.list_info() if i.id == vm.id)
        single = vm.info()
        for field in ("id", "name", "state", "cpus", "memory_mib", "guest_os", "description", "tags"):
            assert getattr(listed, field) == getattr(single, field), field
        assert [d.id for d in listed.disks] == [d.id for d in single.disks]
        assert [n.mac for n in listed.nics] == [n.mac for n in single.nics]

    def test_inventory_summaries_match_info(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """The fast summary listing agrees with the full listing on every VM it shares fields with."""
        require(hypervisor, Capability.CREATE)
        vm = vm_factory(cpus=2)
        summaries = {s.id: s for s in hypervisor.vms.list_summaries()}
        infos = {i.id: i for i in hypervisor.vms.list_info()}
        assert vm.id in summaries
        assert set(summaries) == set(infos)
        for vm_id, summary in summaries.items():
            info = infos[vm_id]
            for field in ("name", "cpus", "memory_mib", "guest_os", "tags"):
                assert getattr(summary, field) == getattr(info, field), (vm_id, field)
            for address in summary.ip_addresses:
                assert isinstance(address, str)
                assert address

    def test_inventory_find_filters(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``vms.find()`` filters by name pattern, state, tag, guest OS and OS family."""
        require(hypervisor, Capability.CREATE)
        first = vm_factory(tags=["alpha"])
        second = vm_factory(tags=["beta"])
        mine = {v.id for v in hypervisor.vms.find(name=vm_factory.prefix + "*")}
        assert mine == {first.id, second.id}
        assert [v.id for v in hypervisor.vms.find(name=first.name)] == [first.id]
        tagged = {v.id for v in hypervisor.vms.find(tag="alpha")}
        assert first.id in tagged
        assert second.id not in tagged
        stopped = {v.id for v in hypervisor.vms.find(state=PowerState.STOPPED)}
        assert {first.id, second.id} <= stopped
        guest_os = first.info().guest_os
        if guest_os is not None:
            assert first.id in {v.id for v in hypervisor.vms.find(guest_os=guest_os)}
        assert hypervisor.vms.find(name=vm_factory.name("nomatch")) == []

    def test_inventory_unknown_vm(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Looking up a name or id nobody has raises :class:`VMNotFound`, at the facade and the backend."""
        missing = vm_factory.name("missing")
        with pytest.raises(VMNotFound):
            hypervisor.vms.get(missing)
        with pytest.raises(VMNotFound):
            hypervisor.backend.get_vm(missing)
        assert hypervisor.backend.find_vms_by_name(missing) == []

    def test_inventory_networks(self, hypervisor: Hypervisor) -> None:
        """``networks()`` lists :class:`NetworkInfo` records with unique names; the spec's network is one."""
        require(hypervisor, Capability.NETWORKS)
        networks = hypervisor.networks()
        assert all(isinstance(n, NetworkInfo) for n in networks)
        names = [n.name for n in networks]
        assert len(names) == len(set(names)), f"duplicate network names: {names}"
        if self.spec_network is not None:
            assert self.spec_network in names, f"the contract's network {self.spec_network!r} is not in {names}"

    def test_inventory_storage(self, hypervisor: Hypervisor) -> None:
        """``storage()`` lists :class:`StorageInfo` records with unique names and sane sizes."""
        require(hypervisor, Capability.STORAGE)
        pools = hypervisor.storage()
        assert pools, "STORAGE is declared but no storage is listed"
        assert all(isinstance(p, StorageInfo) for p in pools)
        names = [p.name for p in pools]
        assert len(names) == len(set(names)), f"duplicate storage names: {names}"
        for pool in pools:
            if pool.capacity_mib is not None and pool.free_mib is not None:
                assert 0 <= pool.free_mib <= pool.capacity_mib, pool
        if self.spec_storage is not None:
            assert self.spec_storage in names
