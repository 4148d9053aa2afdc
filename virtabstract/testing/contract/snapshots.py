"""Snapshots: create, list, tree, current, revert (config and power state), delete, names."""

from __future__ import annotations

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState, SnapshotInfo
from ...errors import AlreadyExists, AmbiguousName, InvalidState, SnapshotNotFound
from ._base import ContractBase, require

__all__ = ["SnapshotContract"]


def _current_id(vm: VM) -> str | None:
    current = vm.snapshots.current
    return None if current is None else current.id


class SnapshotContract(ContractBase):
    """Snapshots really exist after create, really restore on revert and really go on delete."""

    def test_snapshot_create_list_tree(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A new snapshot is listed, is a tree root, is current, and its info is filled in."""
        require(hypervisor, Capability.SNAPSHOTS)
        vm = stopped_vm
        assert vm.snapshots.list() == []
        assert len(vm.snapshots) == 0
        assert _current_id(vm) is None
        snap = vm.snapshots.create("base", description="contract snapshot")
        info = snap.info
        assert isinstance(info, SnapshotInfo)
        assert info.id
        assert info.name == "base"
        assert info.description == "contract snapshot"
        assert info.vm_id == vm.id
        assert info.parent_id is None
        assert info.has_memory is False
        assert info.vm_state is PowerState.STOPPED
        assert [s.id for s in vm.snapshots.list()] == [snap.id]
        assert [s.id for s in vm.snapshots.tree()] == [snap.id]
        assert len(vm.snapshots) == 1
        current = vm.snapshots.current
        assert current is not None
        assert current.id == snap.id
        assert vm.snapshots.get("base").id == snap.id
        assert vm.snapshots.get(snap.id).id == snap.id
        assert vm.snapshots.get(snap.id) == snap

    def test_snapshot_ids_are_stable(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A snapshot keeps its id while other snapshots come and go."""
        require(hypervisor, Capability.SNAPSHOTS)
        first = stopped_vm.snapshots.create("first")
        second = stopped_vm.snapshots.create("second")
        assert first.id != second.id
        second.delete()
        assert [s.id for s in stopped_vm.snapshots.list()] == [first.id]
        third = stopped_vm.snapshots.create("third")
        assert {s.id for s in stopped_vm.snapshots.list()} == {first.id, third.id}

    def test_snapshot_handle_outlives_its_snapshot(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A handle's id and name need no round trip; its info is either the create's or SnapshotNotFound."""
        require(hypervisor, Capability.SNAPSHOTS)
        snap = stopped_vm.snapshots.create("brief")
        stopped_vm.snapshots.get(snap.id).delete()
        assert (snap.id, snap.name, snap.vm_id) == (snap.id, "brief", stopped_vm.id)
        assert stopped_vm.snapshots.list() == []
        try:
            info = snap.info  # a backend that returned it with the create keeps it; else it is read now
        except SnapshotNotFound:
            return
        assert (info.id, info.name) == (snap.id, "brief")

    def test_snapshot_children(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A second snapshot is the child of the first; the tree and ``current`` say so."""
        require(hypervisor, Capability.SNAPSHOTS)
        vm = stopped_vm
        parent = vm.snapshots.create("parent")
        child = vm.snapshots.create("child")
        assert child.parent_id == parent.id
        assert child.parent is not None
        assert child.parent.id == parent.id
        assert [c.id for c in parent.children] == [child.id]
        assert [s.id for s in vm.snapshots.tree()] == [parent.id]
        ids = [s.id for s in vm.snapshots.list()]
        assert ids.index(parent.id) < ids.index(child.id), "parents must be listed before children"
        current = vm.snapshots.current
        assert current is not None
        assert current.id == child.id
        fresh_parent = vm.snapshots.get(parent.id)
        if fresh_parent.info.children_ids:  # optional in SnapshotInfo, but right when given
            assert set(fresh_parent.info.children_ids) == {child.id}

    def test_snapshot_revert_restores_config(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Reverting brings back the CPUs, memory and description the VM had at snapshot time."""
        require(hypervisor, Capability.SNAPSHOTS, Capability.RECONFIGURE)
        vm = stopped_vm
        before = vm.info()
        snap = vm.snapshots.create("before-change")
        vm.reconfigure(cpus=before.cpus + 1, memory=before.memory_mib * 2, description="changed")
        changed = vm.info()
        assert changed.cpus == before.cpus + 1
        assert changed.memory_mib == before.memory_mib * 2
        snap.revert()
        after = vm.info()
        assert after.cpus == before.cpus
        assert after.memory_mib == before.memory_mib
        assert after.state is PowerState.STOPPED
        current = vm.snapshots.current
        assert current is not None
        assert current.id == snap.id

    def test_snapshot_revert_to_older(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Reverting to an older snapshot restores its config and makes it current; newer ones survive."""
        require(hypervisor, Capability.SNAPSHOTS, Capability.RECONFIGURE)
        vm = stopped_vm
        cpus = vm.info().cpus
        old = vm.snapshots.create("old")
        vm.reconfigure(cpus=cpus + 1)
        new = vm.snapshots.create("new")
        vm.reconfigure(cpus=cpus + 2)
        old.revert()
        assert vm.info().cpus == cpus
        new.revert()
        assert vm.info().cpus == cpus + 1
        assert {s.id for s in vm.snapshots.list()} == {old.id, new.id}

    def test_snapshot_revert_disk_only_stops_running_vm(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Reverting a running VM to a snapshot taken while it was off leaves it ``STOPPED``.

        A backend may refuse to revert a running VM instead (VirtualBox needs it off):
        then it raises :class:`InvalidState` and the VM keeps running.
        """
        require(hypervisor, Capability.SNAPSHOTS, Capability.START, Capability.POWER_OFF)
        vm = stopped_vm
        snap = vm.snapshots.create("off")
        vm.start()
        self.wait(vm, PowerState.RUNNING)
        try:
            snap.revert()
        except InvalidState:
            self.wait(vm, PowerState.RUNNING)
            return
        self.wait(vm, PowerState.STOPPED)

    def test_snapshot_with_memory(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """A memory snapshot of a running VM records that; reverting to it leaves the VM running."""
        require(hypervisor, Capability.SNAPSHOTS, Capability.SNAPSHOT_MEMORY)
        vm = running_vm
        snap = vm.snapshots.create("live", memory=True)
        assert snap.info.has_memory is True
        assert snap.info.vm_state is PowerState.RUNNING
        vm.power_off()
        self.wait(vm, PowerState.STOPPED)
        snap.revert()
        self.wait(vm, PowerState.RUNNING)

    def test_snapshot_delete(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A deleted snapshot is gone from the list and from lookups."""
        require(hypervisor, Capability.SNAPSHOTS)
        snap = stopped_vm.snapshots.create("doomed")
        snap.delete()
        assert stopped_vm.snapshots.list() == []
        with pytest.raises(SnapshotNotFound):
            stopped_vm.snapshots.get(snap.id)
        with pytest.raises(SnapshotNotFound):
            stopped_vm.snapshots.get("doomed")

    def test_snapshot_delete_keeps_children(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Deleting a parent alone keeps its child, which moves up to the parent's place."""
        require(hypervisor, Capability.SNAPSHOTS)
        vm = stopped_vm
        root = vm.snapshots.create("root")
        middle = vm.snapshots.create("middle")
        leaf = vm.snapshots.create("leaf")
        middle.delete()
        remaining = {s.id: s for s in vm.snapshots.list()}
        assert set(remaining) == {root.id, leaf.id}
        assert remaining[leaf.id].parent_id == root.id

    def test_snapshot_delete_with_children(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``delete(children=True)`` removes the whole subtree and nothing else."""
        require(hypervisor, Capability.SNAPSHOTS)
        vm = stopped_vm
        root = vm.snapshots.create("root")
        middle = vm.snapshots.create("middle")
        vm.snapshots.create("leaf")
        middle.delete(children=True)
        assert [s.id for s in vm.snapshots.list()] == [root.id]

    def test_snapshot_duplicate_name(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A second snapshot with the same name is refused; with ``allow_duplicate`` lookups become ambiguous.

        A backend declaring ``unique_snapshot_names`` refuses the name even with ``allow_duplicate``.
        """
        require(hypervisor, Capability.SNAPSHOTS)
        vm = stopped_vm
        first = vm.snapshots.create("same")
        with pytest.raises(AlreadyExists):
            vm.snapshots.create("same")
        assert len(vm.snapshots) == 1
        if hypervisor.backend.unique_snapshot_names:  # declared: the backend itself must refuse, whatever is asked
            with pytest.raises(AlreadyExists):
                vm.snapshots.create("same", allow_duplicate=True)
            assert [s.id for s in vm.snapshots.list()] == [first.id]
            return
        try:
            second = vm.snapshots.create("same", allow_duplicate=True)
        except AlreadyExists:
            pytest.skip(f"the {hypervisor.backend_name} backend keeps snapshot names unique")
        assert second.id != first.id
        with pytest.raises(AmbiguousName) as excinfo:
            vm.snapshots.get("same")
        assert set(excinfo.value.ids) == {first.id, second.id}
        assert vm.snapshots.get(second.id).id == second.id

    def test_snapshot_unknown(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Looking up a snapshot that does not exist raises :class:`SnapshotNotFound`."""
        require(hypervisor, Capability.SNAPSHOTS)
        stopped_vm.snapshots.create("present")
        with pytest.raises(SnapshotNotFound):
            stopped_vm.snapshots.get("absent")

    def test_snapshot_backend_rejects_unknown_id(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """The backend raises :class:`SnapshotNotFound` for revert/delete of an id the VM does not have."""
        require(hypervisor, Capability.SNAPSHOTS)
        snap = stopped_vm.snapshots.create("real")
        snap.delete()
        backend = hypervisor.backend
        with pytest.raises(SnapshotNotFound):
            backend.revert_snapshot(stopped_vm.id, snap.id)
        with pytest.raises(SnapshotNotFound):
            backend.delete_snapshot(stopped_vm.id, snap.id, children=False)

    def test_snapshot_deleted_with_vm(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A VM with snapshots can be deleted (its snapshots go with it)."""
        require(hypervisor, Capability.SNAPSHOTS)
        stopped_vm.snapshots.create("one")
        stopped_vm.snapshots.create("two")
        vm_id = stopped_vm.id
        stopped_vm.delete()
        assert vm_id not in hypervisor.vms
