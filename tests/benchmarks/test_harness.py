"""Smoke test of the performance harness itself (no timing is asserted: benchmarks never gate the suite)."""

# ruff: noqa: RUF001 - the harness prints multiplication signs

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
