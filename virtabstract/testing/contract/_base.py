"""The base every contract mixin shares: the fixtures a backend provides or tunes, and helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from ..._hypervisor import VM, Hypervisor
from ..._model import Capability, PowerState
from ..._spec import VMSpec
from .._factory import ContractTimeouts, SpecFactory, VMFactory, make_spec_factory

__all__ = ["ALL_RESOURCE_FIELDS", "ContractBase", "assert_state", "require"]

ALL_RESOURCE_FIELDS: tuple[str, ...] = (
    "cpu_limit_mhz",
    "cpu_reservation_mhz",
    "cpu_shares",
    "memory_limit_mib",
    "memory_reservation_mib",
    "memory_shares",
    "disk_weight",
)
"""Every field of :class:`~virtabstract.ResourceAllocation`."""


def require(hv: Hypervisor, *capabilities: Capability) -> None:
    """Skip the running test unless *hv* declares every capability, naming the missing one."""
    for capability in capabilities:
        if not hv.supports(capability):
            pytest.skip(f"the {hv.backend_name} backend does not declare {capability.name} ({capability.value})")


def assert_state(vm: VM, state: PowerState) -> None:
    """Assert that both the cheap state read and a full :meth:`VM.info` report *state*."""
    seen = vm.state
    assert seen is state, f"{vm!r}: vm.state is {seen.value}, expected {state.value}"
    info = vm.info()
    assert info.state is state, (
        f"{vm!r}: vm.info().state is {info.state.value} (native {info.native_state!r}), expected {state.value}"
    )


class ContractBase:
    """Fixtures and settings shared by every contract mixin.

    A backend's test class overrides the :meth:`hypervisor` fixture (required) and,
    where its defaults do not fit, the class attributes and the other fixtures.
    """

    name_prefix: ClassVar[str] = "vatest-"
    """Start of every VM name the suite creates (a random token follows, per test)."""
    timeouts: ClassVar[ContractTimeouts] = ContractTimeouts()
    """How long to wait for power transitions, guest agents and IP addresses."""
    spec_guest_os: ClassVar[str] = "linux"
    """Guest OS catalog id of the VMs the default :meth:`contract_spec` builds."""
    spec_network: ClassVar[str | None] = "default"
    """Network of the one NIC of the default spec; it must exist on the hypervisor (``None``: no NIC)."""
    spec_storage: ClassVar[str | None] = None
    """Storage pool / datastore of the one disk of the default spec (``None``: the backend's default)."""
    spec_memory: ClassVar[int | str] = "128MiB"
    """Memory of the default spec."""
    spec_disk_size: ClassVar[int | str | None] = "128MiB"
    """Size of the one disk of the default spec (``None``: no disk)."""
    duplicate_vm_names: ClassVar[bool | None] = None
    """Whether the backend lets two VMs share a name (vSphere, VirtualBox); ``None``: find out by trying."""
    resource_fields: ClassVar[tuple[str, ...]] = ALL_RESOURCE_FIELDS
    """:class:`~virtabstract.ResourceAllocation` fields the backend stores exactly (round-trip tested)."""
    guest_tmp_dir: ClassVar[str] = "/tmp"  # noqa: S108 - a path inside the guest, not on this host
    """A writable directory inside the test guest."""
    guest_shell: ClassVar[tuple[str, ...]] = ("sh", "-c")
    """How to run a shell command line in the test guest (POSIX ``sh -c`` by default)."""

    # -- fixtures a backend provides or overrides ------------------------------------------

    @pytest.fixture
    def hypervisor(self) -> Hypervisor:
        """The connection under test. Every backend's test class must override this fixture."""
        pytest.fail(
            f"{type(self).__name__} must override the 'hypervisor' fixture, e.g.\n"
            "    @pytest.fixture\n"
            "    def hypervisor(self):\n"
            '        with virtabstract.connect("mybackend://...") as hv:\n'
            "            yield hv"
        )

    @pytest.fixture
    def contract_spec(self) -> SpecFactory:
        """Builds the spec of each test VM: ``contract_spec(name, **overrides) -> VMSpec``.

        The default is small (1 vCPU, :attr:`spec_memory`, one disk on :attr:`spec_storage`,
        one NIC on :attr:`spec_network`). Override when the backend needs more.
        """
        return make_spec_factory(
            guest_os=self.spec_guest_os,
            network=self.spec_network,
            storage=self.spec_storage,
            memory=self.spec_memory,
            disk_size=self.spec_disk_size,
        )

    @pytest.fixture
    def guest_spec(self, contract_spec: SpecFactory) -> SpecFactory:
        """Builds the spec of a VM whose guest boots an OS with an agent (default: :meth:`contract_spec`)."""
        return contract_spec

    @pytest.fixture
    def vm_factory(self, hypervisor: Hypervisor, contract_spec: SpecFactory) -> Iterator[VMFactory]:
        """Creates VMs with unique names; powers off and deletes them all (and any VM with the prefix) after."""
        factory = VMFactory(hypervisor, prefix=self.name_prefix, spec_factory=contract_spec, timeouts=self.timeouts)
        try:
            yield factory
        finally:
            factory.cleanup()

    @pytest.fixture
    def stopped_vm(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> VM:
        """A freshly created, stopped VM."""
        require(hypervisor, Capability.CREATE, Capability.DELETE)
        return vm_factory()

    @pytest.fixture
    def running_vm(self, hypervisor: Hypervisor, vm_factory: VMFactory) -> VM:
        """A freshly created VM, started and observed ``RUNNING``."""
        require(hypervisor, Capability.CREATE, Capability.DELETE, Capability.START, Capability.POWER_OFF)
        return vm_factory(start=True)

    @pytest.fixture
    def guest_vm(self, hypervisor: Hypervisor, vm_factory: VMFactory, guest_spec: SpecFactory) -> VM:
        """A running VM whose guest agent answers.

        The default creates one from :meth:`guest_spec`, starts it and waits for the agent;
        a backend whose fresh VMs boot no OS overrides this with a prepared VM or image.
        """
        require(hypervisor, Capability.CREATE, Capability.DELETE, Capability.START, Capability.GUEST_INFO)
        vm = vm_factory(guest_spec(vm_factory.name("guest")), start=True)
        vm.guest.wait_ready(timeout=self.timeouts.guest)
        return vm

    @pytest.fixture
    def graceful_vm(self, hypervisor: Hypervisor, request: pytest.FixtureRequest) -> VM:
        """A running VM that honours graceful requests (shutdown, reboot).

        :meth:`guest_vm` when the backend declares guest information (a booted OS is then
        known to answer), else :meth:`running_vm`.
        """
        name = "guest_vm" if hypervisor.supports(Capability.GUEST_INFO) else "running_vm"
        vm: VM = request.getfixturevalue(name)
        return vm

    # -- helpers ------------------------------------------------------------------------------

    def wait(self, vm: VM, state: PowerState, timeout: float | None = None) -> None:
        """Wait (with the facade's wait) until *vm* is *state*, then assert both state reads agree."""
        vm.wait_for_state(state, timeout=self.timeouts.state if timeout is None else timeout)
        assert_state(vm, state)

    def spec(self, factory: VMFactory, hint: str = "vm", /, **overrides: Any) -> VMSpec:
        """A default spec with a fresh unique name."""
        return factory.spec(hint, **overrides)
