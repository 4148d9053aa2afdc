"""Run the performance harness of issue 8: ``python benchmarks/run.py`` (or ``python -m benchmarks``).

Runs every workload (or ``--only NAME``), prints a markdown table of every measurement and a table of the
targets, writes PNG plots into ``docs/_static/perf/``, rewrites the marked sections of
``docs/performance.md`` and exits 1 naming every missed target (``--quick``: smaller fleets, fewer rounds,
targets reported but not enforced; ``--no-docs`` leaves the docs alone). A workload whose backend, simulator
or daemon is missing is reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

if __package__ in (None, ""):  # ``python benchmarks/run.py``
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "benchmarks"

from benchmarks import guest, inventory, memory, ops, power, report, scale, startup
from benchmarks._common import Check, Config, Row, WorkloadResult, importable

WORKLOADS: dict[str, Callable[[Config], WorkloadResult]] = {
    "inventory": inventory.run,
    "ops": ops.run,
    "power": power.run,
    "startup": startup.run,
    "memory": memory.run,
    "guest": guest.run,
    "scale": scale.run,
}
"""Workloads in issue 8's order (1 inventory … 7 scale curve)."""

WORKLOAD_TITLES = {
    "inventory": "inventory",
    "ops": "per-operation",
    "power": "bulk power-on",
    "startup": "start-up",
    "memory": "memory",
    "guest": "real guest",
    "scale": "scale curve",
}
"""The name each workload gives its result (``WorkloadResult.name``)."""

PLOT_FILES = {
    "inventory": "inventory.png",
    "ops": "per-operation.png",
    "power": "bulk-power-on.png",
    "startup": "startup.png",
    "memory": "memory.png",
    "guest": "real-guest.png",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: small fleets, few rounds, targets not enforced"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(WORKLOADS),
        metavar="WORKLOAD",
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write every sample and check as JSON")
    parser.add_argument(
        "--reuse",
        type=Path,
        metavar="JSON",
        help="take the workloads not run now from an earlier --json file (to re-run one workload)",
    )
    parser.add_argument("--no-docs", action="store_true", help="do not touch docs/performance.md or the plots")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser.parse_args(argv)


def load_results(path: Path) -> dict[str, WorkloadResult]:
    """Workload results from a ``--json`` file, keyed by workload key (``inventory``, ``ops``…)."""
    data = json.loads(path.read_text())
    by_title = {WORKLOAD_TITLES[k]: k for k in WORKLOADS}
    loaded: dict[str, WorkloadResult] = {}
    for item in data["workloads"]:
        rows = [
            Row(
                r["workload"],
                r["scenario"],
                r["approach"],
                r["n"],
                list(r["samples"]),
                r["round_trips"],
                r["unit"],
                r["ref"],
                r["note"],
            )
            for r in item["rows"]
        ]
        checks = [Check(**c) for c in item["checks"]]
        key = by_title.get(item["name"], item["name"])
        loaded[key] = WorkloadResult(
            item["name"], rows, checks, list(item["skipped"]), item["seconds"], dict(item["extra"])
        )
    return loaded


def merge_earlier(
    path: Path, names: list[str], results: list[WorkloadResult]
) -> tuple[list[str], list[WorkloadResult]]:
    """Fill in, in the usual order, the workloads that were not run now from an earlier run's JSON."""
    earlier = load_results(path)
    fresh = dict(zip(names, results, strict=True))
    merged = [(k, fresh.get(k) or earlier.get(k)) for k in WORKLOADS]
    pairs = [(k, r) for k, r in merged if r is not None]
    return [k for k, _ in pairs], [r for _, r in pairs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = Config(quick=args.quick, verbose=not args.quiet)
    names = args.only or list(WORKLOADS)
    results: list[WorkloadResult] = []
    started = time.monotonic()
    for name in names:
        config.log(f"== {name}")
        begin = time.monotonic()
        try:
            result = WORKLOADS[name](config)
        except Exception as exc:  # a crashed workload is reported, the others still run
            traceback.print_exc()
            result = WorkloadResult(name, skipped=[f"crashed: {type(exc).__name__}: {exc}"])
            result.extra["crashed"] = True
        result.seconds = time.monotonic() - begin
        config.log(f"== {name} done in {result.seconds:.0f} s")
        results.append(result)
    total = time.monotonic() - started
    if args.reuse:
        names, results = merge_earlier(args.reuse, names, results)

    table = report.table_markdown(results)
    checks = report.checks_markdown(results, args.quick)
    print(table)
    print()
    print(checks)
    print(f"\n_{len(names)} workload(s) in {total:.0f} s{' (quick)' if args.quick else ''}._")

    if not args.no_docs:
        plots = []
        have_matplotlib = importable("matplotlib") is None
        if not have_matplotlib:
            config.log("matplotlib is not installed: no plots written (pip install matplotlib)")
        for key, result in zip(names, results, strict=True):
            if not have_matplotlib:
                break
            if key == "scale":
                path = report.plot_scale(result, report.PLOTS / "scale-curve.png")
            else:
                path = report.plot_bars(result, report.PLOTS / PLOT_FILES[key], log=key not in ("memory", "startup"))
            if path is not None:
                plots.append(path)
        mode = "quick smoke run" if args.quick else "full run"
        stamp = time.strftime("%Y-%m-%d %H:%M")
        reused = [k for k in names if k not in (args.only or list(WORKLOADS))]
        header = f"_{mode}, {stamp}, {total:.0f} s, measured: {', '.join(k for k in names if k not in reused)}"
        header += f"; reused from {args.reuse.name}: {', '.join(reused)}_\n\n" if reused else "_\n\n"
        report.update_doc(
            {
                "machine": report.machine_markdown(report.machine()),
                "table": header + table,
                "checks": checks,
            }
        )
        config.log(f"wrote {report.DOC.relative_to(report.REPO)} and {len(plots)} plot(s)")

    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "quick": args.quick,
                    "seconds": total,
                    "machine": report.machine(),
                    "workloads": [
                        {
                            "name": r.name,
                            "seconds": r.seconds,
                            "skipped": r.skipped,
                            "extra": r.extra,
                            "rows": [row.to_json() for row in r.rows],
                            "checks": [vars(c) for c in r.checks],
                        }
                        for r in results
                    ],
                },
                indent=1,
                default=str,
            )
        )

    crashed = [r.name for r in results if r.extra.get("crashed")]
    missed = [c for r in results for c in r.checks if c.passed is False]
    for name in crashed:
        print(f"CRASHED: workload {name}", file=sys.stderr)
    if args.quick:
        if missed:
            print(f"(quick run: {len(missed)} target(s) missed, not enforced)", file=sys.stderr)
        return 1 if crashed else 0
    for check in missed:
        print(f"MISSED TARGET: {check.name}: {check.value} (goal {check.target})", file=sys.stderr)
    return 1 if missed or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
