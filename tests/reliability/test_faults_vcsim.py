"""vSphere faults on vcsim: lost sessions, a killed and restarted server, HTTP 503, dropped
connections, slow methods, failing tasks, and a create interrupted midway.

Faults the simulator cannot produce itself are injected by :class:`~.support.SoapProxy`, a tiny
HTTP proxy between pyVmomi and vcsim that answers chosen SOAP methods with a 503, drops the TCP
connection, delays them, or runs a hook first (e.g. a competing client's change, to make a task fail).
Cross-checks use raw pyVmomi connected straight to the simulator.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import virtabstract
from virtabstract import Hypervisor, PowerState, VMSpec
from virtabstract.errors import ConnectionLost, InvalidState, OperationTimeout, VirtAbstractError

from .conftest import sim_url
from .support import SoapProxy, Tally

pytestmark = pytest.mark.vcsim


def raw_connect(sim: Any) -> Any:
    from pyVim.connect import SmartConnect

    return SmartConnect(protocol=sim.protocol, host=sim.host, port=sim.port, user=sim.username,
                        pwd=sim.password, sslContext=ssl.create_default_context())  # fmt: skip


def raw_vm_names(si: Any) -> list[str]:
    from pyVmomi import vim

    view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return sorted(vm.name for vm in view.view)
    finally:
        view.DestroyView()


@pytest.fixture(scope="module")
def raw(vpx_sim: Any) -> Iterator[Any]:
    from pyVim.connect import Disconnect

    si = raw_connect(vpx_sim)
    yield si
    Disconnect(si)


@pytest.fixture(scope="module")
def proxy(vpx_sim: Any) -> Iterator[SoapProxy]:
    with SoapProxy(vpx_sim.host, vpx_sim.port) as running:
        yield running


@pytest.fixture
def hv(vpx_sim: Any, proxy: SoapProxy) -> Iterator[Hypervisor]:
    proxy.clear()
    with virtabstract.connect(sim_url(vpx_sim, "vpx", host=proxy.host, port=proxy.port)) as connection:
        yield connection
    proxy.clear()


def _bounded(func: Any, limit: float) -> Any:
    started = time.monotonic()
    try:
        return func()
    finally:
        assert time.monotonic() - started < limit, f"took more than {limit}s"


# -- sessions ----------------------------------------------------------------------------------------


def test_session_terminated_by_another_client_relogs_in(hv: Hypervisor, raw: Any, tally: Tally) -> None:
    vm = hv.vms.list()[0]
    session = hv.backend.session
    for round_ in range(3):
        generation = session.generation
        with tally.fault("esxi", "session-terminated"):
            raw.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
            assert vm.info().id == vm.id  # transparently logged in again
            assert session.generation == generation + 1, round_


def test_session_idle_expiry_relogs_in(vcsim_ok: None, tally: Tally) -> None:
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="esx", vms=1, session_idle_timeout=0.5) as sim:
        with virtabstract.connect(sim_url(sim, "esx")) as hv:
            vm = hv.vms.list()[0]
            generation = hv.backend.session.generation
            with tally.fault("esxi", "session-idle-expired"):
                time.sleep(1.3)
                vm.power_off()  # read, task and task wait all behind the re-login wrapper
                assert vm.state is PowerState.STOPPED
                assert hv.backend.session.generation == generation + 1


# -- the server goes away -----------------------------------------------------------------------------


def test_server_killed_mid_operation_then_restarted(vcsim_ok: None, tally: Tally) -> None:
    """vcsim dies during a (slow) PowerOffVM_Task: ConnectionLost at once, typed errors while it is
    down, and the same connection works again (re-login) once a simulator is back on the port."""
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="esx", vms=2, method_delays_ms={"PowerOffVM_Task": 3000}) as sim:
        hv = virtabstract.connect(sim_url(sim, "esx"), timeout=10)
        try:
            vm = hv.vms.list()[0]
            ids = sorted(v.id for v in hv.vms.list_info())
            outcome: dict[str, Any] = {}

            def power_off() -> None:
                started = time.monotonic()
                try:
                    vm.power_off()
                except BaseException as exc:
                    outcome["error"] = exc
                outcome["elapsed"] = time.monotonic() - started

            with tally.fault("esxi", "server-killed-mid-task"):
                worker = threading.Thread(target=power_off)
                worker.start()
                time.sleep(0.4)
                sim.process.kill()
                sim.process.wait(5)
                worker.join(10)
                assert not worker.is_alive(), "the call hung after the server died"
                assert isinstance(outcome.get("error"), ConnectionLost), outcome
                assert outcome["elapsed"] < 3.0
            with tally.fault("esxi", "server-down", 2):
                for call in (hv.vms.list_info, lambda: vm.state):
                    with pytest.raises(ConnectionLost):
                        _bounded(call, 5)
            port = sim.port
        except BaseException:
            hv.close()
            raise
    with tally.fault("esxi", "server-restarted"):
        with run_vcsim(model="esx", vms=2, listen=f"127.0.0.1:{port}"):
            try:
                assert sorted(v.id for v in hv.vms.list_info()) == ids  # same connection, logged in again
                vm.power_off()
                assert vm.state is PowerState.STOPPED
            finally:
                hv.close()


# -- HTTP 503 and dropped connections (proxy) --------------------------------------------------------

READ_METHODS = ["RetrievePropertiesEx", "CreateContainerView", "FindByUuid"]


@pytest.mark.parametrize("action", ["status", "drop"])
def test_transport_faults_on_reads(hv: Hypervisor, proxy: SoapProxy, action: str, tally: Tally) -> None:
    vm = hv.vms.list()[0]
    for method in ("RetrievePropertiesEx", "*"):
        with tally.fault("esxi", f"{action}:{method}"):
            proxy.add(method, action)
            with pytest.raises(ConnectionLost) as info:
                _bounded(vm.info, 5)
            assert ("503" in str(info.value)) == (action == "status")
            assert vm.info().id == vm.id  # the next call works: nothing to repair


@pytest.mark.parametrize("action", ["status", "drop"])
@pytest.mark.parametrize("step", ["request", "wait"])
def test_transport_faults_during_a_power_task(
    hv: Hypervisor, proxy: SoapProxy, action: str, step: str, tally: Tally
) -> None:
    """A write whose request (PowerOnVM_Task) or whose task wait (the next SOAP call, whatever the backend
    uses) fails: ConnectionLost, and the VM is in a consistent state — still off when the task was not
    issued, on when it was; checking the state and retrying works."""
    vm = hv.vms.list()[0]
    if vm.state is not PowerState.STOPPED:
        vm.power_off()
    with tally.fault("esxi", f"{action}:power-task-{step}"):
        if step == "request":
            proxy.add("PowerOnVM_Task", action)
        else:
            proxy.add("*", action, after="PowerOnVM_Task")
        with pytest.raises(ConnectionLost):
            _bounded(vm.start, 5)
        assert vm.state is (PowerState.RUNNING if step == "wait" else PowerState.STOPPED)
        if vm.state is PowerState.STOPPED:
            vm.start()
        assert vm.state is PowerState.RUNNING


# -- slow methods ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slow_sim(vcsim_ok: None) -> Iterator[Any]:
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="esx", vms=2, method_delays_ms={"PowerOffVM_Task": 1500, "ShutdownGuest": 1500}) as sim:
        yield sim


def test_method_slower_than_the_timeout_is_a_typed_error_in_time(slow_sim: Any, tally: Tally) -> None:
    with virtabstract.connect(sim_url(slow_sim, "esx"), timeout=0.5) as hv:
        vm = next(v for v in hv.vms.list() if v.state is PowerState.RUNNING)
        with tally.fault("esxi", "method-delay-beyond-timeout"):
            started = time.monotonic()
            with pytest.raises((OperationTimeout, ConnectionLost)):
                vm.power_off()
            assert time.monotonic() - started < 0.5 + 1.5
        time.sleep(1.2)  # the server finishes the call it was given
        assert vm.state is PowerState.STOPPED
        vm.start()


def test_method_slower_than_the_timeout_raises_operation_timeout(slow_sim: Any) -> None:
    with virtabstract.connect(sim_url(slow_sim, "esx"), timeout=0.5) as hv:
        vm = next(v for v in hv.vms.list() if v.state is PowerState.RUNNING)
        try:
            with pytest.raises(OperationTimeout):
                vm.shutdown(timeout=10)
        finally:
            time.sleep(1.2)
            if vm.state is not PowerState.RUNNING:
                vm.start()


# -- tasks that fail --------------------------------------------------------------------------------------


def test_task_that_fails_is_a_typed_error(hv: Hypervisor, proxy: SoapProxy, raw: Any, tally: Tally) -> None:
    """Another client powers the VM on between our state check and our PowerOnVM_Task: the task fails
    on the server with InvalidPowerState, which arrives as InvalidState carrying the real state."""
    vm = hv.vms.list()[0]
    if vm.state is not PowerState.STOPPED:
        vm.power_off()
    native = raw.content.searchIndex.FindByUuid(None, vm.id, True, True)
    with tally.fault("esxi", "task-error:InvalidPowerState"):
        proxy.add("PowerOnVM_Task", "hook", hook=lambda: native.PowerOnVM_Task())
        with pytest.raises(InvalidState) as info:
            _bounded(vm.start, 5)
        assert info.value.state is PowerState.RUNNING
        assert vm.state is PowerState.RUNNING


def test_failing_destroy_task_leaves_the_vm_whole(hv: Hypervisor, proxy: SoapProxy, raw: Any, tally: Tally) -> None:
    vm = hv.vms.create(VMSpec(name="va-rel-destroy", memory=64, disks=[{"size": 16}]))
    native = raw.content.searchIndex.FindByUuid(None, vm.id, True, True)
    with tally.fault("esxi", "task-error:Destroy_Task"):
        proxy.add("Destroy_Task", "hook", hook=lambda: native.PowerOnVM_Task())
        with pytest.raises(InvalidState):
            _bounded(vm.delete, 5)
        info = vm.info()
        assert info.state is PowerState.RUNNING and len(info.disks) == 1
    vm.power_off()
    vm.delete()
    assert "va-rel-destroy" not in raw_vm_names(raw)


# -- create interrupted midway ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action", "after"),
    [("ReconfigVM_Task", "status", None), ("*", "status", "CreateVM_Task"), ("CreateVM_Task", "drop", None)],
    ids=["boot-order-step-503", "task-wait-503", "create-request-dropped"],
)
def test_create_interrupted_midway_leaves_no_vm(
    hv: Hypervisor, proxy: SoapProxy, raw: Any, method: str, action: str, after: str | None, tally: Tally
) -> None:
    """CreateVM_Task succeeded but a later step (the boot order, the task wait) failed: the half-made VM
    is destroyed, so nothing named like it exists afterwards — checked with raw pyVmomi."""
    before = raw_vm_names(raw)
    spec = VMSpec(name="va-rel-half", memory=64, disks=[{"size": 16}], boot_order=["network", "disk"])
    with tally.fault("esxi", f"create-midway:{after or method}:{action}"):
        proxy.add(method, action, after=after)
        with pytest.raises(VirtAbstractError):
            _bounded(lambda: hv.vms.create(spec), 10)
        assert raw_vm_names(raw) == before
        created = hv.vms.create(spec)  # the retry works
        try:
            assert created.info().name == spec.name
        finally:
            created.delete()
        assert raw_vm_names(raw) == before
