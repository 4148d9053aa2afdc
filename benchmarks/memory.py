"""Workload 5: peak RSS of a process that lists 5000 VMs, virtabstract against the raw SDK approach.

Each measurement is a fresh subprocess (``python -m benchmarks.memory <approach> <uri>``) that imports,
connects, reads ``VmRSS`` (the baseline), lists every VM once keeping the result alive, and prints its
peak RSS (``VmHWM``). Targets compare the peak RSS of the whole process (≤ 1.5× the raw approach); the growth over
the post-connect baseline is shown beside it.
"""

from __future__ import annotations

import contextlib
import json
import resource
import subprocess
import sys
from typing import Any

from ._common import REPO, Check, Config, Row, Skip, WorkloadResult, require_backend
from .fleets import test_node, vcsim_fleet

RATIO_TARGET = 1.5


def _status_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    return 0


def _rss_kib() -> int:
    return _status_kib("VmRSS")


def child(approach: str, target: str, username: str = "", password: str = "") -> dict[str, Any]:
    """Run inside the subprocess: list once with *approach* and report memory figures."""
    if approach.startswith("virtabstract"):
        import virtabstract

        hv = virtabstract.connect(target, username=username or None, password=password or None)
        before = _rss_kib()
        # libvirt: the inventory call (VMSummary: state, vCPUs, memory, guest OS, tags, leased IPs)
        items: Any = hv.vms.list_summaries() if hv.backend.name in ("kvm", "esxi") else hv.vms.list_info()
    elif approach == "raw listAll+info":
        import libvirt

        from benchmarks.inventory import raw_info

        conn = libvirt.open(target)
        before = _rss_kib()
        items = raw_info(conn)
    elif approach == "raw stats+XMLDesc":
        import libvirt

        from benchmarks.inventory import raw_xml

        conn = libvirt.open(target)
        before = _rss_kib()
        items = raw_xml(conn)
    elif approach == "raw PC 7 paths":
        import ssl

        from pyVim.connect import SmartConnect

        from benchmarks.inventory import VSPHERE_PATHS, pc_inventory

        host, port, cafile = target.split("|")
        si = SmartConnect(
            host=host, port=int(port), user=username, pwd=password, sslContext=ssl.create_default_context(cafile=cafile)
        )
        before = _rss_kib()
        items = pc_inventory(si, VSPHERE_PATHS)
    else:
        raise SystemExit(f"unknown approach {approach!r}")
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child of a big parent would
    # report the parent's peak. VmHWM belongs to this process's own address space.
    peak = _status_kib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"count": len(items), "before_kib": before, "peak_kib": peak}


def _measure(approach: str, target: str, username: str = "", password: str = "") -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.memory", approach, target, username, password],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"memory child {approach} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _scenario(
    result: WorkloadResult,
    scenario: str,
    n: int,
    targets: dict[str, tuple[str, str, str]],
    ref: str,
    reps: int,
    config: Config,
) -> None:
    samples: dict[str, list[float]] = {name: [] for name in targets}
    growth: dict[str, list[float]] = {name: [] for name in targets}
    names = list(targets)
    for index in range(reps):
        for name in names[index % len(names) :] + names[: index % len(names)]:
            figures = _measure(name, *targets[name])
            if figures["count"] < n:
                raise Skip(f"{name} listed {figures['count']} VMs, expected {n}")
            samples[name].append(figures["peak_kib"] * 1024.0)
            growth[name].append((figures["peak_kib"] - figures["before_kib"]) * 1024.0)
        config.log(f"  memory {scenario}: round {index + 1}/{reps}")
    for name in names:
        grown = sorted(growth[name])[len(growth[name]) // 2]
        result.rows.append(
            Row(
                "memory",
                scenario,
                name,
                n,
                samples[name],
                unit="B",
                ref=None if name == ref else ref,
                note=f"+{grown / 2**20:.1f} MiB while listing",
            )
        )
    for name in names:
        if not name.startswith("virtabstract"):
            continue
        row, base = result.find(scenario, name, n), result.find(scenario, ref, n)
        assert row is not None
        assert base is not None
        ratio = row.median / base.median
        result.checks.append(
            Check(
                f"memory: {scenario} N={n} {name} peak RSS vs {ref}",
                f"{ratio:.2f}×",
                f"≤ {RATIO_TARGET}×",
                ratio <= RATIO_TARGET,
            )
        )


def run(config: Config) -> WorkloadResult:
    """Workload 5 on the test driver (5000 domains; 1000 with --quick) and vcsim (5000 VMs, full run only)."""
    result = WorkloadResult("memory")
    n = 1000 if config.quick else 5000
    reps = config.reps(3, 1)
    try:
        require_backend("kvm")
        with test_node(n) as uri:
            targets = {name: (uri, "", "") for name in ("virtabstract", "raw listAll+info", "raw stats+XMLDesc")}
            _scenario(result, "libvirt test (in process)", n, targets, "raw listAll+info", reps, config)
    except Skip as exc:
        result.skipped.append(f"libvirt test: {exc}")
    if config.quick:
        result.skipped.append("vcsim: full run only (starting 5000 simulated VMs takes too long for --quick)")
        return result
    try:
        require_backend("esxi")
        with vcsim_fleet(n) as sim:
            from .fleets import va_url

            raw_target = f"{sim.host}|{sim.port}|{sim.ca_cert}"
            targets = {
                "virtabstract": (va_url(sim), sim.username, sim.password),
                "raw PC 7 paths": (raw_target, sim.username, sim.password),
            }
            _scenario(result, "vcsim", n, targets, "raw PC 7 paths", max(1, reps - 1), config)
    except Skip as exc:
        result.skipped.append(f"vcsim: {exc}")
    return result


if __name__ == "__main__":
    with contextlib.redirect_stdout(sys.stderr):
        figures = child(*sys.argv[1:])
    print(json.dumps(figures))
