"""Waiting for vSphere tasks: one look, then one PropertyCollector filter, ``WaitForUpdatesEx``, no sleep-polling.

:func:`wait_for_tasks` waits for any number of tasks at once (bulk power-on issues N
``PowerOnVM_Task`` calls, then waits here for all of them). It first reads every
task's state in **one** ``RetrievePropertiesEx`` (a task that finished while its call
returned — vcsim's always, many real ones — costs that single round trip). For the
tasks still running it adds one filter to a private PropertyCollector taken from the
session's :class:`CollectorPool` (created once, lazily, reused by later waits;
concurrent waits from several threads each get their own collector, so they never
share a filter or an update version) and blocks in ``WaitForUpdatesEx`` with
``maxWaitSeconds`` until the deadline. Only ``info.state``, ``info.error``,
``info.result`` and ``info.progress`` are read (never ``info.entity``: vcsim 0.24
returns a Snapshot there for snapshot tasks, which pyVmomi 9 refuses to deserialise).

The first look is read by :func:`~virtabstract_esxi._lean.read_objects` (ElementTree, no
pyVmomi objects): state and progress as text, ``info.result`` as a MoRef proxy. A failed
task's ``info.error`` (a fault object), a result that is not a MoRef, or any other answer the
lean reader does not decode is read by pyVmomi from the same bytes (no second request).

A failed task's ``info.error`` (a ``vim.fault`` object) is *returned* per task;
:func:`wait_for_task` raises it, so it passes through
:func:`~virtabstract_esxi._faults.map_vim_faults` like any SOAP fault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from virtabstract import Clock, SystemClock
from virtabstract.errors import BackendError, OperationTimeout

from ._lean import Read, read_objects
from ._sdk import sdk, vim_type
from ._session import Session

__all__ = [
    "CollectorPool",
    "TaskOutcome",
    "collector_pool",
    "wait_for_task",
    "wait_for_task_and_read",
    "wait_for_tasks",
]

log = logging.getLogger("virtabstract.esxi")

TASK_PATHS = ("info.state", "info.error", "info.result", "info.progress")
MAX_WAIT_SLICE = 60
MAX_POOLED_COLLECTORS = 4
"""Idle private collectors kept per session for later waits."""
"""Longest single ``WaitForUpdatesEx`` call (seconds), so that a dead connection is noticed."""

ExtraRead = tuple[Any, str, Sequence[str]]
"""``(managed object, vim type name, property paths)`` read together with the tasks' first look."""

ProgressCallback = Callable[[str, int], None]
"""``callback(task_id, percent)``, called when a task reports progress."""


@dataclass
class TaskOutcome:
    """The final (or last seen) state of one task."""

    task_id: str
    state: str = "queued"
    error: Any = None
    result: Any = None
    progress: int | None = None

    @property
    def done(self) -> bool:
        """True once the task succeeded or failed."""
        return self.state in ("success", "error")


def _apply_change(outcome: TaskOutcome, name: str, value: Any) -> None:
    if name == "info.state":
        outcome.state = str(value) if value is not None else outcome.state
    elif name == "info.error":
        outcome.error = value
    elif name == "info.result":
        outcome.result = value
    elif name == "info.progress" and value is not None:
        outcome.progress = int(value)
    elif name == "info" and value is not None:  # the whole info object (servers that ignore pathSet granularity)
        outcome.state = str(getattr(value, "state", outcome.state))
        outcome.error = getattr(value, "error", None)
        outcome.result = getattr(value, "result", None)


def _apply_update(
    outcomes: dict[str, TaskOutcome], obj_id: str, changes: Iterable[tuple[str, Any]], progress: ProgressCallback | None
) -> None:
    outcome = outcomes.get(obj_id)
    if outcome is None:
        return
    before = outcome.progress
    for name, value in changes:
        _apply_change(outcome, name, value)
    if progress is not None and outcome.progress is not None and outcome.progress != before:
        progress(outcome.task_id, outcome.progress)


def _task_filter_spec(tasks: Sequence[Any]) -> Any:
    q = sdk().vmodl.query.PropertyCollector
    return q.FilterSpec(
        objectSet=[q.ObjectSpec(obj=t, skip=False) for t in tasks],
        propSet=[q.PropertySpec(type=vim_type("Task"), pathSet=list(TASK_PATHS), all=False)],
    )


