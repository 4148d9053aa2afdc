"""Lifecycle: create, create-and-start, delete, unregister, autostart, console."""

from __future__ import annotations

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, ConsoleInfo, PowerState, Secret
from ...errors import VMNotFound
from .._factory import VMFactory
from ._base import ContractBase, assert_state, require

__all__ = ["LifecycleContract"]

CONSOLE_PROTOCOLS = frozenset({"vnc", "spice", "rdp", "webmks", "serial"})


class LifecycleContract(ContractBase):
    """Creating and removing VMs, and the settings that live with them."""

    def test_lifecycle_create_is_stopped(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A new VM exists, is ``STOPPED``, and carries the name it was given."""
        require(hypervisor, Capability.CREATE)
        spec = vm_factory.spec()
        vm = vm_factory(spec)
        assert isinstance(vm, VM)
        assert vm.id, "a created VM has an empty id"
        assert vm.name == spec.name
        assert_state(vm, PowerState.STOPPED)
        assert not vm.state.is_active

    def test_lifecycle_create_from_mapping(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``vms.create()`` accepts plain data (as from YAML) as well as a VMSpec."""
        require(hypervisor, Capability.CREATE)
        data = vm_factory.spec(cpus=2).to_dict()
        vm = vm_factory(data)
        assert vm.info().cpus == 2
        assert vm.name == data["name"]

    def test_lifecycle_create_and_start(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``vms.create(spec, start=True)`` leaves the VM running."""
        require(hypervisor, Capability.CREATE, Capability.START, Capability.POWER_OFF)
        vm = hypervisor.vms.create(vm_factory.spec(), start=True)
        vm_factory.track(vm)
        self.wait(vm, PowerState.RUNNING)

    def test_lifecycle_delete_removes(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """After ``delete()`` the VM is gone by id and by name, and further calls raise VMNotFound."""
        vm = stopped_vm
        vm_id, name = vm.id, vm.name
        vm.delete()
        assert vm_id not in [i.id for i in hypervisor.vms.list_info()]
        assert name not in hypervisor.vms
        with pytest.raises(VMNotFound):
            hypervisor.vms.get(vm_id)
        with pytest.raises(VMNotFound):
            hypervisor.vms.get(name)
        with pytest.raises(VMNotFound):
            vm.info()
        with pytest.raises(VMNotFound):
            _ = vm.state

    def test_lifecycle_delete_keep_disks(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``delete(disks=False)`` also removes the VM from the inventory."""
        vm_id = stopped_vm.id
        stopped_vm.delete(disks=False)
        with pytest.raises(VMNotFound):
            hypervisor.vms.get(vm_id)

    def test_lifecycle_name_reusable_after_delete(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """A deleted VM's name can be used again, for a VM with a new id."""
        require(hypervisor, Capability.CREATE, Capability.DELETE)
        spec = vm_factory.spec()
        first = vm_factory(spec)
        first.delete()
        second = vm_factory(spec)
        assert second.id != first.id
        assert hypervisor.vms.get(spec.name).id == second.id

    def test_lifecycle_unregister(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> None:
        """``unregister()`` removes the VM from the inventory (its disks stay on storage)."""
        require(hypervisor, Capability.CREATE, Capability.UNREGISTER)
        vm = vm_factory()
        vm.unregister()
        with pytest.raises(VMNotFound):
            hypervisor.vms.get(vm.id)
        assert vm.name not in hypervisor.vms

    def test_lifecycle_autostart(self, hypervisor: Hypervisor, stopped_vm: VM) -> None:
        """``set_autostart()`` is reflected in ``info().autostart``, both ways."""
        require(hypervisor, Capability.AUTOSTART)
        stopped_vm.set_autostart(True)
        assert stopped_vm.info().autostart is True
        stopped_vm.set_autostart(False)
        assert stopped_vm.info().autostart is False

    def test_lifecycle_console(self, hypervisor: Hypervisor, running_vm: VM) -> None:
        """A running VM's console is described with a known protocol; a password is never plain text."""
        require(hypervisor, Capability.CONSOLE)
        console = running_vm.console()
        assert isinstance(console, ConsoleInfo)
        assert console.protocol in CONSOLE_PROTOCOLS, console.protocol
        assert console.password is None or isinstance(console.password, Secret)
        if console.port is not None:
            assert 0 < console.port < 65536
        assert console.port is not None or console.url or console.serial_device, (
            "the console gives no port, URL or serial device"
        )
