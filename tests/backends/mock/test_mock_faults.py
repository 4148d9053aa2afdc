"""Fault injection, session expiry, stats and events."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from virtabstract import VM, Hypervisor, ManualClock, PowerState
from virtabstract.backends.mock import MockBackend
from virtabstract.errors import (
    ConnectionLost,
    InvalidState,
    OperationTimeout,
    SpecError,
    UnsupportedOperation,
    UsageError,
)


def test_fail_n_times(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.fail("start", times=2, error=ConnectionLost)
    for _ in range(2):
        with pytest.raises(ConnectionLost, match="injected"):
            vm.start()
        assert vm.state is PowerState.STOPPED  # nothing happened
    vm.start()
    assert vm.state is PowerState.RUNNING
    assert backend.stats.calls["start"] == 3
    assert backend.stats.injected_failures == 2


@pytest.mark.parametrize(
    "error", [InvalidState, UnsupportedOperation, OperationTimeout, SpecError, ConnectionLost, RuntimeError]
)
def test_fail_builds_any_error(make_vm: Callable[..., VM], backend: MockBackend, error: type[Exception]) -> None:
    vm = make_vm()
    backend.faults.fail("get_vm", error=error, vm_id=vm.id)
    with pytest.raises(error):
        backend.get_vm(vm.id)
    backend.get_vm(vm.id)


def test_fail_instance_forever_and_clear(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.fail("*", times=None, error=ConnectionLost("network down"))
    for _ in range(3):
        with pytest.raises(ConnectionLost, match="network down"):
            vm.info()
    backend.faults.clear()
    assert vm.info().name == vm.name


def test_fail_filters_by_vm(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    a, b = make_vm(), make_vm()
    backend.faults.fail("start", vm_id=a.id)
    b.start()
    with pytest.raises(ConnectionLost):
        a.start()


def test_bad_fault_arguments(backend: MockBackend) -> None:
    with pytest.raises(UsageError, match="unknown mock operation"):
        backend.faults.fail("strat")
    with pytest.raises(UsageError):
        backend.faults.fail("start", times=0)
    with pytest.raises(UsageError):
        backend.faults.delay("start", -1)


def test_latency_uses_the_clock(make_vm: Callable[..., VM], backend: MockBackend, clock: ManualClock) -> None:
    vm = make_vm()
    backend.faults.delay("start", 2.5, times=1)
    before = clock.monotonic()
    vm.start()
    assert clock.monotonic() - before == pytest.approx(2.5)
    vm.power_off()
    before = clock.monotonic()
    vm.start()
    assert clock.monotonic() == before
    assert backend.stats.injected_delay_s == pytest.approx(2.5)


def test_session_expiry_relogs_in(hv: Hypervisor, make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.expire_session()
    vm.start()  # transparently logged in again
    assert backend.stats.relogins == 1
    assert vm.state is PowerState.RUNNING
    backend.faults.expire_session(times=2)
    assert len(hv.vms) == 1
    hv.host  # noqa: B018 - a call
    assert backend.stats.relogins == 3


def test_session_expiry_without_relogin(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.expire_session(relogin=False)
    with pytest.raises(ConnectionLost, match="expired"):
        vm.start()
    vm.start()
    assert backend.stats.relogins == 0


def test_agent_absent_for_all(running_vm: VM, backend: MockBackend) -> None:
    from virtabstract.errors import GuestAgentUnavailable

    backend.faults.agent_absent()
    with pytest.raises(GuestAgentUnavailable):
        running_vm.guest.exec(["true"])
    with pytest.raises(OperationTimeout):
        running_vm.guest.wait_ready(timeout=3)
    backend.faults.agent_absent(absent=False)
    assert running_vm.guest.exec(["true"]).ok


def test_url_faults() -> None:
    import virtabstract

    with virtabstract.connect("mock://?clock=manual&faults=ignore_shutdown,agent_absent") as hv:
        vm = hv.vms.create(virtabstract.VMSpec(name="x"))
        vm.start()
        assert vm.shutdown(timeout=2, force=True).stage == "forced"
        vm.start()
        from virtabstract.errors import GuestAgentUnavailable

        hv.backend.clock.sleep(5)
        with pytest.raises(GuestAgentUnavailable):
            vm.guest.info()


def test_closed_connection(backend: MockBackend) -> None:
    backend.close()
    backend.close()
    with pytest.raises(ConnectionLost):
        backend.list_vms()


def test_events(make_vm: Callable[..., VM], backend: MockBackend, clock: ManualClock) -> None:
    vm = make_vm()
    seen: list[tuple[str, PowerState, str]] = []
    unsubscribe = backend.subscribe_events(lambda *event: seen.append(event))
    vm.start()
    vm.pause()
    vm.resume()
    backend.request_shutdown(vm.id)
    clock.advance(1)
    vm.info()  # the mock notices the finished shutdown when it looks at the VM
    assert [(s.value, n) for _, s, n in seen] == [
        ("running", "running"),
        ("paused", "paused"),
        ("running", "running"),
        ("stopping", "shutdown"),
        ("stopped", "shutoff"),
    ]
    assert {vm_id for vm_id, _, _ in seen} == {vm.id}
    unsubscribe()
    vm.start()
    assert len(seen) == 5


def test_events_capability_removed() -> None:
    import virtabstract

    with virtabstract.connect("mock://?capabilities=-events") as hv, pytest.raises(UnsupportedOperation):
        hv.backend.subscribe_events(lambda *a: None)
