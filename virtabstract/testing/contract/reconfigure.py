"""Reconfigure: plans and their modes (offline, live, needs_power_off, deferred), values really applied."""

from __future__ import annotations

from typing import Any

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState, ReconfigurePlan, VMInfo
from ..._spec import MIN_MEMORY_MIB
from ...errors import InvalidState, SpecError, UnsupportedOperation
from ._base import ContractBase, require

__all__ = ["ReconfigureContract"]

MODES = frozenset({"offline", "live", "deferred", "needs_power_off"})


class ReconfigureContract(ContractBase):
    """``reconfigure()`` says how each change applies, and the changes are really made."""

    def test_reconfigure_stopped(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """On a stopped VM every change is ``offline`` and is visible in ``info()`` at once."""
        require(hypervisor, Capability.RECONFIGURE)
        before = stopped_vm.info()
        plan = stopped_vm.reconfigure(
            cpus=before.cpus + 1, memory=before.memory_mib * 2, description="reconfigured", tags=["x", "y"]
        )
        assert isinstance(plan, ReconfigurePlan)
        assert plan.applied is True
        assert plan.vm_id == stopped_vm.id
        by_field = {c.field: c for c in plan.changes}
        assert set(by_field) == {"cpus", "memory_mib", "description", "tags"}
        assert all(c.mode == "offline" for c in plan.changes), plan.changes
        assert (by_field["cpus"].old, by_field["cpus"].new) == (before.cpus, before.cpus + 1)
        assert (by_field["memory_mib"].old, by_field["memory_mib"].new) == (before.memory_mib, before.memory_mib * 2)
        after = stopped_vm.info()
        assert after.cpus == before.cpus + 1
        assert after.memory_mib == before.memory_mib * 2
        assert after.description == "reconfigured"
        assert set(after.tags) == {"x", "y"}

    def test_reconfigure_memory_units(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Memory given as a size string is stored in MiB."""
        require(hypervisor, Capability.RECONFIGURE)
        stopped_vm.reconfigure(memory="256MiB")
        assert stopped_vm.info().memory_mib == 256
        stopped_vm.reconfigure(memory="1GiB")
        assert stopped_vm.info().memory_mib == 1024

    def test_reconfigure_dry_run(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``dry_run=True`` returns the plan and changes nothing."""
        require(hypervisor, Capability.RECONFIGURE)
        before = stopped_vm.info()
        plan = stopped_vm.reconfigure(cpus=before.cpus + 1, dry_run=True)
        assert plan.applied is False
        assert [(c.field, c.new) for c in plan.changes] == [("cpus", before.cpus + 1)]
        assert stopped_vm.info().cpus == before.cpus

    def test_reconfigure_no_change(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Asking for the current values yields an empty plan."""
        require(hypervisor, Capability.RECONFIGURE)
        info = stopped_vm.info()
        plan = stopped_vm.reconfigure(cpus=info.cpus, memory=info.memory_mib)
        assert plan.changed is False
        assert plan.changes == ()

    def test_reconfigure_running(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """On a running VM each change is ``live`` or ``needs_power_off``; live ones apply, blocked ones refuse.

        Tried one at a time: growing and shrinking CPUs and memory. ``live`` appears only
        when the backend declares RECONFIGURE_LIVE. A change that needs a power-off raises
        :class:`InvalidState` and changes nothing.
        """
        require(hypervisor, Capability.RECONFIGURE)
        for field, direction in _CANDIDATES:
            before = running_vm.info()
            new = _candidate_value(before, field, direction)
            if new is None:
                continue
            plan = _change(running_vm, field, new, dry_run=True)
            assert [c.field for c in plan.changes] == [field]
            mode = plan.changes[0].mode
            assert mode in {"live", "needs_power_off"}, f"{field} {direction}: mode {mode!r} on a running VM"
            if not hypervisor.supports(Capability.RECONFIGURE_LIVE):
                assert mode != "live", f"{field} {direction} planned live without RECONFIGURE_LIVE"
            assert getattr(running_vm.info(), field) == getattr(before, field), "a dry run changed the VM"
            if mode == "needs_power_off":
                with pytest.raises(InvalidState) as excinfo:
                    _change(running_vm, field, new)
                assert excinfo.value.state is PowerState.RUNNING
                assert getattr(running_vm.info(), field) == getattr(before, field), "a refused change was applied"
            else:
                applied = _change(running_vm, field, new)
                assert applied.applied
                assert [c.mode for c in applied.changes] == ["live"]
                assert getattr(running_vm.info(), field) == new, f"live {field} change not visible in info()"
            self.wait(running_vm, PowerState.RUNNING)

    def test_reconfigure_live(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """With RECONFIGURE_LIVE, growing CPUs or memory applies to the running VM and shows in ``info()``."""
        require(hypervisor, Capability.RECONFIGURE_LIVE)
        before = running_vm.info()
        plan = running_vm.reconfigure(cpus=before.cpus + 1, memory=before.memory_mib * 2, dry_run=True)
        live = [c for c in plan.changes if c.mode == "live"]
        assert live, f"RECONFIGURE_LIVE is declared but growing CPUs/memory is not planned live: {plan.changes}"
        for change in live:
            result = _change(running_vm, change.field, change.new)
            assert [c.mode for c in result.changes] == ["live"]
            assert getattr(running_vm.info(), change.field) == change.new
        self.wait(running_vm, PowerState.RUNNING)

    def test_reconfigure_deferred(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """With ``defer=True``, a change that needs a power-off is saved and takes effect after a power cycle."""
        require(hypervisor, Capability.RECONFIGURE)
        blocked: tuple[str, Any] | None = None
        before = running_vm.info()
        for field, direction in _CANDIDATES:
            new = _candidate_value(before, field, direction)
            if new is None:
                continue
            plan = _change(running_vm, field, new, dry_run=True)
            if plan.changes and plan.changes[0].mode == "needs_power_off":
                blocked = (field, new)
                break
        if blocked is None:
            pytest.skip("every change applies live on this backend: nothing to defer")
        field, new = blocked
        if not hypervisor.supports(Capability.RECONFIGURE_DEFERRED):
            with pytest.raises(UnsupportedOperation):
                _change(running_vm, field, new, defer=True)
            assert getattr(running_vm.info(), field) == getattr(before, field)
            pytest.skip(f"the {hypervisor.backend_name} backend does not declare RECONFIGURE_DEFERRED")
        plan = _change(running_vm, field, new, defer=True)
        assert plan.applied
        assert [(c.field, c.mode) for c in plan.changes] == [(field, "deferred")]
        self.wait(running_vm, PowerState.RUNNING)
        running_vm.power_off()
        self.wait(running_vm, PowerState.STOPPED)
        assert getattr(running_vm.info(), field) == new, f"deferred {field} was not applied at power-off"
        running_vm.start()
        self.wait(running_vm, PowerState.RUNNING)
        assert getattr(running_vm.info(), field) == new

    def test_reconfigure_rejects_bad_values(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """Invalid values raise :class:`SpecError` naming the field, and nothing changes."""
        require(hypervisor, Capability.RECONFIGURE)
        before = stopped_vm.info()
        with pytest.raises(SpecError) as excinfo:
            stopped_vm.reconfigure(cpus=0)
        assert excinfo.value.field == "cpus"
        with pytest.raises(SpecError) as excinfo:
            stopped_vm.reconfigure(memory="lots")
        assert excinfo.value.field == "memory"
        with pytest.raises(SpecError):
            stopped_vm.reconfigure(cpus=before.cpus + 1, tags=["bad,tag"])
        after = stopped_vm.info()
        assert (after.cpus, after.memory_mib, after.tags) == (before.cpus, before.memory_mib, before.tags)

    def test_reconfigure_plan_modes_are_known(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """The backend's plan uses only the documented modes and only the fields asked for."""
        require(hypervisor, Capability.RECONFIGURE)
        info = stopped_vm.info()
        changes = hypervisor.backend.plan_reconfigure(stopped_vm.id, {"cpus": info.cpus + 1, "description": "d"})
        assert {c.field for c in changes} == {"cpus", "description"}
        assert all(c.mode in MODES for c in changes)


_ARG = {"cpus": "cpus", "memory_mib": "memory", "description": "description", "tags": "tags"}

_CANDIDATES = (("cpus", "grow"), ("memory_mib", "grow"), ("memory_mib", "shrink"), ("cpus", "shrink"))
"""One change at a time, for running VMs: growing is often live, shrinking often needs a power-off."""


def _change(vm: VM, field: str, value: Any, *, dry_run: bool = False, defer: bool = False) -> ReconfigurePlan:
    """``vm.reconfigure()`` of one field, named as in :class:`VMInfo`."""
    kwargs: dict[str, Any] = {_ARG[field]: value}
    return vm.reconfigure(**kwargs, dry_run=dry_run, defer=defer)


def _candidate_value(info: VMInfo, field: str, direction: str) -> int | None:
    current: int = getattr(info, field)
    if direction == "grow":
        return current + 1 if field == "cpus" else current * 2
    smaller = current - 1 if field == "cpus" else current // 2
    minimum = 1 if field == "cpus" else MIN_MEMORY_MIB
    return smaller if smaller >= minimum else None
