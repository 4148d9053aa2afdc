"""Waiting for vSphere tasks: one PropertyCollector filter, ``WaitForUpdatesEx``, no sleep-polling.

:func:`wait_for_tasks` waits for any number of tasks at once (bulk power-on issues N
``PowerOnVM_Task`` calls, then waits here for all of them). It creates a private
PropertyCollector (``CreatePropertyCollector``), so concurrent waits from several
threads never share a filter, watches only ``info.state``, ``info.error``,
``info.result`` and ``info.progress`` (never ``info.entity``: vcsim 0.24 returns a
Snapshot there for snapshot tasks, which pyVmomi 9 refuses to deserialise), and
blocks in ``WaitForUpdatesEx`` with ``maxWaitSeconds`` until the deadline.

A failed task's ``info.error`` (a ``vim.fault`` object) is *returned* per task;
:func:`wait_for_task` raises it, so it passes through
:func:`~virtabstract_esxi._faults.map_vim_faults` like any SOAP fault.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from virtabstract import Clock, SystemClock
from virtabstract.errors import BackendError, OperationTimeout

from ._sdk import sdk, vim_type
from ._session import Session

__all__ = ["TaskOutcome", "wait_for_task", "wait_for_tasks"]

log = logging.getLogger("virtabstract.esxi")

TASK_PATHS = ("info.state", "info.error", "info.result", "info.progress")
MAX_WAIT_SLICE = 60
"""Longest single ``WaitForUpdatesEx`` call (seconds), so that a dead connection is noticed."""

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


def _wait_once(
    session: Session,
    tasks: Sequence[Any],
    timeout: float | None,
    progress: ProgressCallback | None,
    clock: Clock,
    what: str,
) -> dict[str, TaskOutcome]:
    vmodl = sdk().vmodl
    q = vmodl.query.PropertyCollector
    outcomes = {str(t._moId): TaskOutcome(str(t._moId)) for t in tasks}
    deadline = None if timeout is None else clock.monotonic() + timeout
    collector = session.content.propertyCollector.CreatePropertyCollector()
    try:
        spec = q.FilterSpec(
            objectSet=[q.ObjectSpec(obj=t, skip=False) for t in tasks],
            propSet=[q.PropertySpec(type=vim_type("Task"), pathSet=list(TASK_PATHS), all=False)],
        )
        collector.CreateFilter(spec, True)
        version = ""
        while not all(o.done for o in outcomes.values()):
            if deadline is None:
                slice_s = MAX_WAIT_SLICE
            else:
                remaining = deadline - clock.monotonic()
                if remaining <= 0:
                    pending = [o.task_id for o in outcomes.values() if not o.done]
                    raise OperationTimeout(
                        f"{what}: {len(pending)} task(s) still running after {timeout}s ({', '.join(pending)})",
                        timeout=timeout,
                    )
                slice_s = max(1, min(MAX_WAIT_SLICE, int(remaining + 0.999)))
            update = collector.WaitForUpdatesEx(version, q.WaitOptions(maxWaitSeconds=slice_s))
            if update is None:
                continue
            version = update.version
            for filter_set in update.filterSet or ():
                for obj_update in filter_set.objectSet or ():
                    outcome = outcomes.get(str(obj_update.obj._moId))
                    if outcome is None:
                        continue
                    before = outcome.progress
                    for change in obj_update.changeSet or ():
                        _apply_change(outcome, str(change.name), getattr(change, "val", None))
                    if progress is not None and outcome.progress is not None and outcome.progress != before:
                        progress(outcome.task_id, outcome.progress)
    finally:
        try:
            collector.DestroyPropertyCollector()
        except Exception as exc:  # noqa: BLE001 - cleanup; the collector dies with the session anyway
            log.debug("DestroyPropertyCollector failed: %s", type(exc).__name__)
    if progress is not None:
        for outcome in outcomes.values():
            if outcome.state == "success" and outcome.progress != 100:
                progress(outcome.task_id, 100)
    return outcomes


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
    return session.call(lambda: _wait_once(session, tasks, timeout, progress, chosen, what))


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
    outcome = wait_for_tasks(session, [task], timeout=timeout, progress=progress, clock=clock, what=what)[
        str(task._moId)
    ]
    if outcome.state == "error":
        if isinstance(outcome.error, BaseException):
            raise outcome.error
        raise BackendError(f"{what}: the task failed without an error object")
    return outcome.result
