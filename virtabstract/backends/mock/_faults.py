"""Fault injection for the mock backend: failures, latency, session expiry and guest faults.

Every :class:`~virtabstract.backends.mock.MockBackend` has a :class:`FaultPlan`
(``backend.faults``) and :class:`MockStats` (``backend.stats``). Faults belong to
the connection: another connection to the same ``mock:///lab.json`` file does not
see them (except :meth:`FaultPlan.crash` and :meth:`FaultPlan.force_state`,
which change the stored VM). Operation names are those of :data:`OPERATIONS`
(``"start"``, ``"create"``, ``"guest_exec"``…) or ``"*"`` for every operation::

    hv = virtabstract.connect("mock://?clock=manual")
    faults = hv.backend.faults
    faults.fail("start", times=2, error=ConnectionLost)   # the next two starts fail
    faults.delay("create", 5.0)                           # creating takes 5 s (of the backend's clock)
    faults.expire_session()                               # next call re-logs in: stats.relogins == 1
    faults.agent_absent(vm.id)                            # no guest agent in that VM
    faults.ignore_shutdown()                              # every guest ignores ACPI shutdown/reboot
    faults.crash(vm.id)                                   # the VM is CRASHED now
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ...errors import (
    AmbiguousName,
    ConnectionLost,
    GuestCommandFailed,
    InvalidState,
    OperationTimeout,
    OperationVetoed,
    SpecError,
    UnsupportedOperation,
    UsageError,
)

if TYPE_CHECKING:
    from ._backend import MockBackend

__all__ = ["OPERATIONS", "FaultPlan", "MockStats"]

OPERATIONS: frozenset[str] = frozenset(
    {
        "host_info",
        "list_vms",
        "get_vm",
        "find_vms",
        "get_state",
        "list_networks",
        "list_storage",
        "create",
        "delete",
        "unregister",
        "start",
        "shutdown",
        "power_off",
        "reboot",
        "reset",
        "pause",
        "resume",
        "suspend",
        "autostart",
        "plan_reconfigure",
        "reconfigure",
        "get_resources",
        "set_resources",
        "add_disk",
        "remove_disk",
        "resize_disk",
        "add_nic",
        "remove_nic",
        "update_nic",
        "list_snapshots",
        "snapshot_create",
        "snapshot_revert",
        "snapshot_delete",
        "clone",
        "console",
        "guest_info",
        "guest_ip_addresses",
        "guest_exec",
        "guest_read_file",
        "guest_write_file",
        "events",
    }
)
"""Operation names the mock counts and injects faults into (the facade's operation names)."""

ErrorFactory = type[BaseException] | BaseException


@dataclass
class MockStats:
    """Counters a test can assert on (per connection)."""

    calls: Counter[str] = field(default_factory=Counter)
    """How many times each operation was called (attempts, including injected failures)."""
    relogins: int = 0
    """How many times the connection transparently logged in again after its session expired."""
    injected_failures: int = 0
    """How many calls failed because of :meth:`FaultPlan.fail`."""
    injected_delay_s: float = 0.0
    """Total latency added by :meth:`FaultPlan.delay` (seconds of the backend's clock)."""

    def reset(self) -> None:
        """Zero every counter."""
        self.calls.clear()
        self.relogins = 0
        self.injected_failures = 0
        self.injected_delay_s = 0.0


@dataclass
class _Rule:
    operation: str
    remaining: int | None
    vm_id: str | None
    error: ErrorFactory | None = None
    seconds: float = 0.0
    message: str = ""

    def matches(self, operation: str, vm_id: str | None) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.operation not in ("*", operation):
            return False
        return self.vm_id is None or self.vm_id == vm_id


def _check_operation(operation: str) -> str:
    if operation != "*" and operation not in OPERATIONS:
        raise UsageError(f"unknown mock operation {operation!r}; known: {', '.join(sorted(OPERATIONS))} or '*'")
    return operation


def _check_times(times: int | None) -> int | None:
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 1):
        raise UsageError(f"times must be a positive integer or None (forever), got {times!r}")
    return times


def make_error(error: ErrorFactory, operation: str, message: str = "") -> BaseException:
    """Build the exception a rule raises (classes with special constructors are handled)."""
    if isinstance(error, BaseException):
        return error
    text = message or f"injected fault: {operation} failed"
    if issubclass(error, UnsupportedOperation):
        return error("mock", operation, text)
    if issubclass(error, InvalidState):
        return error(text, state=None, operation=operation)
    if issubclass(error, OperationTimeout):
        return error(text, timeout=None)
    if issubclass(error, OperationVetoed):
        return error(operation, text)
    if issubclass(error, SpecError):
        return error(operation, text)
    if issubclass(error, AmbiguousName):
        return error("object", operation, [])
    if issubclass(error, GuestCommandFailed):
        return error([operation], 1, text)
    return error(text)


