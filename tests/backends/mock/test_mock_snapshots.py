"""Snapshot trees, memory semantics, and clones."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from virtabstract import VM, Disk, Hypervisor, ManualClock, PowerState
from virtabstract.backends.mock import MockBackend
from virtabstract.errors import AlreadyExists, InvalidState, SnapshotNotFound, UnsupportedOperation


def test_tree_and_current(make_vm: Callable[..., VM], clock: ManualClock) -> None:
    vm = make_vm()
    a = vm.snapshots.create("a", description="first")
    clock.advance(60)
    b = vm.snapshots.create("b")
    c = vm.snapshots.create("c")
    assert b.parent_id == a.id and c.parent_id == b.id
    assert vm.snapshots.current == c
    b.revert()
    d = vm.snapshots.create("d")
    assert d.parent_id == b.id
    assert {s.name for s in vm.snapshots.get("b").children} == {"c", "d"}
    assert [s.name for s in vm.snapshots.tree()] == ["a"]
    infos = {s.name: s.info for s in vm.snapshots}
    assert infos["a"].description == "first"
    assert infos["a"].created == datetime(2024, 1, 1, tzinfo=UTC)
    assert (infos["b"].created - infos["a"].created).total_seconds() == 60  # type: ignore[operator]
    assert infos["b"].children_ids == (c.id, d.id)
    assert infos["d"].is_current and not infos["c"].is_current
    # ids are stable
    assert vm.snapshots.get("a").id == a.id
    with pytest.raises(AlreadyExists):
        vm.snapshots.create("a")
    with pytest.raises(SnapshotNotFound):
        vm.snapshots.get("zzz")


def test_delete_reparents_children(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    a = vm.snapshots.create("a")
    b = vm.snapshots.create("b")
    c = vm.snapshots.create("c")
    b.delete()
    assert vm.snapshots.get("c").parent_id == a.id
    assert vm.snapshots.current == c
    c.delete()
    assert vm.snapshots.current == a  # the parent of a deleted current snapshot becomes current


def test_delete_with_children(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    a = vm.snapshots.create("a")
    vm.snapshots.create("b")
    vm.snapshots.create("c")
    a.revert()
    vm.snapshots.create("d")
    vm.snapshots.get("b").delete(children=True)
    assert sorted(s.name for s in vm.snapshots) == ["a", "d"]
    a.delete(children=True)
    assert len(vm.snapshots) == 0 and vm.snapshots.current is None


def test_memory_snapshot_needs_running_vm(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    with pytest.raises(InvalidState) as err:
        vm.snapshots.create("m", memory=True)
    assert err.value.state is PowerState.STOPPED


@pytest.mark.parametrize("paused", [False, True])
def test_revert_memory_snapshot_restores_power_state(
    running_vm: VM, clock: ManualClock, backend: MockBackend, paused: bool
) -> None:
    if paused:
        running_vm.pause()
    snap = running_vm.snapshots.create("live", memory=True)
    assert snap.info.has_memory and snap.info.vm_state is (PowerState.PAUSED if paused else PowerState.RUNNING)
    running_vm.power_off()
    snap.revert()
    assert running_vm.state is (PowerState.PAUSED if paused else PowerState.RUNNING)
    if paused:
        running_vm.resume()
    assert running_vm.guest.info().ready  # the guest was already up when the snapshot was taken


def test_revert_disk_snapshot_stops_vm(running_vm: VM) -> None:
    snap = running_vm.snapshots.create("disk-only")
    assert not snap.info.has_memory and snap.info.vm_state is PowerState.RUNNING
    snap.revert()
    assert running_vm.state is PowerState.STOPPED


def test_revert_restores_config_and_files(running_vm: VM, clock: ManualClock) -> None:
    running_vm.guest.write_file("/root/a.txt", b"before")
    snap = running_vm.snapshots.create("base", memory=True)
    running_vm.guest.write_file("/root/a.txt", b"after")
    running_vm.guest.write_file("/root/b.txt", b"new")
    running_vm.reconfigure(cpus=6, memory="8GiB")
    running_vm.add_disk(Disk(size=100))
    snap.revert()
    info = running_vm.info()
    assert (info.cpus, info.memory_mib, [d.id for d in info.disks]) == (2, 2048, ["disk0"])
    assert running_vm.guest.read_file("/root/a.txt") == b"before"
    from virtabstract.errors import GuestFileNotFound

    with pytest.raises(GuestFileNotFound):
        running_vm.guest.read_file("/root/b.txt")


def test_snapshot_memory_capability_removed() -> None:
    import virtabstract
    from virtabstract import VMSpec

    with virtabstract.connect("mock://?capabilities=-snapshot_memory") as hv:
        vm = hv.vms.create(VMSpec(name="a"))
        vm.start()
        with pytest.raises(UnsupportedOperation):
            vm.snapshots.create("m", memory=True)
        with pytest.raises(UnsupportedOperation):
            hv.backend.create_snapshot(vm.id, "m", description="", memory=True, quiesce=False)
        vm.snapshots.create("disk")


def test_quiesce_needs_agent(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    from virtabstract.errors import GuestAgentUnavailable

    vm = make_vm()
    vm.start()
    with pytest.raises(GuestAgentUnavailable):
        vm.snapshots.create("q", quiesce=True)
    backend.clock.sleep(1)
    vm.snapshots.create("q", quiesce=True)


# -- clones -------------------------------------------------------------------------------------


def test_full_clone(hv: Hypervisor, make_vm: Callable[..., VM], backend: MockBackend) -> None:
    src = make_vm("src", tags=["t"])
    src.start()
    backend.clock.sleep(1)
    src.guest.write_file("/root/f", b"data")
    src.power_off()
    clone = src.clone("copy")
    s, c = src.info(), clone.info()
    assert c.id != s.id and c.name == "copy" and c.state is PowerState.STOPPED
    assert c.tags == ("t",) and c.cpus == s.cpus
    assert c.nics[0].mac != s.nics[0].mac and c.nics[0].network == s.nics[0].network
    assert c.disks[0].path == "/mock/pool/copy-disk0.qcow2" and c.disks[0].backing == ""
    assert c.disks[0].size_mib == s.disks[0].size_mib
    assert clone.console().port != src.console().port
    assert len(clone.snapshots) == 0
    clone.start()
    backend.clock.sleep(1)
    assert clone.guest.read_file("/root/f") == b"data"
    assert clone.guest.info().hostname == "copy"
    with pytest.raises(AlreadyExists):
        src.clone("copy")


def test_linked_clone(make_vm: Callable[..., VM]) -> None:
    src = make_vm("base")
    clone = src.clone("thin", linked=True)
    assert clone.info().disks[0].backing == src.info().disks[0].path


def test_clone_of_running_vm_needs_snapshot(running_vm: VM) -> None:
    with pytest.raises(InvalidState) as err:
        running_vm.clone("nope")
    assert err.value.state is PowerState.RUNNING
    running_vm.reconfigure(cpus=2)
    snap = running_vm.snapshots.create("s")
    running_vm.reconfigure(cpus=8)
    clone = running_vm.clone("from-snap", snapshot=snap)
    assert clone.info().cpus == 2
    linked = running_vm.clone("linked-from-snap", linked=True, snapshot="s")
    assert linked.info().disks[0].backing == running_vm.info().disks[0].path


def test_linked_clone_capability_removed() -> None:
    import virtabstract
    from virtabstract import VMSpec

    with virtabstract.connect("mock://", capabilities="-linked_clone") as hv:
        vm = hv.vms.create(VMSpec(name="a", disks=[Disk(size=10)]))
        with pytest.raises(UnsupportedOperation):
            vm.clone("b", linked=True)
        with pytest.raises(UnsupportedOperation):
            hv.backend.clone_vm(vm.id, "b", linked=True, snapshot_id=None)
        assert vm.clone("c").name == "c"
