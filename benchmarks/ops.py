"""Workload 2: per-operation overhead (state query, start, stop, snapshot create) against the raw SDK call.

Each operation is timed call by call (``perf_counter`` around each), K calls per round, several rounds;
a round's sample is the median call. The subjects take turns cycle by cycle (virtabstract's start,
stop and snapshot, then raw's, then again), so a drift of the simulator's own cost hits both alike. Start and stop
alternate on the same VM, so both are measured from a legal state; snapshots are deleted (untimed)
after each create so that the tree does not grow.
virtabstract and the raw SDK act on *different* VMs of the same simulated host.

* libvirt test driver in process: the target is the *added* time (≤ 10 µs, hooks included: a
  no-op plugin implementing both operation hooks is registered on an isolated plugin manager);
* the same test driver inside libvirtd (``test+unix:///…``: every call one RPC) and vcsim: ≤ 1.2×.

Both libvirt scenarios run each round in a fresh process (:func:`measure_in_processes`: the added
microseconds depend on the process's memory layout, and libvirt's event loop, once started by an earlier
workload, slows every later socket connection); through libvirtd a control pair is then measured with the
loop running.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

from ._common import REPO, Check, Config, Row, Skip, WorkloadResult, require_backend, require_libvirtd, require_vcsim
from .fleets import PREFIX, smart_connect, test_node, va_url

ADDED_TARGET_US = 10.0
RATIO_TARGET = 1.2

VA = "virtabstract"
VA_HOOKS = "virtabstract + hooks"
RAW = "raw"


class _NoOpHooks:
    """A plugin implementing both operation hooks, doing nothing (measures the hook dispatch)."""

    def __init__(self) -> None:
        from virtabstract import hookimpl

        self.virtabstract_before_operation = hookimpl(self._before)
        self.virtabstract_after_operation = hookimpl(self._after)

    @staticmethod
    def _before(context: Any) -> None:
        return None

    @staticmethod
    def _after(context: Any, result: Any, error: Any) -> None:
        return None


def hooked_manager() -> Any:
    """An isolated plugin manager with the no-op operation hooks registered."""
    from virtabstract import PluginManager

    manager = PluginManager()
    plugin = _NoOpHooks()
    manager.register(plugin, name="bench-noop-hooks")
    manager.load()
    if not manager.has_operation_hooks():
        raise Skip("the no-op hook plugin was not picked up")
    return manager


Step = tuple[str, Callable[[], Any], Callable[[], Any] | None]
"""(operation, timed call, untimed follow-up)."""


def run_cycles(subjects: dict[str, list[Step]], order: list[str], k: int) -> dict[tuple[str, str], float]:
    """Run every subject's steps k times, the subjects taking turns cycle by cycle, in *order*.

    Call-by-call interleaving pairs the samples: a simulator whose own cost drifts over a round
    (libvirt's test driver: ±70 µs on a 250 µs start from one block of calls to the next) moves
    every subject alike, instead of whichever subject ran its block during the drift. Returns
    each (subject, operation)'s median call time.
    """
    times: dict[tuple[str, str], list[float]] = {(name, op): [] for name in order for op, _, _ in subjects[name]}
    gc.disable()
    try:
        for _ in range(k):
            for name in order:
                for op, call, after in subjects[name]:
                    start = time.perf_counter()
                    call()
                    times[(name, op)].append(time.perf_counter() - start)
                    if after is not None:
                        after()
    finally:
        gc.enable()
    return {key: statistics.median(values) for key, values in times.items()}


def measure(subjects: dict[str, list[Step]], k: int, rounds: int, *, scenario: str, config: Config) -> list[Row]:
    """Interleave the subjects (virtabstract, raw…) call by call, several rounds; one row per (subject, operation).

    A round's sample is each operation's median call; the order in which the subjects take turns
    rotates each round.
    """
    names = list(subjects)
    run_cycles(subjects, names, max(1, k // 10))  # warm-up
    samples: dict[tuple[str, str], list[float]] = {}
    for index in range(rounds):
        order = names[index % len(names) :] + names[: index % len(names)]
        for key, value in run_cycles(subjects, order, k).items():
            samples.setdefault(key, []).append(value)
        config.log(f"  ops {scenario}: round {index + 1}/{rounds}")
    return [
        Row("per-operation", f"{scenario}: {op}", name, None, values, ref=None if name == RAW else RAW)
        for (name, op), values in samples.items()
    ]


LOOP = " (loop running)"
"""Suffix of the libvirtd control rows measured on connections opened after libvirt's event loop started."""


def measure_in_processes(
    uri: str, k: int, rounds: int, *, scenario: str, config: Config, hooks: bool, loop_control: bool = False
) -> list[Row]:
    """:func:`measure` for libvirt, each round in a fresh Python process.

    * In process, the added microseconds are steady from round to round within one process, but differ
      from one process to the next by up to 10 µs on the same code (snapshot create: +10 in one process,
      +22 in another): where the interpreter's objects land in memory, and the hash seed, change how the
      Python path fares against the caches the driver's C code has just churned. One process is one
      draw of that; a round per process samples it.
    * Through libvirtd, libvirt's event loop is process-wide and cannot be stopped: once an earlier
      workload has listed VMs (which starts it), every socket connection opened afterwards is watched
      by it and each RPC costs more, raw or not. A fresh process measures what a script doing only
      these calls gets; *loop_control* then starts the loop in the same process, opens both
      connections again and measures the pair once more (rows suffixed :data:`LOOP`).
    """
    samples: dict[tuple[str, str], list[float]] = {}
    env = {**os.environ, "PYTHONHASHSEED": "random"}
    for index in range(rounds):
        code = f"from benchmarks.ops import one_round; one_round({uri!r}, {k}, {index}, {hooks}, {loop_control})"
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"per-operation round {index + 1} failed: {done.stderr.strip()[-2000:]}")
        for name, op, value in json.loads(done.stdout.strip().splitlines()[-1]):
            samples.setdefault((name, op), []).append(value)
        config.log(f"  ops {scenario}: round {index + 1}/{rounds} (own process)")
    rows = []
    for (name, op), values in samples.items():
        ref = RAW + LOOP if name.endswith(LOOP) else RAW
        rows.append(Row("per-operation", f"{scenario}: {op}", name, None, values, ref=None if name == ref else ref))
    return rows