def _read_once(
    session: Session,
    tasks: Sequence[Any],
    outcomes: dict[str, TaskOutcome],
    progress: ProgressCallback | None,
    extra: ExtraRead | None = None,
) -> dict[str, Any]:
    """One ``RetrievePropertiesEx`` of every task's state (most tasks are finished by the first look).

    *extra* ``(object, vim type, paths)`` is read in the same call; its values are returned.
    The answer is decoded by :mod:`._lean` when it can; a failed task's ``info.error`` fault, a
    result that is not a MoRef … are read by pyVmomi from the same answer.
    """
    extra_id = str(extra[0]._moId) if extra is not None else None
    found = _read_once_lean(session, tasks, extra)
    if found is None:
        found = _read_once_sdk(session, tasks, extra)
    values: dict[str, Any] = {}
    for obj_id, changes in found:
        if obj_id == extra_id and obj_id not in outcomes:
            values.update(changes)
            continue
        _apply_update(outcomes, obj_id, changes, progress)
    return values


Changes = list[tuple[str, list[tuple[str, Any]]]]
"""``(moid, [(path, value), ...])`` per object of a read."""


def _read_once_lean(session: Session, tasks: Sequence[Any], extra: ExtraRead | None) -> Changes | None:
    # info.result keeps its type: a MoRef is decoded leanly, a scalar (an int, a boolean) or a data
    # object is pyVmomi's to read, as a failed task's info.error is (from the same answer).
    reads = [Read("Task", tuple(tasks), TASK_PATHS, typed=("info.result",))]
    if extra is not None:
        reads.append(Read(extra[1], (extra[0],), tuple(extra[2])))
    found = read_objects(getattr(session, "stub", None), session.content.propertyCollector, reads)
    if found is None:
        return None
    return [(obj_id, list(props.items())) for obj_id, props in found]


def _read_once_sdk(session: Session, tasks: Sequence[Any], extra: ExtraRead | None) -> Changes:
    q = sdk().vmodl.query.PropertyCollector
    pc = session.content.propertyCollector
    specs = [_task_filter_spec(tasks)]
    if extra is not None:
        obj, type_name, paths = extra
        specs.append(
            q.FilterSpec(
                objectSet=[q.ObjectSpec(obj=obj, skip=False)],
                propSet=[q.PropertySpec(type=vim_type(type_name), pathSet=list(paths), all=False)],
            )
        )
    out: Changes = []
    result = pc.RetrievePropertiesEx(specs, q.RetrieveOptions())
    while result is not None:
        for content in result.objects or ():
            out.append((str(content.obj._moId), [(str(p.name), p.val) for p in content.propSet or ()]))
        token = getattr(result, "token", None)
        if not token:
            break
        result = pc.ContinueRetrievePropertiesEx(token)
    return out


def _wait_updates(
    session: Session,
    tasks: Sequence[Any],
    outcomes: dict[str, TaskOutcome],
    deadline: float | None,
    timeout: float | None,
    progress: ProgressCallback | None,
    clock: Clock,
    what: str,
) -> None:
    """Block in ``WaitForUpdatesEx`` on one filter over the still-running tasks (a pooled collector)."""
    q = sdk().vmodl.query.PropertyCollector
    pending = [t for t in tasks if not outcomes[str(t._moId)].done]
    pool = collector_pool(session)
    collector = pool.checkout()
    property_filter = None
    reusable = True
    try:
        property_filter = collector.CreateFilter(_task_filter_spec(pending), True)
        version = ""
        while not all(o.done for o in outcomes.values()):
            if deadline is None:
                slice_s = MAX_WAIT_SLICE
            else:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    late = [o.task_id for o in outcomes.values() if not o.done]
                    raise OperationTimeout(
                        f"{what}: {len(late)} task(s) still running after {timeout}s ({', '.join(late)})",
                        timeout=timeout,
                    )
                slice_s = max(1, min(MAX_WAIT_SLICE, int(remaining + 0.999)))
            update = collector.WaitForUpdatesEx(version, q.WaitOptions(maxWaitSeconds=slice_s))
            if update is None:
                continue
            version = update.version
            for filter_set in update.filterSet or ():
                for obj_update in filter_set.objectSet or ():
                    changes = [(str(c.name), getattr(c, "val", None)) for c in obj_update.changeSet or ()]
                    _apply_update(outcomes, str(obj_update.obj._moId), changes, progress)
    finally:
        if property_filter is not None:
            try:
                property_filter.DestroyPropertyFilter()
            except Exception as exc:  # noqa: BLE001 - a broken collector is dropped below
                log.debug("DestroyPropertyFilter failed: %s", type(exc).__name__)
                reusable = False
        pool.checkin(collector, reusable=reusable)


