"""URL and connect options of the mock backend."""

from __future__ import annotations

from typing import Any

import pytest

import virtabstract
from virtabstract import Capability, ManualClock, SystemClock, VMSpec
from virtabstract.backends.mock import MemoryStore, MockBackend
from virtabstract.errors import InvalidURL, UnsupportedOperation


def test_memory_stores_are_per_connection() -> None:
    with virtabstract.connect("mock://") as a, virtabstract.connect("mock://") as b:
        a.vms.create(VMSpec(name="only-in-a"))
        assert len(a.vms) == 1 and len(b.vms) == 0
        assert isinstance(a.native, MemoryStore)
        assert a.native is not b.native


def test_defaults() -> None:
    with virtabstract.connect("mock://") as hv:
        backend = hv.backend
        assert isinstance(backend, MockBackend)
        assert isinstance(backend.clock, SystemClock)
        assert (backend.agent_delay, backend.ip_delay, backend.shutdown_delay) == (0.2, 0.3, 0.1)
        assert hv.capabilities == frozenset(Capability)


def test_query_options() -> None:
    url = "mock://?clock=manual&seed=5&agent_delay=3&ip_delay=4.5&shutdown_delay=0&vms=3&lock_timeout=2"
    with virtabstract.connect(url) as hv:
        backend = hv.backend
        assert isinstance(backend, MockBackend)
        assert isinstance(backend.clock, ManualClock)
        assert (backend.agent_delay, backend.ip_delay, backend.shutdown_delay, backend.seed) == (3, 4.5, 0, 5)
        assert [vm.name for vm in hv.vms] == ["vm-0001", "vm-0002", "vm-0003"]


def test_keyword_options_win_and_accept_objects() -> None:
    clock = ManualClock(100)
    with virtabstract.connect("mock://?agent_delay=3", clock=clock, agent_delay=7, seed=1) as hv:
        assert hv.backend.clock is clock
        assert hv.backend.agent_delay == 7  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("mock://?colour=blue", {}, "colour"),
        ("mock://", {"colour": "blue"}, "colour"),
        ("mock://?clock=sundial", {}, "clock"),
        ("mock://?seed=abc", {}, "seed"),
        ("mock://?agent_delay=-1", {}, "agent_delay"),
        ("mock://?ip_delay=soon", {}, "ip_delay"),
        ("mock://?vms=-2", {}, "vms"),
        ("mock://?capabilities=-teleport", {}, "teleport"),
        ("mock://?faults=gremlins", {}, "gremlins"),
        ("mock://somehost/", {}, "no host"),
    ],
)
def test_bad_options(url: str, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidURL, match=message):
        virtabstract.connect(url, **kwargs)


def test_capabilities_removed_and_kept() -> None:
    with virtabstract.connect("mock://?capabilities=-pause,-snapshot_memory") as hv:
        assert Capability.PAUSE not in hv.capabilities
        assert Capability.SNAPSHOT_MEMORY not in hv.capabilities
        assert Capability.SNAPSHOTS in hv.capabilities
        vm = hv.vms.create(VMSpec(name="a"))
        vm.start()
        with pytest.raises(UnsupportedOperation):
            vm.pause()
        with pytest.raises(UnsupportedOperation):
            hv.backend.pause(vm.id)  # the backend agrees with its declaration
        with pytest.raises(UnsupportedOperation):
            hv.backend.resume(vm.id)
    with virtabstract.connect("mock://", capabilities="create,start,power_off") as hv:
        assert hv.capabilities == {Capability.CREATE, Capability.START, Capability.POWER_OFF}
        with pytest.raises(UnsupportedOperation):
            hv.networks()


def test_native_escape_hatches() -> None:
    with virtabstract.connect("mock://?seed=1") as hv:
        vm = hv.vms.create(VMSpec(name="a"))
        assert hv.native.data["vms"][vm.id]["name"] == "a"
        assert vm.native["name"] == "a" and vm.native["state"] == "shutoff"
