"""Testing kit: an opt-in pytest plugin with a mock hypervisor, and the backend contract suite.

Enable the plugin in a ``conftest.py`` (or a test module; markers such as
``@pytest.mark.virtabstract_backend`` need the ``conftest.py`` form under ``--strict-markers``)::

    pytest_plugins = ["virtabstract.testing"]

    def test_deploy(mock_hypervisor, vm_factory):
        vm = vm_factory(cpus=2, start=True)           # deleted after the test, even if it fails
        assert deploy(mock_hypervisor, vm.name) == "ok"

    def test_retries_on_lost_connection(mock_hypervisor, vm_factory):
        vm = vm_factory()
        inject_fault(mock_hypervisor, "start", times=1, error=ConnectionLost)
        my_start_with_retry(vm)                       # your code under test
        assert fault_stats(mock_hypervisor).calls["start"] == 2

Fixtures:

``mock_hypervisor``
    a fresh ``mock://?clock=manual`` connection (in memory, deterministic clock), closed after the test.
``mock_clock``
    the :class:`~virtabstract.ManualClock` of ``mock_hypervisor``: ``mock_clock.advance(30)``.
``vm_factory``
    a :class:`VMFactory`: ``vm_factory(spec=None, *, hypervisor=None, start=False, **fields)``
    creates a VM with a unique name (on ``mock_hypervisor`` unless told otherwise) and
    deletes it at teardown.
``mock_faults``
    the fault plan of ``mock_hypervisor`` (``hv.backend.faults``), cleared after the test.

Fault helpers (plain functions, for any ``mock://`` connection): :func:`inject_fault`,
:func:`inject_delay`, :func:`expire_session`, :func:`agent_absent`, :func:`ignore_shutdown`,
:func:`crash_vm`, :func:`clear_faults`, :func:`fault_stats`, :func:`faults_of`.

The contract suite lives in :mod:`virtabstract.testing.contract`. Importing
``virtabstract`` never imports this module (nor pytest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

import virtabstract

from .._hypervisor import VM, Hypervisor
from .._wait import ManualClock
from ..errors import ConnectionLost, UsageError
from ._factory import ContractTimeouts, SpecFactory, VMFactory, cleanup_vms, make_spec_factory

if TYPE_CHECKING:
    from ..backends.mock._faults import ErrorFactory, FaultPlan, MockStats

__all__ = [
    "ContractTimeouts",
    "SpecFactory",
    "VMFactory",
    "agent_absent",
    "cleanup_vms",
    "clear_faults",
    "crash_vm",
    "expire_session",
    "fault_stats",
    "faults_of",
    "ignore_shutdown",
    "inject_delay",
    "inject_fault",
    "make_spec_factory",
    "mock_clock",
    "mock_faults",
    "mock_hypervisor",
    "vm_factory",
]

MOCK_URL = "mock://?clock=manual"
"""The URL :func:`mock_hypervisor` connects to."""


# -- fault helpers -------------------------------------------------------------------------------


def faults_of(hv: Hypervisor) -> FaultPlan:
    """The fault plan of a mock connection (``hv.backend.faults``).

    :raises UsageError: *hv* is not served by the mock backend.
    """
    faults = getattr(hv.backend, "faults", None)
    # duck-typed: a subclass of the mock (or a re-imported one) qualifies as well
    if not all(callable(getattr(faults, name, None)) for name in ("fail", "delay", "clear")):
        raise UsageError(f"fault injection needs a mock:// connection, not the {hv.backend_name} backend ({hv.url})")
    plan: FaultPlan = faults  # type: ignore[assignment]
    return plan


def _vm_id(vm: VM | str | None) -> str | None:
    return vm.id if isinstance(vm, VM) else vm


def inject_fault(
    hv: Hypervisor,
    operation: str,
    *,
    times: int | None = 1,
    error: ErrorFactory = ConnectionLost,
    vm: VM | str | None = None,
    message: str = "",
) -> None:
    """Make the next *times* calls of *operation* on *hv* raise *error*, before they have any effect.

    :param operation: a mock operation name (``"start"``, ``"create"``, ``"guest_exec"``…) or ``"*"``.
    :param times: how many calls fail; ``None`` for every call until :func:`clear_faults`.
    :param error: an exception class from :mod:`virtabstract.errors`, or an instance to raise as is.
    :param vm: only calls about this VM (a :class:`~virtabstract.VM` or an id).
    """
    faults_of(hv).fail(operation, times=times, error=error, vm_id=_vm_id(vm), message=message)


def inject_delay(
    hv: Hypervisor, operation: str, seconds: float, *, times: int | None = None, vm: VM | str | None = None
) -> None:
    """Add *seconds* of latency (on the connection's clock) to calls of *operation*."""
    faults_of(hv).delay(operation, seconds, times=times, vm_id=_vm_id(vm))


def expire_session(hv: Hypervisor, times: int = 1, *, relogin: bool = True) -> None:
    """Expire the session of *hv*: the backend must log in again (or, without *relogin*, fail with ConnectionLost)."""
    faults_of(hv).expire_session(times, relogin=relogin)


def agent_absent(hv: Hypervisor, vm: VM | str | None = None, absent: bool = True) -> None:
    """Make the guest agent of *vm* (``None``: of every VM) absent, or present again."""
    faults_of(hv).agent_absent(_vm_id(vm), absent)


def ignore_shutdown(hv: Hypervisor, vm: VM | str | None = None, ignore: bool = True) -> None:
    """Make the guest of *vm* (``None``: every guest) ignore graceful shutdown and reboot requests."""
    faults_of(hv).ignore_shutdown(_vm_id(vm), ignore)


def crash_vm(hv: Hypervisor, vm: VM | str) -> None:
    """Crash a running or paused VM now: it becomes ``CRASHED``."""
    vm_id = _vm_id(vm)
    assert vm_id is not None
    faults_of(hv).crash(vm_id)


def clear_faults(hv: Hypervisor) -> None:
    """Disarm every fault of *hv* (crashed VMs stay crashed)."""
    faults_of(hv).clear()


def fault_stats(hv: Hypervisor) -> MockStats:
    """The call counters of a mock connection: ``calls["start"]``, ``relogins``, ``injected_failures``…"""
    faults_of(hv)
    stats: MockStats = getattr(hv.backend, "stats")  # noqa: B009 - only mock backends have it
    return stats


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def mock_hypervisor() -> Iterator[Hypervisor]:
    """A fresh in-memory mock hypervisor with a manual clock (``mock://?clock=manual``), closed after the test."""
    with virtabstract.connect(MOCK_URL) as hv:
        yield hv


@pytest.fixture
def mock_clock(mock_hypervisor: Hypervisor) -> ManualClock:
    """The manual clock of :func:`mock_hypervisor`: waits and delays advance it instead of sleeping."""
    clock = mock_hypervisor.backend.clock
    if not isinstance(clock, ManualClock):  # pragma: no cover - the URL asks for one
        raise UsageError(f"{mock_hypervisor.url} does not run on a manual clock")
    return clock


@pytest.fixture
def mock_faults(mock_hypervisor: Hypervisor) -> Iterator[FaultPlan]:
    """The fault plan of :func:`mock_hypervisor` (``hv.backend.faults``), cleared after the test."""
    plan = faults_of(mock_hypervisor)
    try:
        yield plan
    finally:
        plan.clear()


@pytest.fixture
def vm_factory(mock_hypervisor: Hypervisor) -> Iterator[VMFactory]:
    """Creates VMs with unique names and deletes them after the test, even when it fails.

    ``vm_factory(spec=None, *, hypervisor=None, start=False, **fields)``: without
    ``hypervisor=`` the VM is created on :func:`mock_hypervisor`. ``vm_factory.spec(**fields)``
    builds a spec with a fresh name; ``vm_factory.track(vm)`` adds a VM made elsewhere
    (a clone) to the clean-up. Clean-up runs before the connections it uses are closed.
    """
    factory = VMFactory(mock_hypervisor)
    try:
        yield factory
    finally:
        factory.cleanup()


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``virtabstract_backend`` marker (harmless under ``--strict-markers``)."""
    config.addinivalue_line("markers", "virtabstract_backend(name): the test exercises the named virtabstract backend")