def _wait_once(
    session: Session,
    tasks: Sequence[Any],
    timeout: float | None,
    progress: ProgressCallback | None,
    clock: Clock,
    what: str,
    extra: ExtraRead | None = None,
) -> tuple[dict[str, TaskOutcome], dict[str, Any] | None]:
    outcomes = {str(t._moId): TaskOutcome(str(t._moId)) for t in tasks}
    deadline = None if timeout is None else clock.monotonic() + timeout
    values: dict[str, Any] | None = _read_once(session, tasks, outcomes, progress, extra)
    if not all(o.done for o in outcomes.values()):
        values = None  # read before the tasks finished: stale
        _wait_updates(session, tasks, outcomes, deadline, timeout, progress, clock, what)
    if progress is not None:
        for outcome in outcomes.values():
            if outcome.state == "success" and outcome.progress != 100:
                progress(outcome.task_id, 100)
    return outcomes, values


class CollectorPool:
    """Private PropertyCollectors of one session, reused across task waits.

    A waiter checks one out, adds its filter, waits, destroys its filter and checks the
    collector back in, so concurrent waits never share a filter or an update version, and a
    wait costs ``CreateFilter`` + ``WaitForUpdatesEx`` + ``DestroyPropertyFilter`` instead of
    also creating and destroying a collector. Collectors belong to a session: after a
    re-login (a new :attr:`Session.generation`) the pooled ones are forgotten.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._free: list[tuple[int, Any]] = []

    def checkout(self) -> Any:
        """A collector with no filter (created on first use)."""
        generation = self._session.generation
        with self._lock:
            while self._free:
                seen, collector = self._free.pop()
                if seen == generation:
                    return collector
        return self._session.content.propertyCollector.CreatePropertyCollector()

    def checkin(self, collector: Any, *, reusable: bool) -> None:
        """Give a collector back (its filter destroyed); a broken one is destroyed instead."""
        if reusable:
            with self._lock:
                if len(self._free) < MAX_POOLED_COLLECTORS:
                    self._free.append((self._session.generation, collector))
                    return
        try:
            collector.DestroyPropertyCollector()
        except Exception as exc:  # noqa: BLE001 - cleanup; the collector dies with the session anyway
            log.debug("DestroyPropertyCollector failed: %s", type(exc).__name__)

    def destroy(self) -> None:
        """Destroy the pooled collectors (best effort, at close)."""
        with self._lock:
            free, self._free = self._free, []
        for _, collector in free:
            try:
                collector.DestroyPropertyCollector()
            except Exception as exc:  # noqa: BLE001 - cleanup at close
                log.debug("DestroyPropertyCollector failed: %s", type(exc).__name__)


_pools_lock = threading.Lock()


def collector_pool(session: Session) -> CollectorPool:
    """The session's :class:`CollectorPool` (one per session object, created lazily)."""
    pool = getattr(session, "_task_collectors", None)
    if pool is None:
        with _pools_lock:
            pool = getattr(session, "_task_collectors", None)
            if pool is None:
                pool = CollectorPool(session)
                setattr(session, "_task_collectors", pool)  # noqa: B010 - also fits test doubles
    assert isinstance(pool, CollectorPool)
    return pool


def wait_for_tasks(
    session: Session,
    tasks: Sequence[Any],
    *,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    what: str = "waiting for vSphere tasks",
) -> dict[str, TaskOutcome]:
    """Wait until every task in *tasks* succeeded or failed; return the outcome per task id.

    :raises OperationTimeout: some task is still running after *timeout* seconds (the tasks
        keep running on the server).
    """
    if not tasks:
        return {}
    chosen = clock or SystemClock()
    # The whole wait is idempotent: after a re-login it starts over with a new collector.
    return session.call(lambda: _wait_once(session, tasks, timeout, progress, chosen, what))[0]


def wait_for_task(
    session: Session,
    task: Any,
    *,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    what: str = "waiting for a vSphere task",
) -> Any:
    """Wait for one task and return its ``info.result``; raise its ``info.error`` fault if it failed."""
    return wait_for_task_and_read(session, task, None, timeout=timeout, progress=progress, clock=clock, what=what)[0]


def wait_for_task_and_read(
    session: Session,
    task: Any,
    extra: ExtraRead | None,
    *,
    timeout: float | None = None,
    progress: ProgressCallback | None = None,
    clock: Clock | None = None,
    what: str = "waiting for a vSphere task",
) -> tuple[Any, dict[str, Any] | None]:
    """Like :func:`wait_for_task`, and read *extra* ``(object, vim type, paths)`` in the same first look.

    Returns ``(info.result, values)``; *values* is ``None`` when the task was still running at
    the first look (the read would predate its effect: the caller reads again).
    """
    chosen = clock or SystemClock()
    outcomes, values = session.call(lambda: _wait_once(session, [task], timeout, progress, chosen, what, extra))
    outcome = outcomes[str(task._moId)]
    if outcome.state == "error":
        if isinstance(outcome.error, BaseException):
            raise outcome.error
        raise BackendError(f"{what}: the task failed without an error object")
    return outcome.result, values
