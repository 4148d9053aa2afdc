"""Smoke test of the performance harness itself (no timing is asserted: benchmarks never gate the suite)."""

# ruff: noqa: RUF001 - the harness prints multiplication signs

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_quick_startup_workload_runs(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks/run.py"),
            "--quick",
            "--only",
            "startup",
            "--no-docs",
            "--quiet",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| start-up |" in proc.stdout
    data = json.loads(out.read_text())
    (workload,) = data["workloads"]
    assert workload["name"] == "start-up"
    approaches = {row["approach"] for row in workload["rows"]}
    assert {"python -c pass", "import virtabstract (wall)", "-X importtime: total"} <= approaches
    assert all(row["samples"] for row in workload["rows"])
    assert any(check["name"].startswith("start-up: no SDK imported") for check in workload["checks"])


def test_table_and_doc_markers(tmp_path: Path) -> None:
    from benchmarks import report
    from benchmarks._common import Check, Row, WorkloadResult

    result = WorkloadResult(
        "demo",
        rows=[
            Row("demo", "s", "raw", 10, [1.0, 2.0, 3.0]),
            Row("demo", "s", "virtabstract", 10, [2.0, 4.0, 6.0], ref="raw"),
        ],
    )
    result.checks.append(Check("demo ratio", "2.00×", "≤ 1.25×", False))
    table = report.table_markdown([result])
    assert "2.00× raw" in table
    doc = tmp_path / "perf.md"
    doc.write_text("# P\n\nprose\n<!-- bench:table:start -->\nold\n<!-- bench:table:end -->\nmore prose\n")
    report.update_doc({"table": table, "checks": report.checks_markdown([result], quick=False)}, doc)
    text = doc.read_text()
    assert "old" not in text and "prose" in text and "more prose" in text and "**MISS**" in text


def _scripted(monkeypatch: Any, durations: list[float]) -> list[str]:
    """Make ``timed`` answer *durations* in turn (no clock involved); return the log of calls."""
    from benchmarks import _common

    log: list[str] = []
    answers = iter(durations)

    def fake_timed(func: Any) -> float:
        func()
        return next(answers)

    monkeypatch.setattr(_common, "timed", fake_timed)
    return log


@pytest.mark.parametrize(
    ("durations", "best_of", "calls", "sample"),
    [
        pytest.param([0.03, 0.01, 0.02, 0.05, 0.04], 5, 5, 0.01, id="quick: fastest of five"),
        pytest.param([0.10, 0.09, 0.08], 5, 2, 0.09, id="budget: stops before it would overrun"),
        pytest.param([0.30, 0.01], 5, 1, 0.30, id="slow: one call, as before"),
        pytest.param([0.03, 0.01], 1, 1, 0.03, id="best_of=1: one call"),
    ],
)
def test_a_rounds_sample_is_the_fastest_of_a_few_calls_within_a_budget(
    monkeypatch: Any, durations: list[float], best_of: int, calls: int, sample: float
) -> None:
    from benchmarks._common import Approach, sampled

    log = _scripted(monkeypatch, durations)
    approach = Approach(
        "a", lambda: log.append("run"), prepare=lambda: log.append("prepare"), cleanup=lambda: log.append("cleanup")
    )
    assert sampled(approach, best_of) == sample
    assert log == ["prepare", "run", "cleanup"] * calls  # a cold approach is prepared afresh for every call
