"""The ESXi hot paths on vcsim: the lean reads and calls agree with pyVmomi's, and recover like them.

The lean reader (:mod:`virtabstract_esxi._lean`) answers the state read, the task wait and the
snapshot tree; :func:`~virtabstract_esxi._lean.invoke` issues the power and snapshot calls. Here
each result is compared with the one pyVmomi's own path gives on the same simulator, the fast
path is checked to be the one taken (no silent fallback), and a terminated session or a deleted
VM behaves as it does through pyVmomi.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import pytest
from esxi_support import sim_url

import virtabstract
from tests.infra.vcsim import VcsimInstance, run_vcsim
from virtabstract import VM, Hypervisor, PowerState, VMSpec
from virtabstract.errors import InvalidState, VMNotFound

pytestmark = pytest.mark.vcsim


@pytest.fixture(scope="module")
def sim(vcsim_ok: None) -> Iterator[VcsimInstance]:
    with run_vcsim(model="vpx", vms=2, autostart=False) as instance:
        yield instance


@pytest.fixture
def hv(sim: VcsimInstance) -> Iterator[Hypervisor]:
    with virtabstract.connect(sim_url(sim, "vpx")) as hypervisor:
        yield hypervisor


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of lean reads not attempted (``None``: pyVmomi's own call) and answers read by pyVmomi."""
    from virtabstract_esxi import _inventory, _lean, _tasks

    counts = {"not attempted": 0, "read by pyVmomi": 0, "lean reads": 0}
    read_objects, deserialise = _inventory.read_objects, _lean._deserialise

    def spy_read(*args: Any) -> Any:
        found = read_objects(*args)
        counts["lean reads"] += 1
        counts["not attempted"] += found is None
        return found

    def spy_deserialise(*args: Any) -> Any:
        counts["read by pyVmomi"] += 1
        return deserialise(*args)

    monkeypatch.setattr(_inventory, "read_objects", spy_read)
    monkeypatch.setattr(_tasks, "read_objects", spy_read)
    monkeypatch.setattr(_lean, "_deserialise", spy_deserialise)
    return counts


def _pyvmomi_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Route the hot paths through pyVmomi: every lean read hands over, every call is pyVmomi's."""
    from virtabstract_esxi import _backend, _inventory, _tasks

    monkeypatch.setattr(_inventory, "read_objects", lambda *args: None)
    monkeypatch.setattr(_tasks, "read_objects", lambda *args: None)
    monkeypatch.setattr(_backend, "invoke", lambda mo, method, *args: getattr(mo, method)(*args))


def _fresh_vm(hv: Hypervisor, name: str) -> VM:
    return hv.vms.create(VMSpec(name=name, memory=64))


def test_lean_paths_answer_the_hot_operations(hv: Hypervisor, readers: dict[str, int]) -> None:
    vm = _fresh_vm(hv, "lean-fast-path")
    try:
        readers.update(dict.fromkeys(readers, 0))
        assert vm.state is PowerState.STOPPED
        vm.start()
        vm.power_off()
        snap = vm.snapshots.create("first <&> snapshot", description="line 1\nline 2")
        assert vm.snapshots.list() == [snap]
        snap.delete()
        # every state read, task look and tree read decoded leanly (none silently left to pyVmomi)
        assert readers == {"not attempted": 0, "read by pyVmomi": 0, "lean reads": 9}, readers
    finally:
        vm.delete()


def test_lean_and_pyvmomi_paths_agree(hv: Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = _fresh_vm(hv, "lean-vs-pyvmomi")
    try:
        made = [vm.snapshots.create("root", description="the <first> & only")]
        vm.start()
        made.append(vm.snapshots.create("child", memory=True))
        made.append(vm.snapshots.create("child", allow_duplicate=True))  # vSphere allows duplicate names
        lean_new = vm.snapshots.create("lean", quiesce=True).info
        lean_state = (vm.state, hv.backend.get_state(vm.id))
        lean_tree = hv.backend.list_snapshots(vm.id)
        assert lean_tree[-1] == lean_new
        _pyvmomi_only(monkeypatch)
        assert (vm.state, hv.backend.get_state(vm.id)) == lean_state
        assert hv.backend.list_snapshots(vm.id) == lean_tree
        sdk_new = vm.snapshots.create("sdk", quiesce=True).info
        assert (sdk_new.parent_id, sdk_new.vm_state, sdk_new.has_memory, sdk_new.is_current) == (
            lean_new.id,
            lean_new.vm_state,
            lean_new.has_memory,
            lean_new.is_current,
        )
        sdk_tree = hv.backend.list_snapshots(vm.id)
        monkeypatch.undo()
        assert hv.backend.list_snapshots(vm.id) == sdk_tree
        assert sdk_tree[-1] == sdk_new and [s.id for s in sdk_tree] == [*(s.id for s in lean_tree), sdk_new.id]
        assert sdk_tree[0].name == "root" and sdk_tree[0].description == "the <first> & only"
        assert all(s.created is not None and s.created.tzinfo is not None for s in sdk_tree)
    finally:
        vm.power_off()
        vm.delete()


def _terminate(sim: VcsimInstance, hv: Hypervisor) -> None:
    from pyVim.connect import Disconnect, SmartConnect

    session = hv.backend.session
    admin = SmartConnect(
        protocol=sim.protocol,
        host=sim.host,
        port=sim.port,
        user=sim.username,
        pwd=sim.password,
        sslContext=ssl.create_default_context(),
    )
    try:
        admin.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
    finally:
        Disconnect(admin)


def test_hot_paths_log_in_again_after_terminate_session(sim: VcsimInstance, hv: Hypervisor) -> None:
    vm = _fresh_vm(hv, "lean-relogin")
    session = hv.backend.session
    try:
        steps: list[tuple[str, Any]] = [
            ("state", lambda: vm.state),
            ("start", vm.start),
            ("stop", vm.power_off),
            ("snapshot create", lambda: vm.snapshots.create("after relogin")),
            ("snapshot list", vm.snapshots.list),
        ]
        for step, call in steps:
            _terminate(sim, hv)
            generation = session.generation
            call()
            assert session.generation == generation + 1, step
        assert [s.name for s in vm.snapshots.list()] == ["after relogin"]
        assert vm.state is PowerState.STOPPED
    finally:
        vm.delete()


def test_deleted_vm_is_not_found_on_the_lean_paths(hv: Hypervisor) -> None:
    vm = _fresh_vm(hv, "lean-deleted")
    moid = str(hv.backend.native_vm(vm.id)._moId)
    vm.delete()
    backend = hv.backend
    for call in (
        lambda: backend.get_state(moid),
        lambda: backend.start(moid),
        lambda: backend.power_off(moid),
        lambda: backend.list_snapshots(moid),
        lambda: backend.create_snapshot(moid, "x", description="", memory=False, quiesce=False),
    ):
        with pytest.raises(VMNotFound):
            call()


def test_failed_tasks_still_raise_the_contract_errors(hv: Hypervisor, readers: dict[str, int]) -> None:
    vm = _fresh_vm(hv, "lean-failures")
    try:
        vm.start()
        readers.update(dict.fromkeys(readers, 0))
        with pytest.raises(InvalidState) as excinfo:
            vm.start()  # the task fails: its info.error is read by pyVmomi, from the same answer
        assert excinfo.value.state is PowerState.RUNNING
        assert readers["read by pyVmomi"] == 1 and readers["not attempted"] == 0
    finally:
        vm.power_off()
        vm.delete()
