"""Workload 3: bulk power-on of 100 VMs on vcsim, without and with a 200 ms delay on ``PowerOnVM_Task``.

Every run starts from 100 powered-off VMs (all are powered off again, untimed, after each run).

* ``raw sequential WaitForTask`` — ``PowerOnVM_Task`` then ``pyVim.task.WaitForTask``, one VM after another;
* ``raw issue all + batched poll`` — issue every task, then read all pending tasks' ``info.state`` in one
  ``RetrieveContents`` every 50 ms (the research's best pattern, p4);
* ``raw issue all + WaitForTasks`` — issue every task, then ``pyVim.task.WaitForTasks``;
* ``raw 16 threads`` — a pool of 16 threads, each issuing one task and polling it;
* ``virtabstract start_many`` — ``hv.start_many(vms)``.

vcsim 0.24 runs a task to completion *inside* the ``PowerOnVM_Task`` call, so its method delay makes the
call itself slow (a synchronous API) rather than the task: only concurrent issuing can overlap the delays.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._common import Approach, Check, Config, HttpCounter, Skip, WorkloadResult, interleaved, require_backend
from .fleets import smart_connect, va_url, vcsim_fleet

SPEEDUP_TARGET = 5.0
RATIO_TARGET = 1.3
DELAY_MS = 200

VA = "virtabstract start_many"
SEQ = "raw sequential WaitForTask"
BATCH = "raw issue all + batched poll"
WAIT_TASKS = "raw issue all + WaitForTasks"
THREADS = "raw 16 threads"


class RawFleet:
    """Raw pyVmomi helpers bound to one session (content fetched once)."""

    def __init__(self, si: Any) -> None:
        self.si = si
        self.content = si.RetrieveContent()
        self.pc = self.content.propertyCollector

    def vms(self) -> list[Any]:
        from pyVmomi import vim

        view = self.content.viewManager.CreateContainerView(self.content.rootFolder, [vim.VirtualMachine], True)
        try:
            return list(view.view)
        finally:
            view.DestroyView()

    def states(self, tasks: list[Any]) -> dict[str, str]:
        """Every task's ``info.state`` in one round trip."""
        from pyVmomi import vim, vmodl

        q = vmodl.query.PropertyCollector
        spec = q.FilterSpec(
            objectSet=[q.ObjectSpec(obj=t, skip=False) for t in tasks],
            propSet=[q.PropertySpec(type=vim.Task, pathSet=["info.state"], all=False)],
        )
        return {str(o.obj._moId): str(o.propSet[0].val) for o in self.pc.RetrieveContents([spec])}

    def wait_batched(self, tasks: list[Any], interval: float = 0.05) -> None:
        pending = list(tasks)
        while pending:
            states = self.states(pending)
            pending = [t for t in pending if states.get(str(t._moId)) not in ("success", "error")]
            if pending:
                time.sleep(interval)

    def power_on_sequential(self, vms: list[Any]) -> None:
        from pyVim.task import WaitForTask

        for vm in vms:
            WaitForTask(vm.PowerOnVM_Task())

    def power_on_batched(self, vms: list[Any]) -> None:
        self.wait_batched([vm.PowerOnVM_Task() for vm in vms])

    def power_on_wait_tasks(self, vms: list[Any]) -> None:
        from pyVim.task import WaitForTasks

        WaitForTasks([vm.PowerOnVM_Task() for vm in vms], si=self.si)

    def power_on_threads(self, vms: list[Any], workers: int = 16) -> None:
        def one(vm: Any) -> None:
            self.wait_batched([vm.PowerOnVM_Task()])

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, vms))

    def all_off(self, vms: list[Any]) -> None:
        """Power off whatever is on (untimed reset between runs)."""
        from pyVmomi import vim, vmodl

        q = vmodl.query.PropertyCollector
        spec = q.FilterSpec(
            objectSet=[q.ObjectSpec(obj=vm, skip=False) for vm in vms],
            propSet=[q.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"], all=False)],
        )
        on = [o.obj for o in self.pc.RetrieveContents([spec]) if str(o.propSet[0].val) == "poweredOn"]
        self.wait_batched([vm.PowerOffVM_Task() for vm in on])


def run(config: Config) -> WorkloadResult:
    """Workload 3: 100 VMs (20 with --quick), method delay 0 and 200 ms."""
    result = WorkloadResult("bulk power-on")
    try:
        require_backend("esxi")
    except Skip as exc:
        result.skipped.append(f"vcsim: {exc}")
        return result
    import virtabstract

    n = 20 if config.quick else 100
    counter = HttpCounter()
    for delay in (0, DELAY_MS):
        scenario = f"vcsim {n} VMs, PowerOnVM_Task delay {delay} ms"
        rounds = config.reps(5 if delay == 0 else 2, 1)
        config.log(f"power: {scenario}")
        try:
            with vcsim_fleet(n, tls=False, autostart=False, method_delays_ms={"PowerOnVM_Task": delay}) as sim:
                si = smart_connect(sim)
                raw = RawFleet(si)
                vms = raw.vms()
                if len(vms) != n:
                    raise Skip(f"vcsim has {len(vms)} VMs, expected {n}")
                with virtabstract.connect(va_url(sim), username=sim.username, password=sim.password) as hv:
                    approaches = _approaches(hv, raw, vms, delay, counter)
                    raw.all_off(vms)
                    result.rows += interleaved(  # one power-on per round: each needs 100 VMs powered off first
                        approaches, rounds, workload="bulk power-on", scenario=scenario, n=n, config=config, best_of=1
                    )
        except Skip as exc:
            result.skipped.append(f"{scenario}: {exc}")
            continue
        va = result.find(scenario, VA)
        seq = result.find(scenario, SEQ)
        raws = [r for r in result.rows if r.scenario == scenario and r.approach in (BATCH, WAIT_TASKS, THREADS)]
        if va is None or seq is None or not raws:
            continue
        best = min(raws, key=lambda r: r.median)
        speedup = seq.median / va.median
        ratio = va.median / best.median
        va.note = f"{speedup:.1f}× faster than sequential; {ratio:.2f}× {best.approach}"
        result.checks.append(
            Check(
                f"power: {scenario} speed-up vs sequential",
                f"{speedup:.1f}×",
                f"≥ {SPEEDUP_TARGET:g}×",
                speedup >= SPEEDUP_TARGET,
            )
        )
        result.checks.append(
            Check(
                f"power: {scenario} vs best raw ({best.approach})",
                f"{ratio:.2f}×",
                f"≤ {RATIO_TARGET}×",
                ratio <= RATIO_TARGET,
            )
        )
    return result


def _approaches(hv: Any, raw: RawFleet, vms: list[Any], delay: int, counter: HttpCounter) -> list[Approach]:
    va_vms = hv.vms.list()

    def reset() -> None:
        raw.all_off(vms)

    approaches = [
        Approach(VA, lambda: _check_all(hv.start_many(va_vms)), cleanup=reset, count=counter, ref=SEQ),
        Approach(SEQ, lambda: raw.power_on_sequential(vms), cleanup=reset, count=counter),
        Approach(BATCH, lambda: raw.power_on_batched(vms), cleanup=reset, count=counter),
        Approach(THREADS, lambda: raw.power_on_threads(vms), cleanup=reset, count=counter),
    ]
    if delay == 0:
        approaches.append(Approach(WAIT_TASKS, lambda: raw.power_on_wait_tasks(vms), cleanup=reset, count=counter))
    return approaches


def _check_all(outcome: dict[str, BaseException | None]) -> None:
    errors = [e for e in outcome.values() if e is not None]
    if errors:
        raise RuntimeError(f"start_many: {len(errors)} VM(s) failed, first: {errors[0]!r}")
