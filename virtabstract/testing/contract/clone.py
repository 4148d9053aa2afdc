"""Clones: full and linked, from the current state or a snapshot."""

from __future__ import annotations

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState, VMInfo
from ...errors import AlreadyExists, SpecError, UnsupportedOperation
from .._factory import VMFactory
from ._base import ContractBase, assert_state, require

__all__ = ["CloneContract"]


def _assert_is_copy(source: VMInfo, clone: VMInfo, name: str) -> None:
    assert clone.id != source.id, "a clone must get a new id"
    assert clone.name == name
    assert clone.cpus == source.cpus
    assert clone.memory_mib == source.memory_mib
    assert clone.guest_os == source.guest_os
    assert len(clone.disks) == len(source.disks)
    for src_disk, new_disk in zip(source.disks, clone.disks, strict=True):
        assert new_disk.size_mib == src_disk.size_mib
        if src_disk.path and new_disk.path:
            assert new_disk.path != src_disk.path, "a clone must not share the source's disk file"
    assert len(clone.nics) == len(source.nics)
    source_macs = {n.mac.lower() for n in source.nics}
    for src_nic, new_nic in zip(source.nics, clone.nics, strict=True):
        assert new_nic.network == src_nic.network
        assert new_nic.mac.lower() not in source_macs, f"the clone reuses MAC {new_nic.mac}"


class CloneContract(ContractBase):
    """A clone is a new VM: new id, new MACs, same hardware; the source is untouched."""

    def test_clone_full(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A full clone copies CPUs, memory, disks and NICs, with a new id and new MACs."""
        require(hypervisor, Capability.CREATE, Capability.CLONE)
        source = vm_factory(cpus=2)
        before = source.info()
        name = vm_factory.name("clone")
        clone = source.clone(name)
        vm_factory.track(clone)
        assert isinstance(clone, VM)
        _assert_is_copy(before, clone.info(), name)
        assert_state(clone, PowerState.STOPPED)
        assert hypervisor.vms.get(name).id == clone.id
        after = source.info()
        assert (after.name, after.cpus, after.memory_mib) == (before.name, before.cpus, before.memory_mib)
        assert [n.mac for n in after.nics] == [n.mac for n in before.nics]

    def test_clone_is_independent(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Changing or deleting a clone leaves the source as it was."""
        require(hypervisor, Capability.CREATE, Capability.CLONE, Capability.RECONFIGURE)
        source = vm_factory()
        cpus = source.info().cpus
        clone = source.clone(vm_factory.name("clone"))
        vm_factory.track(clone)
        clone.reconfigure(cpus=cpus + 1)
        assert clone.info().cpus == cpus + 1
        assert source.info().cpus == cpus
        clone.delete()
        assert source.info().cpus == cpus

    def test_clone_can_start(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A clone boots while its source runs too (no shared locks, no MAC clash)."""
        require(hypervisor, Capability.CREATE, Capability.CLONE, Capability.START, Capability.POWER_OFF)
        source = vm_factory()
        clone = source.clone(vm_factory.name("clone"))
        vm_factory.track(clone)
        source.start()
        clone.start()
        self.wait(source, PowerState.RUNNING)
        self.wait(clone, PowerState.RUNNING)

    def test_clone_duplicate_name(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """Cloning onto an existing name raises :class:`AlreadyExists` and creates nothing."""
        require(hypervisor, Capability.CREATE, Capability.CLONE)
        source = vm_factory()
        other = vm_factory()
        count = len(hypervisor.vms)
        with pytest.raises(AlreadyExists):
            source.clone(other.name)
        assert len(hypervisor.vms) == count

    def test_clone_bad_name(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """An invalid clone name is a :class:`SpecError` on the ``name`` field."""
        require(hypervisor, Capability.CREATE, Capability.CLONE)
        source = vm_factory()
        count = len(hypervisor.vms)
        with pytest.raises(SpecError) as excinfo:
            source.clone("bad/name")
        assert excinfo.value.field == "name"
        assert len(hypervisor.vms) == count

    def test_clone_from_snapshot(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A clone of a snapshot has the configuration the source had when the snapshot was taken."""
        require(hypervisor, Capability.CREATE, Capability.CLONE, Capability.SNAPSHOTS, Capability.RECONFIGURE)
        source = vm_factory()
        cpus = source.info().cpus
        snap = source.snapshots.create("for-clone")
        source.reconfigure(cpus=cpus + 1)
        name = vm_factory.name("clone")
        try:
            clone = source.clone(name, snapshot=snap)
        except UnsupportedOperation as exc:
            pytest.skip(f"the {hypervisor.backend_name} backend cannot clone from a snapshot: {exc}")
        vm_factory.track(clone)
        assert clone.info().cpus == cpus
        assert source.info().cpus == cpus + 1

    def test_clone_linked(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A linked clone is a new VM with new MACs; deleting it leaves the source usable."""
        require(hypervisor, Capability.CREATE, Capability.LINKED_CLONE)
        source = vm_factory()
        before = source.info()
        snap = source.snapshots.create("base") if hypervisor.supports(Capability.SNAPSHOTS) else None
        name = vm_factory.name("linked")
        clone = source.clone(name, linked=True, snapshot=snap)
        vm_factory.track(clone)
        _assert_is_copy(before, clone.info(), name)
        clone.delete()
        assert source.info().cpus == before.cpus
