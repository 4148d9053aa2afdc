"""Workload 7: inventory time against the fleet size N (100 … 5000), per approach, for the log-log plot.

The same approaches as workload 1 (see :mod:`benchmarks.inventory`), fewer rounds; slow approaches stop
at the N where one round would take more than a few seconds.
"""

from __future__ import annotations

from ._common import Config, Skip, WorkloadResult
from .inventory import libvirt_inventory, vcsim_inventory


def run(config: Config) -> WorkloadResult:
    """Scale curve on vcsim and on the in-process test driver."""
    result = WorkloadResult("scale curve")
    vs_ns = [100, 300] if config.quick else [100, 300, 1000, 3000]
    lv_ns = [100, 1000] if config.quick else [100, 300, 1000, 3000, 5000]
    try:
        rows, skipped = vcsim_inventory(
            vs_ns,
            config,
            workload="scale curve",
            scenario="vcsim (https)",
            rounds=config.reps(3, 1),
            naive_max=300,
            libcloud_max=1000,
            extra=False,
        )
        result.rows += rows
        result.skipped += skipped
    except Skip as exc:
        result.skipped.append(f"vcsim: {exc}")
    try:
        rows, skipped = libvirt_inventory(
            "test",
            lv_ns,
            config,
            workload="scale curve",
            scenario="libvirt test driver (in process)",
            rounds=config.reps(3, 1),
            libcloud_max=1000,
            extra=True,
        )
        result.rows += rows
        result.skipped += skipped
    except Skip as exc:
        result.skipped.append(f"libvirt test: {exc}")
    for row in result.rows:  # the curve needs no ratios
        row.ref = None
    return result