def one_round(uri: str, k: int, index: int, hooks: bool, loop_control: bool = False) -> None:
    """One round (warm-up, then *k* cycles), printed as JSON: the child of :func:`measure_in_processes`."""
    medians: dict[tuple[str, str], float] = {}
    phases = [""] + ([LOOP] if loop_control else [])
    for suffix in phases:
        if suffix:
            from virtabstract_kvm._events import ensure_event_loop

            ensure_event_loop()  # as a listing does; connections opened from now on are watched by the loop
        with contextlib.ExitStack() as stack:
            subjects = libvirt_subjects(uri, stack, hooks=hooks)
            names = list(subjects)
            run_cycles(subjects, names, max(1, k // 10))
            order = names[index % len(names) :] + names[: index % len(names)]
            for (name, op), value in run_cycles(subjects, order, k).items():
                medians[(name + suffix, op)] = value
    print(json.dumps([[name, op, value] for (name, op), value in medians.items()]))


# -- libvirt ----------------------------------------------------------------------------------------------


def _snapshot_xml(index: int) -> str:
    return f"<domainsnapshot><name>bench-{index}</name></domainsnapshot>"


def libvirt_subjects(uri: str, stack: contextlib.ExitStack, *, hooks: bool) -> dict[str, list[Step]]:
    """virtabstract (and with hooks) and raw libvirt, each on its own test-driver domain."""
    import libvirt

    import virtabstract

    conn = libvirt.open(uri)
    stack.callback(conn.close)
    names = sorted(
        d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE) if d.name().startswith(PREFIX)
    )
    if len(names) < 3:
        raise Skip(f"{uri} has fewer than 3 stopped benchmark domains")
    subjects: dict[str, list[Step]] = {}

    def va_steps(hv: Any, name: str) -> list[Step]:
        vm = hv.vms.get(name)
        counter = iter(range(10**9))

        def snap() -> None:
            snapshot = vm.snapshots.create(f"va-{next(counter)}")
            holder.append(snapshot)

        holder: list[Any] = []
        return [
            ("state query", lambda: vm.state, None),
            ("start", vm.start, None),
            ("stop", vm.power_off, None),
            ("snapshot create", snap, lambda: holder.pop().delete()),
        ]

    hv = stack.enter_context(virtabstract.connect(uri))
    subjects[VA] = va_steps(hv, names[0])
    if hooks:
        hv_hooks = stack.enter_context(virtabstract.connect(uri, plugin_manager=hooked_manager()))
        subjects[VA_HOOKS] = va_steps(hv_hooks, names[1])
    dom = conn.lookupByName(names[2])
    counter = iter(range(10**9))
    made: list[Any] = []
    subjects[RAW] = [
        ("state query", lambda: dom.state(0), None),
        ("start", dom.create, None),
        ("stop", dom.destroy, None),
        (
            "snapshot create",
            lambda: made.append(dom.snapshotCreateXML(_snapshot_xml(next(counter)), 0)),
            lambda: made.pop().delete(0),
        ),
    ]
    return subjects


# -- vSphere ----------------------------------------------------------------------------------------------


def _wait_raw(pc: Any, task: Any) -> Any:
    """The leanest raw wait: read ``info.state`` through the PropertyCollector until it is final."""
    from pyVmomi import vim, vmodl

    q = vmodl.query.PropertyCollector
    spec = q.FilterSpec(
        objectSet=[q.ObjectSpec(obj=task, skip=False)],
        propSet=[q.PropertySpec(type=vim.Task, pathSet=["info.state"], all=False)],
    )
    while True:
        state = pc.RetrieveContents([spec])[0].propSet[0].val
        if state in ("success", "error"):
            return state
        time.sleep(0.01)


def _read_power(pc: Any, vm: Any) -> str:
    from pyVmomi import vim, vmodl

    q = vmodl.query.PropertyCollector
    spec = q.FilterSpec(
        objectSet=[q.ObjectSpec(obj=vm, skip=False)],
        propSet=[q.PropertySpec(type=vim.VirtualMachine, pathSet=["runtime.powerState"], all=False)],
    )
    return str(pc.RetrieveContents([spec])[0].propSet[0].val)


def vcsim_subjects(sim: Any, stack: contextlib.ExitStack) -> dict[str, list[Step]]:
    """virtabstract and raw pyVmomi (one PropertyCollector read per wait), each on its own VM."""
    import virtabstract

    hv = stack.enter_context(virtabstract.connect(va_url(sim), username=sim.username, password=sim.password))
    infos = sorted(hv.vms.list_info(), key=lambda i: i.name)
    if len(infos) < 2:
        raise Skip("vcsim has fewer than 2 VMs")
    vm = hv.vms.get(infos[0].id)
    if vm.state.value == "running":
        vm.power_off()
    va_snaps: list[Any] = []
    counter = iter(range(10**9))
    subjects: dict[str, list[Step]] = {
        VA: [
            ("state query", lambda: vm.state, None),
            ("start", vm.start, None),
            ("stop", vm.power_off, None),
            (
                "snapshot create",
                lambda: va_snaps.append(vm.snapshots.create(f"va-{next(counter)}")),
                lambda: va_snaps.pop().delete(),
            ),
        ]
    }
    si = smart_connect(sim)
    content = si.RetrieveContent()  # ``si.content`` would be one round trip per access
    pc = content.propertyCollector
    raw_vm = content.searchIndex.FindByUuid(None, infos[1].id, True, True)
    if _read_power(pc, raw_vm) == "poweredOn":
        _wait_raw(pc, raw_vm.PowerOffVM_Task())

    def raw_snapshot() -> None:
        _wait_raw(pc, raw_vm.CreateSnapshot_Task(f"raw-{next(counter)}", "", False, False))

    subjects[RAW] = [
        ("state query", lambda: _read_power(pc, raw_vm), None),
        ("start", lambda: _wait_raw(pc, raw_vm.PowerOnVM_Task()), None),
        ("stop", lambda: _wait_raw(pc, raw_vm.PowerOffVM_Task()), None),
        ("snapshot create", raw_snapshot, lambda: _wait_raw(pc, raw_vm.RemoveAllSnapshots_Task())),
    ]
    return subjects


# -- the workload -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def _libvirtd_test_uri() -> Iterator[str]:
    require_libvirtd(qemu=False)
    with test_node(8) as uri:
        yield uri.replace("test://", "test+unix://", 1)


def run(config: Config) -> WorkloadResult:
    """Workload 2 on the in-process test driver, the test driver inside libvirtd, and vcsim."""
    result = WorkloadResult("per-operation")
    k_scale = 0.2 if config.quick else 1.0
    rounds = config.reps(5, 2)

    def k(value: int) -> int:
        return max(5, int(value * k_scale))

    def inproc(stack: contextlib.ExitStack) -> str:
        require_backend("kvm")
        return stack.enter_context(test_node(8))

    def libvirtd(stack: contextlib.ExitStack) -> str:
        require_backend("kvm")
        return stack.enter_context(_libvirtd_test_uri())

    def vcsim(stack: contextlib.ExitStack) -> dict[str, list[Step]]:
        require_backend("esxi")
        infra = require_vcsim()
        sim = stack.enter_context(infra.run_vcsim(model="vpx", vms=2))
        return vcsim_subjects(sim, stack)

    scenarios: list[tuple[str, Callable[[contextlib.ExitStack], dict[str, list[Step]] | str], int]] = [
        ("libvirt test (in process)", inproc, k(1000)),
        ("libvirtd test+unix", libvirtd, k(200)),
        ("vcsim", vcsim, k(40)),
    ]
    for scenario, build, iterations in scenarios:
        config.log(f"per-operation: {scenario} ({iterations} calls × {rounds} rounds)")
        try:
            with contextlib.ExitStack() as stack:
                built = build(stack)
                if isinstance(built, str):  # libvirt: rounds in their own processes, cheap, so more of them
                    in_process = scenario.startswith("libvirt test (in process)")
                    result.rows += measure_in_processes(
                        built,
                        iterations,
                        config.reps(15, 2),
                        scenario=scenario,
                        config=config,
                        hooks=in_process,
                        loop_control=not in_process,
                    )
                else:
                    result.rows += measure(built, iterations, rounds, scenario=scenario, config=config)
        except Skip as exc:
            result.skipped.append(f"{scenario}: {exc}")
    for row in result.rows:
        if row.ref is None:
            continue
        ref = result.find(row.scenario, row.ref)
        if ref is None:
            continue
        if row.approach.endswith(LOOP):  # a control pair: shown, not a target
            row.note = "control: both connections watched by the event loop"
            continue
        if row.scenario.startswith("libvirt test (in process)"):
            added = result.difference(row, ref) * 1e6
            row.note = f"+{added:.1f} µs"
            result.checks.append(
                Check(
                    f"per-op: {row.scenario} {row.approach} added time",
                    f"{added:+.1f} µs",
                    f"≤ {ADDED_TARGET_US:g} µs",
                    added <= ADDED_TARGET_US,
                )
            )
        else:
            ratio = result.ratio(row, ref)
            result.checks.append(
                Check(
                    f"per-op: {row.scenario} {row.approach} vs raw",
                    f"{ratio:.2f}×",
                    f"≤ {RATIO_TARGET}×",
                    ratio <= RATIO_TARGET,
                )
            )
    return result
