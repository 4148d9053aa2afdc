"""Resources: CPU/memory entitlements round-trip, partial updates, clearing, validation."""

from __future__ import annotations

from dataclasses import fields

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, ResourceAllocation
from ...errors import SpecError
from ._base import ContractBase, require

__all__ = ["ResourcesContract"]

SAMPLE_VALUES: dict[str, int] = {
    "cpu_limit_mhz": 1500,
    "cpu_reservation_mhz": 500,
    "cpu_shares": 2048,
    "memory_limit_mib": 96,
    "memory_reservation_mib": 64,
    "memory_shares": 1280,
    "disk_weight": 300,
}
"""Values that fit the default contract VM (128 MiB): reservation <= limit <= memory."""

_ARG = {"memory_limit_mib": "memory_limit", "memory_reservation_mib": "memory_reservation"}


def _arg(field: str) -> str:
    return _ARG.get(field, field)


class ResourcesContract(ContractBase):
    """``set_resources()`` stores what it is given, and ``resources()`` reads it back."""

    def test_resources_read(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``resources()`` returns a :class:`ResourceAllocation` with non-negative values."""
        require(hypervisor, Capability.RESOURCES)
        current = stopped_vm.resources()
        assert isinstance(current, ResourceAllocation)
        for f in fields(current):
            value = getattr(current, f.name)
            assert value is None or (isinstance(value, int) and value >= 0), (f.name, value)

    def test_resources_round_trip(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Every field in :attr:`resource_fields` set is returned and read back exactly."""
        require(hypervisor, Capability.RESOURCES)
        wanted = {f: SAMPLE_VALUES[f] for f in self.resource_fields}
        returned = stopped_vm.set_resources(**{_arg(f): v for f, v in wanted.items()})
        assert isinstance(returned, ResourceAllocation)
        read = stopped_vm.resources()
        assert read == returned, "set_resources() returned something other than what resources() reads"
        for field, value in wanted.items():
            assert getattr(read, field) == value, f"{field}: set {value}, read {getattr(read, field)}"

    def test_resources_partial_update(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Fields not passed keep their value; ``None`` clears a field."""
        require(hypervisor, Capability.RESOURCES)
        if len(self.resource_fields) < 2:
            pytest.skip("needs two round-trippable resource fields")
        first, second = self.resource_fields[:2]
        stopped_vm.set_resources(**{_arg(first): SAMPLE_VALUES[first], _arg(second): SAMPLE_VALUES[second]})
        stopped_vm.set_resources(**{_arg(second): SAMPLE_VALUES[second] + 1})
        read = stopped_vm.resources()
        assert getattr(read, first) == SAMPLE_VALUES[first], f"{first} changed although it was not passed"
        assert getattr(read, second) == SAMPLE_VALUES[second] + 1
        stopped_vm.set_resources(**{_arg(first): None})
        read = stopped_vm.resources()
        assert getattr(read, first) is None, f"{first} was not cleared by None"
        assert getattr(read, second) == SAMPLE_VALUES[second] + 1

    def test_resources_memory_sizes(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Memory entitlements accept size strings and are stored in MiB."""
        require(hypervisor, Capability.RESOURCES)
        if "memory_reservation_mib" not in self.resource_fields:
            pytest.skip("memory_reservation_mib is not in resource_fields")
        stopped_vm.set_resources(memory_reservation="64MiB")
        assert stopped_vm.resources().memory_reservation_mib == 64

    def test_resources_on_running_vm(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """Entitlements can be set on a running VM."""
        require(hypervisor, Capability.RESOURCES)
        if not self.resource_fields:
            pytest.skip("resource_fields is empty")
        field = self.resource_fields[0]
        running_vm.set_resources(**{_arg(field): SAMPLE_VALUES[field]})
        assert getattr(running_vm.resources(), field) == SAMPLE_VALUES[field]

    def test_resources_reject_bad_values(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Negative numbers and bad sizes are :class:`SpecError`s, and nothing changes."""
        require(hypervisor, Capability.RESOURCES)
        before = stopped_vm.resources()
        with pytest.raises(SpecError) as excinfo:
            stopped_vm.set_resources(cpu_shares=-1)
        assert excinfo.value.field == "cpu_shares"
        with pytest.raises(SpecError) as excinfo:
            stopped_vm.set_resources(memory_limit="a lot")
        assert excinfo.value.field == "memory_limit"
        assert stopped_vm.resources() == before
