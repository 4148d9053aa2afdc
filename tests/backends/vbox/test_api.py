"""The API transport on the fake COM layer: version shim, lock discipline, progress, errors, selection."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from virtabstract_vbox._api import LOCK_SHARED, LOCK_WRITE, VBoxApi
from virtabstract_vbox._errors import exception_for_hresult

import virtabstract
from virtabstract import PowerState, VMSpec
from virtabstract.errors import BackendError, InvalidState, OperationTimeout, SnapshotNotFound, VMNotFound

from .fake_com import COMError, make_vboxapi


def _vm(hv: virtabstract.Hypervisor, name: str = "api1") -> virtabstract.VM:
    return hv.vms.create(VMSpec(name=name, memory="256MiB", disks=[{"size": "64MiB"}], nics=[{"network": "default"}]))


def test_create_machine_arity_and_state_numbers(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    server = fake_com.server
    vbox = server.vbox
    arity = {"6.1": 5, "7.0": 8, "7.1": 9, "7.2": 9}[server.profile]  # 7.2: the 7.1 list
    with pytest.raises(TypeError):  # the 6.1 signature on 7.x (and the 7.x one on 6.1) is a TypeError
        vbox.createMachine(*([""] * (arity - 1)))
    vm = _vm(api_hv)
    assert vm.state is PowerState.STOPPED
    assert server.state_number("Running") == (5 if server.profile == "6.1" else 6)
    vm.start()
    machine = vbox.findMachine(vm.id)
    assert machine.state == server.state_number("Running")
    assert api_hv.backend.api.state_name(machine) == "Running"
    assert vm.info().native_state == "Running"
    if server.profile != "6.1":  # AbortedSaved exists (7.0+) and is compared by name
        vm.power_off()
        machine._state = "AbortedSaved"
        assert vm.state is PowerState.CRASHED
        vm.start()  # the broken saved state is discarded
        assert vm.state is PowerState.RUNNING
    assert "Starting" in machine.transitions  # transient state observed during launchVMProcess


@pytest.mark.parametrize("fake_com", ["7.0"], indirect=True)
def test_session_lock_rules_and_mutable_copy(fake_com: Any, api_hv: virtabstract.Hypervisor) -> None:
    server = fake_com.server
    api: VBoxApi = api_hv.backend.api
    vm = _vm(api_hv)
    machine = server.vbox.findMachine(vm.id)
    with pytest.raises(COMError) as raw:  # IMachine is read-only: changes go through session.machine
        machine.memorySize = 512
    assert raw.value.code_name == "VBOX_E_INVALID_VM_STATE"
    with api.session(machine, LOCK_WRITE) as first:
        with pytest.raises(InvalidState, match="already locked"), api.session(machine, LOCK_WRITE):
            pass  # a second Write lock fails (VBOX_E_INVALID_OBJECT_STATE)
        with api.session(machine, LOCK_SHARED) as linked:
            assert api.session_state(linked) == "Locked"
            first.machine.memorySize = 512
            assert machine.memorySize == 256  # not saved yet: the IMachine still shows the old value
            first.machine.saveSettings()
            assert machine.memorySize == 512
            first.machine.CPUCount = 3  # never saved: discarded by the unlock
            first.unlockMachine()  # unlocking the primary unlocks the linked session
            assert api.session_state(linked) == "Unlocked"
    assert machine.CPUCount == 1
    assert server.locked_sessions() == []
    # The lock is released even when the body raises.
    with pytest.raises(RuntimeError), api.session(machine, LOCK_WRITE):
        raise RuntimeError("boom")
    assert server.locked_sessions() == []
    with api.session(machine, LOCK_WRITE):  # and can be taken again at once (the unlock was waited for)
        pass


@pytest.mark.parametrize("fake_com", ["7.1"], indirect=True)
def test_progress_slices_callbacks_failure_cancel(fake_com: Any, tmp_path: Any) -> None:
    server = fake_com.server
    seen: list[tuple[str, int, str]] = []
    with virtabstract.connect(
        "vbox:///session?transport=api", vboxapi_module=fake_com, progress_callback=lambda *a: seen.append(a)
    ) as hv:
        vm = _vm(hv)
        vm.start()
        starts = [s for s in seen if s[0] == "start"]
        assert [p for _, p, _ in starts] == sorted(p for _, p, _ in starts) and starts[-1][1] == 100
        assert {d for _, _, d in starts} == {"Creating process for virtual machine", "Powering on"}
        assert all(p.waits >= p.operationCount for p in server.progresses if p.completed)
        # Failure through resultCode/errorInfo, mapped by the one error table; the state is rolled back.
        server.fail_next["saveState"] = ("VBOX_E_INVALID_VM_STATE", "Saving the state failed (fake)")
        with pytest.raises(InvalidState, match="Saving the state failed"):
            vm.suspend()
        assert vm.state is PowerState.RUNNING
        assert server.locked_sessions() == []
        # A progress that never finishes: waited in slices until the timeout, then canceled.
        hv.backend.api.timeout = 0.3
        server.stuck.add("takeSnapshot")
        with pytest.raises(OperationTimeout):
            vm.snapshots.create("never", memory=True)
        stuck = server.progresses[-1]
        assert stuck.canceled and stuck.waits > 1
        assert vm.state is PowerState.RUNNING  # cancel rolled the LiveSnapshotting state back
        assert server.locked_sessions() == []
        server.stuck.clear()
        hv.backend.api.timeout = 30
        machine = server.vbox.findMachine(vm.id)
        vm.snapshots.create("live", memory=True)
        vm.suspend()
        vm.start()
        vm.power_off()
        for transient in ("LiveSnapshotting", "Saving", "Restoring", "Stopping"):
            assert transient in machine.transitions
        with pytest.raises(SnapshotNotFound):
            hv.backend.revert_snapshot(vm.id, "00000000-0000-0000-0000-000000000000")
        with pytest.raises(VMNotFound):
            hv.backend.get_vm("11111111-2222-3333-4444-555555555555")


def test_hresults_map_signed_and_unsigned() -> None:
    signed = 0x80BB0001 - (1 << 32)
    assert isinstance(exception_for_hresult(signed, "Could not find a registered machine named 'x'"), VMNotFound)
    assert isinstance(exception_for_hresult(0x80BB0007, "The machine is locked"), InvalidState)
    unknown = exception_for_hresult(0x80FF0001, "strange")
    assert isinstance(unknown, BackendError) and unknown.code == "0x80FF0001"


def test_transport_selection_auto(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "vms"
    folder.mkdir()
    module = make_vboxapi("7.0", str(folder))
    monkeypatch.setitem(sys.modules, "vboxapi", module)  # "vboxapi imports": auto picks the API
    with virtabstract.connect("vbox:///session") as hv:
        assert hv.backend.transport == "api"
        assert hv.host.version.startswith("7.0")
    with virtabstract.connect("vbox:///session?transport=api") as hv:
        assert hv.backend.transport == "api"
    monkeypatch.setitem(sys.modules, "vboxapi", None)  # import fails: auto falls back to VBoxManage
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(virtabstract.errors.BackendUnavailable, match="VBoxManage was not found"):
        virtabstract.connect("vbox:///session")