class FaultPlan:
    """The faults armed on one mock connection (``backend.faults``). Thread-safe."""

    def __init__(self, backend: MockBackend) -> None:
        self._backend = backend
        self._lock = threading.Lock()
        self._failures: list[_Rule] = []
        self._delays: list[_Rule] = []
        self._expired = 0
        self._relogin_ok = True
        self._agent_absent: set[str] = set()
        self._agent_absent_all = False
        self._ignore_shutdown: set[str] = set()
        self._ignore_shutdown_all = False

    # -- failures and latency -------------------------------------------------------

    def fail(
        self,
        operation: str,
        *,
        times: int | None = 1,
        error: ErrorFactory = ConnectionLost,
        vm_id: str | None = None,
        message: str = "",
    ) -> None:
        """Make the next *times* calls of *operation* (``"*"``: any) raise *error*, before any effect.

        :param error: an exception class from :mod:`virtabstract.errors` (or any instance to raise as is).
        :param times: how many calls fail; ``None`` fails every call until :meth:`clear`.
        :param vm_id: only calls about this VM.
        """
        _check_operation(operation)
        _check_times(times)
        if not isinstance(error, BaseException) and not (isinstance(error, type) and issubclass(error, BaseException)):
            raise UsageError(f"error must be an exception class or instance, got {error!r}")
        make_error(error, operation, message)  # fail now, not at call time, when it cannot be built
        with self._lock:
            self._failures.append(_Rule(operation, times, vm_id, error=error, message=message))

    def delay(self, operation: str, seconds: float, *, times: int | None = None, vm_id: str | None = None) -> None:
        """Add *seconds* of latency (slept on the backend's clock) to calls of *operation*.

        :param times: how many calls are slowed; ``None`` (default) slows every call until :meth:`clear`.
        """
        _check_operation(operation)
        _check_times(times)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
            raise UsageError(f"seconds must be a non-negative number, got {seconds!r}")
        with self._lock:
            self._delays.append(_Rule(operation, times, vm_id, seconds=float(seconds)))

    def expire_session(self, times: int = 1, *, relogin: bool = True) -> None:
        """Expire the session: the next *times* calls find it expired.

        With *relogin* (default) the backend logs in again transparently and the call
        succeeds (``stats.relogins`` counts it), as real backends must do. Without, the
        call raises :class:`~virtabstract.errors.ConnectionLost`.
        """
        _check_times(times)
        with self._lock:
            self._expired += times
            self._relogin_ok = relogin

    # -- guest faults ------------------------------------------------------------------

    def agent_absent(self, vm_id: str | None = None, absent: bool = True) -> None:
        """Make the guest agent of *vm_id* (``None``: of every VM) absent, or present again."""
        with self._lock:
            if vm_id is None:
                self._agent_absent_all = absent
                if not absent:
                    self._agent_absent.clear()
            elif absent:
                self._agent_absent.add(vm_id)
            else:
                self._agent_absent.discard(vm_id)

    def ignore_shutdown(self, vm_id: str | None = None, ignore: bool = True) -> None:
        """Make the guest of *vm_id* (``None``: every guest) ignore ACPI shutdown and reboot requests."""
        with self._lock:
            if vm_id is None:
                self._ignore_shutdown_all = ignore
                if not ignore:
                    self._ignore_shutdown.clear()
            elif ignore:
                self._ignore_shutdown.add(vm_id)
            else:
                self._ignore_shutdown.discard(vm_id)

    def crash(self, vm_id: str) -> None:
        """Crash a running (or paused) VM now: it becomes ``CRASHED`` (native ``"crashed"``)."""
        self._backend._crash(vm_id)

    def force_state(self, vm_id: str, native_state: str) -> None:
        """Put a VM into any native state of the mock's table (e.g. ``"starting"``) to test odd states."""
        self._backend._force_state(vm_id, native_state)

    def clear(self) -> None:
        """Disarm every fault of this connection (crashed VMs stay crashed)."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._expired = 0
            self._relogin_ok = True
            self._agent_absent.clear()
            self._agent_absent_all = False
            self._ignore_shutdown.clear()
            self._ignore_shutdown_all = False

    # -- queries used by the backend -------------------------------------------------

    def is_agent_absent(self, vm_id: str) -> bool:
        """True when the guest agent of *vm_id* is made absent."""
        return self._agent_absent_all or vm_id in self._agent_absent

    def ignores_shutdown(self, vm_id: str) -> bool:
        """True when the guest of *vm_id* ignores ACPI requests."""
        return self._ignore_shutdown_all or vm_id in self._ignore_shutdown

    def before_call(self, operation: str, vm_id: str | None, sleep: Callable[[float], None]) -> None:
        """Apply session expiry, latency and failures for one call (outside the store lock)."""
        stats = self._backend.stats
        with self._lock:
            stats.calls[operation] += 1
            expired = self._expired > 0
            if expired:
                self._expired -= 1
            relogin_ok = self._relogin_ok
            delay = 0.0
            for rule in self._delays:
                if rule.matches(operation, vm_id):
                    delay += rule.seconds
                    if rule.remaining is not None:
                        rule.remaining -= 1
            failure: BaseException | None = None
            for rule in self._failures:
                if rule.matches(operation, vm_id):
                    assert rule.error is not None
                    failure = make_error(rule.error, operation, rule.message)
                    if rule.remaining is not None:
                        rule.remaining -= 1
                    stats.injected_failures += 1
                    break
            self._failures = [r for r in self._failures if r.remaining is None or r.remaining > 0]
            self._delays = [r for r in self._delays if r.remaining is None or r.remaining > 0]
        if expired:
            if not relogin_ok:
                raise ConnectionLost(f"the mock session expired during {operation} and logging in again failed")
            self._backend._relogin()
        if delay:
            stats.injected_delay_s += delay
            sleep(delay)
        if failure is not None:
            raise failure
