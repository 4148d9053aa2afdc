"""Native state table and the power state machine: every verb in every state."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from virtabstract import VM, Hypervisor, PowerState
from virtabstract._backend import LEGAL_TRANSITIONS
from virtabstract.backends.mock import NATIVE_STATES, MockBackend
from virtabstract.errors import InvalidState, UsageError

EXPECTED = {
    "shutoff": PowerState.STOPPED,
    "starting": PowerState.STARTING,
    "running": PowerState.RUNNING,
    "blocked": PowerState.RUNNING,
    "paused": PowerState.PAUSED,
    "shutdown": PowerState.STOPPING,
    "saving": PowerState.SAVING,
    "saved": PowerState.SUSPENDED,
    "restoring": PowerState.RESTORING,
    "crashed": PowerState.CRASHED,
    "nostate": PowerState.UNKNOWN,
}

VERBS: dict[str, Callable[[MockBackend, str], object]] = {
    "start": lambda b, i: b.start(i),
    "shutdown": lambda b, i: b.request_shutdown(i),
    "power_off": lambda b, i: b.power_off(i),
    "reboot": lambda b, i: b.reboot(i),
    "reset": lambda b, i: b.reset(i),
    "pause": lambda b, i: b.pause(i),
    "resume": lambda b, i: b.resume(i),
    "suspend": lambda b, i: b.suspend(i),
}


def test_table_is_complete() -> None:
    assert dict(NATIVE_STATES) == EXPECTED
    # every normalised state is reachable from some native state
    assert set(NATIVE_STATES.values()) == set(PowerState)


@pytest.mark.parametrize(("native", "state"), sorted(EXPECTED.items()))
def test_every_native_state_maps(
    native: str, state: PowerState, make_vm: Callable[..., VM], backend: MockBackend
) -> None:
    vm = make_vm()
    backend.faults.force_state(vm.id, native)
    info = vm.info()
    assert info.native_state == native
    assert info.state is state
    assert backend.get_state(vm.id) == (state, native)


def test_unknown_native_state_is_refused(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    with pytest.raises(UsageError, match="unknown mock native state"):
        backend.faults.force_state(make_vm().id, "zombie")


CASES = [(verb, native) for verb in VERBS for native in sorted(EXPECTED)]


@pytest.mark.parametrize(("verb", "native"), CASES)
def test_verb_in_state(verb: str, native: str, make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.force_state(vm.id, native)
    state = EXPECTED[native]
    if state in LEGAL_TRANSITIONS[verb]:
        VERBS[verb](backend, vm.id)
    else:
        with pytest.raises(InvalidState) as err:
            VERBS[verb](backend, vm.id)
        assert err.value.state is state
        assert err.value.operation == verb
        assert backend.get_state(vm.id) == (state, native), "a refused verb must not change the state"


RESULTS = {
    ("start", "shutoff"): PowerState.RUNNING,
    ("start", "saved"): PowerState.RUNNING,
    ("start", "crashed"): PowerState.RUNNING,
    ("power_off", "running"): PowerState.STOPPED,
    ("power_off", "paused"): PowerState.STOPPED,
    ("power_off", "shutdown"): PowerState.STOPPED,
    ("power_off", "crashed"): PowerState.STOPPED,
    ("reboot", "running"): PowerState.RUNNING,
    ("reset", "running"): PowerState.RUNNING,
    ("pause", "running"): PowerState.PAUSED,
    ("resume", "paused"): PowerState.RUNNING,
    ("suspend", "running"): PowerState.SUSPENDED,
    ("suspend", "paused"): PowerState.SUSPENDED,
    ("shutdown", "running"): PowerState.STOPPING,
}


@pytest.mark.parametrize(("verb", "native"), sorted(RESULTS))
def test_verb_result(verb: str, native: str, make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    backend.faults.force_state(vm.id, native)
    VERBS[verb](backend, vm.id)
    assert vm.state is RESULTS[(verb, native)]


def test_shutdown_completes_after_delay(hv: Hypervisor, make_vm: Callable[..., VM], backend: MockBackend) -> None:
    vm = make_vm()
    vm.start()
    backend.request_shutdown(vm.id)
    assert vm.info().native_state == "shutdown"
    with pytest.raises(InvalidState):
        backend.request_shutdown(vm.id)
    backend.clock.sleep(backend.shutdown_delay)
    assert vm.state is PowerState.STOPPED
    assert vm.info().native_state == "shutoff"


def test_shutdown_through_facade(running_vm: VM) -> None:
    result = running_vm.shutdown(timeout=10)
    assert result.stage == "graceful"
    assert result.method == "acpi"
    assert running_vm.state is PowerState.STOPPED
    assert running_vm.shutdown().stage == "already_stopped"


def test_ignored_shutdown_escalates(running_vm: VM, backend: MockBackend) -> None:
    backend.faults.ignore_shutdown(running_vm.id)
    from virtabstract.errors import OperationTimeout

    with pytest.raises(OperationTimeout):
        running_vm.shutdown(timeout=5)
    assert running_vm.state is PowerState.RUNNING
    result = running_vm.shutdown(timeout=5, force=True)
    assert result.stage == "forced"
    assert running_vm.state is PowerState.STOPPED


def test_zero_shutdown_delay_stops_at_once(make_vm: Callable[..., VM], backend: MockBackend) -> None:
    backend.shutdown_delay = 0
    vm = make_vm()
    vm.start()
    backend.request_shutdown(vm.id)
    assert vm.state is PowerState.STOPPED


def test_crash_and_recover(running_vm: VM, backend: MockBackend) -> None:
    backend.faults.crash(running_vm.id)
    assert running_vm.info().native_state == "crashed"
    assert running_vm.state is PowerState.CRASHED
    running_vm.start()
    assert running_vm.state is PowerState.RUNNING
    backend.faults.crash(running_vm.id)
    running_vm.power_off()
    assert running_vm.state is PowerState.STOPPED
    with pytest.raises(InvalidState):
        backend.faults.crash(running_vm.id)


def test_autostart(make_vm: Callable[..., VM]) -> None:
    vm = make_vm()
    assert vm.info().autostart is False
    vm.set_autostart(True)
    assert vm.info().autostart is True
    vm.set_autostart(False)
    assert vm.info().autostart is False


def test_start_many(hv: Hypervisor, make_vm: Callable[..., VM]) -> None:
    a, b = make_vm(), make_vm()
    b.start()
    results = hv.start_many([a, b])
    assert results[a.id] is None
    assert isinstance(results[b.id], InvalidState)
