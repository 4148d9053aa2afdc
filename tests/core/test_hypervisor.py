"""Facade policies that hold on every backend: shutdown escalation, capability reasons."""

from dataclasses import replace

import pytest

import virtabstract
from virtabstract import Backend, Capability, HostInfo, OSFamily, PluginManager, PowerState, VMInfo, hookimpl
from virtabstract.errors import GuestAgentUnavailable, UnsupportedOperation, VMNotFound


class NoToolsBackend(Backend):
    """Like ESXi without VMware Tools: graceful shutdown is impossible."""

    name = "notools"
    capabilities = frozenset({Capability.SHUTDOWN, Capability.POWER_OFF})

    def __init__(self, url, credentials, options):
        super().__init__(url, credentials, options)
        self.vm = VMInfo(id="v1", name="v", state=PowerState.RUNNING, native_state="on", cpus=1, memory_mib=64)

    def close(self):
        pass

    def host_info(self):
        return HostInfo("h", OSFamily.ESXI, 1, 64, "x", "1", self.name)

    def list_vms(self):
        return [self.vm]

    def get_vm(self, vm_id):
        if vm_id != "v1":
            raise VMNotFound(vm_id)
        return self.vm

    def request_shutdown(self, vm_id):
        raise GuestAgentUnavailable("VMware Tools is not running")

    def power_off(self, vm_id):
        self.vm = replace(self.vm, state=PowerState.STOPPED, native_state="off")

    def unsupported_reason(self, capability):
        return "cloning needs vCenter" if capability is Capability.CLONE else ""


class Plugin:
    @hookimpl
    def virtabstract_register_backends(self, register):
        register("notools", NoToolsBackend)


@pytest.fixture
def hv():
    pm = PluginManager(autoload=False)
    pm.register(Plugin(), name="notools-plugin")
    with virtabstract.connect("notools://", plugin_manager=pm) as connection:
        yield connection


def test_shutdown_without_agent_raises_unless_forced(hv):
    vm = hv.vms.get("v")
    with pytest.raises(GuestAgentUnavailable):
        vm.shutdown(timeout=1)
    assert vm.state is PowerState.RUNNING
    result = vm.shutdown(timeout=1, force=True)
    assert (result.stage, result.method) == ("forced", "none")
    assert vm.state is PowerState.STOPPED
    assert vm.shutdown().stage == "already_stopped"


def test_unsupported_carries_the_backends_reason(hv):
    with pytest.raises(UnsupportedOperation, match="cloning needs vCenter"):
        hv.vms.get("v").clone("copy")


def test_snapshot_deletion_order_is_descendants_first():
    from virtabstract import SnapshotInfo, snapshot_deletion_order
    from virtabstract.errors import SnapshotNotFound

    def snap(sid, parent, kids=()):
        return SnapshotInfo(id=sid, name=sid, vm_id="v", parent_id=parent, children_ids=tuple(kids))

    tree = [snap("a", None, ["b", "d"]), snap("b", "a", ["c"]), snap("c", "b"), snap("d", "a")]
    assert snapshot_deletion_order(tree, "a", children=True) == ["c", "b", "d", "a"]
    assert snapshot_deletion_order(tree, "B", children=True) == ["c", "b"]
    assert snapshot_deletion_order(tree, "a", children=False) == ["a"]
    with pytest.raises(SnapshotNotFound):
        snapshot_deletion_order(tree, "zz", children=False)


class _Audit:
    def __init__(self):
        self.after = []

    @hookimpl
    def virtabstract_after_operation(self, context, result, error):
        self.after.append((context.operation, result))


@pytest.mark.parametrize("returns_id", [False, True], ids=["info", "id-only"])
def test_snapshot_create_returns_a_handle_whose_details_are_read_once(returns_id, monkeypatch):
    """A backend may answer a create with the id alone; the handle reads the details on first access."""
    audit = _Audit()
    pm = PluginManager()
    pm.register(audit, name="audit")
    with virtabstract.connect("mock://", plugin_manager=pm) as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="snappy"))
        backend = hv.backend
        if returns_id:
            create = backend.create_snapshot
            monkeypatch.setattr(backend, "create_snapshot", lambda *a, **k: create(*a, **k).id)
        reads = []
        get = backend.get_snapshot
        monkeypatch.setattr(backend, "get_snapshot", lambda *a: reads.append(a) or get(*a))
        snap = vm.snapshots.create("s1", description="why")
        assert (snap.name, snap.vm_id, repr(snap)) == ("s1", vm.id, f"<Snapshot 's1' id={snap.id}>")
        assert snap == vm.snapshots.get("s1") and reads == []  # nothing read for id, name, ==, repr
        created = [result for operation, result in audit.after if operation == "snapshot_create"]
        assert created == [snap]  # the hook sees the handle the caller gets, on every backend
        assert (snap.description, snap.parent_id, snap.info.is_current) == ("why", None, True)
        assert reads == ([(vm.id, snap.id)] if returns_id else [])  # read once, only when not returned
        assert snap.info is snap.info
        lazy = vm.snapshots.create("s2")
        vm.snapshots.get("s2").delete()
        if returns_id:
            with pytest.raises(virtabstract.errors.SnapshotNotFound):
                _ = lazy.info
        else:
            assert lazy.info.name == "s2"  # returned with the create: kept


def test_default_get_snapshot_reads_the_tree_and_names_a_missing_id():
    with virtabstract.connect("mock://") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="tree"))
        snap = vm.snapshots.create("s1")
        assert Backend.get_snapshot(hv.backend, vm.id, snap.id) == snap.info
        with pytest.raises(virtabstract.errors.SnapshotNotFound, match="nope"):
            Backend.get_snapshot(hv.backend, vm.id, "nope")


@pytest.mark.parametrize("description", [None, 0, False, [], "x\x00y", "d" * 8193])
def test_snapshot_create_refuses_a_bad_description_and_takes_nothing(description):
    with virtabstract.connect("mock://") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="picky"))
        with pytest.raises(virtabstract.errors.SpecError, match="description"):
            vm.snapshots.create("s1", description=description)
        assert vm.snapshots.list() == []


@pytest.mark.parametrize("unique", [False, True], ids=["core-checks", "backend-refuses"])
def test_duplicate_snapshot_name_check_is_skipped_only_for_a_backend_that_refuses_one_itself(unique, monkeypatch):
    """``unique_snapshot_names`` spares the per-create check; without it the core refuses a taken name."""
    with virtabstract.connect("mock://") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="dupes"))
        asked = []
        exists = hv.backend.snapshot_name_exists
        monkeypatch.setattr(hv.backend, "snapshot_name_exists", lambda *a: asked.append(a) or exists(*a))
        monkeypatch.setattr(type(hv.backend), "unique_snapshot_names", unique)
        vm.snapshots.create("s1")
        if unique:  # the mock allows duplicates: what a backend declaring it must not do, seen here as a second s1
            vm.snapshots.create("s1")
            assert asked == [] and [s.name for s in vm.snapshots.list()] == ["s1", "s1"]
        else:
            with pytest.raises(virtabstract.errors.AlreadyExists, match="s1"):
                vm.snapshots.create("s1")
            assert asked == [(vm.id, "s1"), (vm.id, "s1")]
            vm.snapshots.create("s1", allow_duplicate=True)
            assert len(asked) == 2  # allow_duplicate skips the check too
