"""Fixtures for the mock backend's unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import virtabstract
from virtabstract import VM, Disk, Hypervisor, ManualClock, Nic, VMSpec
from virtabstract.backends.mock import MockBackend


@pytest.fixture
def hv() -> Iterator[Hypervisor]:
    with virtabstract.connect("mock://?clock=manual&seed=7") as hyper:
        yield hyper


@pytest.fixture
def backend(hv: Hypervisor) -> MockBackend:
    assert isinstance(hv.backend, MockBackend)
    return hv.backend


@pytest.fixture
def clock(backend: MockBackend) -> ManualClock:
    assert isinstance(backend.clock, ManualClock)
    return backend.clock


@pytest.fixture
def make_vm(hv: Hypervisor) -> Callable[..., VM]:
    counter = iter(range(1, 10_000))

    def make(name: str | None = None, **fields: Any) -> VM:
        spec: dict[str, Any] = {
            "name": name or f"vm{next(counter)}",
            "cpus": 2,
            "memory": "2GiB",
            "guest_os": "ubuntu-22.04",
            "disks": [Disk(size="10GiB")],
            "nics": [Nic(network="default")],
        }
        spec.update(fields)
        return hv.vms.create(VMSpec(**spec))

    return make


@pytest.fixture
def running_vm(make_vm: Callable[..., VM], clock: ManualClock) -> VM:
    vm = make_vm()
    vm.start()
    clock.advance(5)
    return vm
