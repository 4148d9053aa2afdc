"""Power: start, shutdown, power off, reboot, reset, pause/resume, suspend, start_many."""

from __future__ import annotations

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState, ShutdownResult
from .._factory import VMFactory
from ._base import ContractBase, assert_state, require

__all__ = ["PowerContract"]


class PowerContract(ContractBase):
    """Every power verb really changes the state, as seen by ``vm.state`` and ``vm.info()``."""

    def test_power_start(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``start()`` brings a stopped VM to ``RUNNING``."""
        require(hypervisor, Capability.START, Capability.POWER_OFF)
        stopped_vm.start()
        self.wait(stopped_vm, PowerState.RUNNING)
        assert stopped_vm.state.is_active

    def test_power_off(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """``power_off()`` stops a running VM."""
        running_vm.power_off()
        self.wait(running_vm, PowerState.STOPPED)
        assert not running_vm.state.is_active

    def test_power_cycle_twice(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """A VM can be started and stopped repeatedly."""
        require(hypervisor, Capability.START, Capability.POWER_OFF)
        for _ in range(2):
            stopped_vm.start()
            self.wait(stopped_vm, PowerState.RUNNING)
            stopped_vm.power_off()
            self.wait(stopped_vm, PowerState.STOPPED)

    def test_power_shutdown_graceful(self, hypervisor: Hypervisor, graceful_vm: VM) -> None:
        """``shutdown()`` stops a running guest gracefully and says so."""
        require(hypervisor, Capability.SHUTDOWN)
        result = graceful_vm.shutdown(timeout=self.timeouts.shutdown)
        assert isinstance(result, ShutdownResult)
        assert result.stage == "graceful", result
        assert result.method, "ShutdownResult.method is empty (acpi/agent/tools/…)"
        assert_state(graceful_vm, PowerState.STOPPED)

    def test_power_shutdown_already_stopped(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``shutdown()`` of a stopped VM reports ``already_stopped`` and changes nothing."""
        require(hypervisor, Capability.SHUTDOWN)
        result = stopped_vm.shutdown(timeout=self.timeouts.shutdown)
        assert result.stage == "already_stopped"
        assert_state(stopped_vm, PowerState.STOPPED)

    def test_power_reboot(self, hypervisor: Hypervisor, graceful_vm: VM) -> None:
        """``reboot()`` keeps the VM running."""
        require(hypervisor, Capability.REBOOT)
        graceful_vm.reboot()
        self.wait(graceful_vm, PowerState.RUNNING)

    def test_power_reset(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """``reset()`` keeps the VM running."""
        require(hypervisor, Capability.RESET)
        running_vm.reset()
        self.wait(running_vm, PowerState.RUNNING)

    def test_power_pause_resume(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """``pause()`` freezes a VM (``PAUSED``, still active); ``resume()`` brings it back to ``RUNNING``."""
        require(hypervisor, Capability.PAUSE)
        running_vm.pause()
        self.wait(running_vm, PowerState.PAUSED)
        assert running_vm.state.is_active, "a paused VM still has its process and memory"
        running_vm.resume()
        self.wait(running_vm, PowerState.RUNNING)

    def test_power_off_paused(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """A paused VM can be powered off."""
        require(hypervisor, Capability.PAUSE)
        running_vm.pause()
        self.wait(running_vm, PowerState.PAUSED)
        running_vm.power_off()
        self.wait(running_vm, PowerState.STOPPED)

    def test_power_suspend_and_restore(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """``suspend()`` saves the VM to disk (``SUSPENDED``, not active); ``start()`` restores it."""
        require(hypervisor, Capability.SUSPEND)
        running_vm.suspend()
        self.wait(running_vm, PowerState.SUSPENDED)
        assert not running_vm.state.is_active
        running_vm.start()
        self.wait(running_vm, PowerState.RUNNING)

    def test_power_start_many(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``start_many()`` starts every VM given and reports ``None`` for each."""
        require(hypervisor, Capability.CREATE, Capability.START, Capability.POWER_OFF)
        vms = [vm_factory(), vm_factory()]
        results = hypervisor.start_many(vms)
        assert results == {vm.id: None for vm in vms}
        for vm in vms:
            self.wait(vm, PowerState.RUNNING)

    def test_power_start_many_reports_errors(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``start_many()`` reports a per-VM error (an already running VM) without failing the others."""
        require(hypervisor, Capability.CREATE, Capability.START, Capability.POWER_OFF)
        running = vm_factory(start=True)
        stopped = vm_factory()
        results = hypervisor.start_many([running, stopped])
        assert set(results) == {running.id, stopped.id}
        assert results[stopped.id] is None
        assert isinstance(results[running.id], Exception), "starting a running VM must be reported as an error"
        self.wait(stopped, PowerState.RUNNING)
        self.wait(running, PowerState.RUNNING)
