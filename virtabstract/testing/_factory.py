"""Creating test VMs with unique names, and removing every one of them afterwards.

Shared by the pytest plugin's ``vm_factory`` fixture and the contract suite. This
module imports no test framework, so it can also be used from scripts.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .._hypervisor import VM, Hypervisor
from .._model import PowerState
from .._spec import Disk, Nic, VMSpec
from ..errors import InvalidState, OperationTimeout, VirtAbstractError, VMNotFound

__all__ = ["ContractTimeouts", "SpecFactory", "VMFactory", "cleanup_vms", "make_spec_factory"]

log = logging.getLogger("virtabstract.testing")


@dataclass(frozen=True)
class ContractTimeouts:
    """Seconds the tests wait for things a real hypervisor does asynchronously.

    With the mock's manual clock every wait finishes at once in wall time; real
    backends (QEMU under TCG, vSphere tasks) need the defaults or more.
    """

    state: float = 60.0
    """A power state change (``start``, ``power_off``, ``pause``…) to be observed."""
    shutdown: float = 120.0
    """A graceful shutdown to complete."""
    guest: float = 300.0
    """The guest agent to answer after boot."""
    ip: float = 300.0
    """The guest to report an IP address."""
    exec: float = 60.0
    """A guest command to finish."""


class SpecFactory(Protocol):
    """Builds the :class:`~virtabstract.VMSpec` of a test VM: ``factory(name, **overrides)``."""

    def __call__(self, name: str, /, **overrides: Any) -> VMSpec:
        """Return a spec named *name*; keyword arguments replace fields of the default spec."""
        ...


def make_spec_factory(
    *,
    guest_os: str = "linux",
    network: str | None = "default",
    storage: str | None = None,
    cpus: int = 1,
    memory: int | str = "128MiB",
    disk_size: int | str | None = "128MiB",
    **defaults: Any,
) -> SpecFactory:
    """Return a :class:`SpecFactory` for small VMs (1 vCPU, 128 MiB, one disk, one NIC).

    :param guest_os: catalog id of the guest OS.
    :param network: the network of the one NIC (``None`` for no NIC); it must exist on the hypervisor.
    :param storage: the storage pool / datastore of the one disk (``None``: the backend's default).
    :param disk_size: size of the one disk (``None`` for no disk).
    :param defaults: further :class:`~virtabstract.VMSpec` fields.
    """
    disks = [Disk(size=disk_size, storage=storage)] if disk_size is not None else []
    nics = [Nic(network=network)] if network is not None else []

    def factory(name: str, /, **overrides: Any) -> VMSpec:
        fields: dict[str, Any] = {
            "name": name,
            "cpus": cpus,
            "memory": memory,
            "guest_os": guest_os,
            "disks": disks,
            "nics": nics,
            **defaults,
        }
        fields.update(overrides)
        return VMSpec(**fields)

    return factory


class VMFactory:
    """Creates VMs with unique names and deletes them (and anything else with its prefix) at cleanup.

    Every name starts with :attr:`prefix`: the given prefix plus a random token,
    so concurrent runs against one hypervisor never touch each other's VMs::

        factory = VMFactory(hv, prefix="vatest-")
        vm = factory(cpus=2)                      # a small stopped VM, name "vatest-1a2b3c4d-vm1"
        web = factory(factory.spec("web", memory="256MiB"), start=True)
        ...
        factory.cleanup()                         # power off and delete them all

    :param hypervisor: the default connection (or a callable returning it, called on first use).
    :param prefix: the start of every name.
    :param spec_factory: builds the default spec; :func:`make_spec_factory` when omitted.
    :param timeouts: how long cleanup waits for a VM to stop.
    """

    def __init__(
        self,
        hypervisor: Hypervisor | Callable[[], Hypervisor] | None = None,
        *,
        prefix: str = "vatest-",
        spec_factory: SpecFactory | None = None,
        timeouts: ContractTimeouts | None = None,
    ) -> None:
        self._default_hv = hypervisor
        self.prefix = f"{prefix}{uuid.uuid4().hex[:8]}-"
        """The start of every name this factory gives (unique per factory)."""
        self.spec_factory: SpecFactory = spec_factory or make_spec_factory()
        self.timeouts = timeouts or ContractTimeouts()
        self._counter = itertools.count(1)
        self._tracked: list[tuple[Hypervisor, str]] = []
        self._hypervisors: list[Hypervisor] = []

    # -- naming and specs -------------------------------------------------------------

    @property
    def hypervisor(self) -> Hypervisor:
        """The default connection VMs are created on."""
        hv = self._default_hv
        if hv is None:
            raise RuntimeError("this VMFactory has no default hypervisor: pass hypervisor=")
        if not isinstance(hv, Hypervisor):
            hv = hv()
            self._default_hv = hv
        return hv

    def name(self, hint: str = "vm") -> str:
        """Return a fresh unique name: the prefix, *hint* and a counter."""
        return f"{self.prefix}{hint}{next(self._counter)}"

    def spec(self, hint: str = "vm", /, **overrides: Any) -> VMSpec:
        """Return the default spec with a fresh name (``name=`` in *overrides* wins)."""
        name = overrides.pop("name", None) or self.name(hint)
        return self.spec_factory(name, **overrides)

    # -- creating -----------------------------------------------------------------------

    def __call__(
        self,
        spec: VMSpec | Mapping[str, Any] | None = None,
        *,
        hypervisor: Hypervisor | None = None,
        start: bool = False,
        wait: bool = True,
        **overrides: Any,
    ) -> VM:
        """Create a VM and remember it for cleanup.

        :param spec: the spec to create (default: :meth:`spec` with *overrides*).
        :param hypervisor: where to create it (default: the factory's connection).
        :param start: power it on; with *wait*, wait until it is ``RUNNING``.
        """
        hv = hypervisor or self.hypervisor
        self._watch(hv)
        if spec is None:
            spec = self.spec(**overrides)
        elif overrides:
            raise TypeError("pass either a spec or field overrides, not both")
        vm = hv.vms.create(spec)
        self.track(vm)
        if start:
            vm.start()
            if wait:
                vm.wait_for_state(PowerState.RUNNING, timeout=self.timeouts.state)
        return vm

    def track(self, vm: VM | str, hypervisor: Hypervisor | None = None) -> None:
        """Remember a VM created elsewhere (e.g. a clone) so cleanup deletes it too."""
        if isinstance(vm, VM):
            hv, vm_id = vm.hypervisor, vm.id
        else:
            hv, vm_id = hypervisor or self.hypervisor, vm
        self._watch(hv)
        if (hv, vm_id) not in self._tracked:
            self._tracked.append((hv, vm_id))

    def _watch(self, hv: Hypervisor) -> None:
        if all(h is not hv for h in self._hypervisors):
            self._hypervisors.append(hv)

    # -- cleanup --------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Power off and delete every tracked VM and every VM whose name has the prefix.

        Runs even when the test failed. Raises :class:`AssertionError` naming the VMs
        that could not be removed, so that leaks are visible.
        """
        problems: list[str] = []
        for hv in self._hypervisors:
            if hv.closed:
                leftover = [vm_id for h, vm_id in self._tracked if h is hv]
                if leftover:
                    log.warning("cannot clean up %s: the connection %s is closed", leftover, hv.url)
                continue
            ids = [vm_id for h, vm_id in reversed(self._tracked) if h is hv]
            problems += cleanup_vms(hv, ids, prefix=self.prefix, timeout=self.timeouts.state)
        self._tracked.clear()
        if problems:
            raise AssertionError("test VMs could not be removed: " + "; ".join(problems))


def cleanup_vms(
    hv: Hypervisor, vm_ids: Iterable[str] = (), *, prefix: str | None = None, timeout: float = 60
) -> list[str]:
    """Power off and delete the VMs *vm_ids* and, with *prefix*, every VM whose name starts with it.

    VMs found by prefix (clones, VMs created behind the factory's back) go first, newest
    first, so linked clones disappear before their parents. A VM that is already gone
    is fine. Returns a description of each VM that could not be removed.
    """
    order: list[str] = []
    if prefix:
        try:
            found = [info.id for info in hv.vms.list_info() if info.name.startswith(prefix)]
        except VirtAbstractError as exc:
            return [f"listing VMs with prefix {prefix!r} failed: {exc}"]
        order += [vm_id for vm_id in reversed(found) if vm_id not in vm_ids]
    order += [vm_id for vm_id in vm_ids if vm_id not in order]
    failures: dict[str, str] = {}
    for _ in range(2):  # a second pass for VMs whose removal depended on another (linked clones)
        pending = list(order) if not failures else list(failures)
        failures = {}
        for vm_id in pending:
            try:
                _dispose(hv, vm_id, timeout)
            except Exception as exc:  # noqa: BLE001 - cleanup reports and carries on
                failures[vm_id] = f"{vm_id}: {type(exc).__name__}: {exc}"
        if not failures:
            break
    return list(failures.values())


def _dispose(hv: Hypervisor, vm_id: str, timeout: float) -> None:
    """Bring one VM to STOPPED by whatever path its state allows, then delete it."""
    backend = hv.backend
    for _ in range(4):
        try:
            state, _native = backend.get_state(vm_id)
        except VMNotFound:
            return
        vm = hv.vms.get(vm_id)
        if state is PowerState.STOPPED or state is PowerState.CRASHED:
            try:
                vm.delete(disks=True)
                return
            except VMNotFound:
                return
            except InvalidState:
                if state is PowerState.STOPPED:
                    raise
                vm.power_off()
        elif state is PowerState.SUSPENDED:
            try:
                vm.delete(disks=True)
                return
            except VMNotFound:
                return
            except InvalidState:
                vm.start()  # restore, then power off below on the next round
                _wait_quietly(vm, PowerState.RUNNING, timeout)
        elif state in (PowerState.RUNNING, PowerState.PAUSED, PowerState.STOPPING, PowerState.UNKNOWN):
            with contextlib.suppress(InvalidState):
                vm.power_off()
            _wait_quietly(vm, PowerState.STOPPED, timeout)
        else:  # STARTING, SAVING, RESTORING: let the transition finish
            _wait_quietly(vm, PowerState.RUNNING, timeout / 4)
    state, native = backend.get_state(vm_id)
    raise InvalidState(f"VM {vm_id} could not be stopped and deleted (it is {state.value}, native {native!r})")


def _wait_quietly(vm: VM, state: PowerState, timeout: float) -> None:
    with contextlib.suppress(OperationTimeout, VMNotFound):
        vm.wait_for_state(state, timeout=timeout)
