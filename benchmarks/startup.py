"""Workload 4: start-up cost of ``import virtabstract``, ``virtabstract --help`` and ``vm list --json``.

What a user sees after ``pip install``: pip compiles bytecode, so the measured runs use a warm bytecode
cache. This machine sets ``PYTHONDONTWRITEBYTECODE=1`` and the repository is installed editable, so the
harness unsets that variable and points ``PYTHONPYCACHEPREFIX`` at a private directory: one untimed run
fills it, the timed runs read it, and the repository gets no ``__pycache__``. The same import without any
bytecode cache (every module compiled on each start) is reported for comparison, untargeted.

The CLI is run as ``python -m virtabstract`` (the same code as the ``virtabstract`` script).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._common import REPO, Check, Config, Row, WorkloadResult

IMPORT_TARGET_S = 0.150
HELP_TARGET_S = 0.300
LIST_TARGET_S = 1.0
SDK_MODULES = ("libvirt", "libvirtmod", "pyVmomi", "pyVim", "vboxapi", "virtualbox", "libcloud", "rich", "yaml")
"""Modules a bare ``import virtabstract`` must not load (SDKs, and the CLI's optional extras)."""

_PROBE = (
    "import sys, json, virtabstract; "
    f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {list(SDK_MODULES)!r})))"
)
_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def _env(cache: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    if cache is None:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    else:
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _run(args: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, *args],
        env=env,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
        check=False,
        timeout=120,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return elapsed, proc


def import_times(stderr: str) -> tuple[float, float]:
    """(total of the top-level imports, cumulative time of ``virtabstract``) from ``-X importtime``, seconds."""
    total = 0
    package = 0
    for line in stderr.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        cumulative, indent, name = int(match.group(2)), len(match.group(3)), match.group(4)
        if indent == 1:  # top-level entries have one space after the bar
            total += cumulative
        if name == "virtabstract":
            package = cumulative
    return total / 1e6, package / 1e6


def run(config: Config) -> WorkloadResult:
    """Measure the start-up commands, interleaved, with a warm private bytecode cache."""
    result = WorkloadResult("start-up")
    reps = config.reps(15, 5)
    with tempfile.TemporaryDirectory(prefix="vabench-pyc-") as tmp:
        cache = Path(tmp) / "pycache"
        store = Path(tmp) / "fleet.json"
        warm, cold = _env(cache), _env(None)
        has_cli = (REPO / "virtabstract/cli/__init__.py").exists()
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            "python -c pass": (["-c", "pass"], warm),
            "import virtabstract (wall)": (["-c", "import virtabstract"], warm),
            "import virtabstract, no bytecode cache (wall)": (["-c", "import virtabstract"], cold),
        }
        if has_cli:
            commands["virtabstract --help"] = (["-m", "virtabstract", "--help"], warm)
            commands["virtabstract vm list --json (1000 mock VMs)"] = (
                ["-m", "virtabstract", "--uri", f"mock://{store}", "--json", "vm", "list"],
                warm,
            )
            # Create the file-backed fleet (and fill the bytecode cache) untimed.
            _run(["-m", "virtabstract", "--uri", f"mock://{store}?vms=1000", "--json", "vm", "list"], warm)
        else:
            result.skipped.append("CLI: virtabstract/cli is not written yet")
        _run(["-c", _PROBE], warm)
        samples: dict[str, list[float]] = {name: [] for name in commands}
        importtime: dict[str, list[float]] = {"-X importtime: total": [], "-X importtime: virtabstract": []}
        leaked: list[str] = []
        names = list(commands)
        for index in range(reps):
            for name in names[index % len(names) :] + names[: index % len(names)]:
                args, env = commands[name]
                samples[name].append(_run(args, env)[0])
            _, proc = _run(["-X", "importtime", "-c", _PROBE], warm)
            total, package = import_times(proc.stderr)
            importtime["-X importtime: total"].append(total)
            importtime["-X importtime: virtabstract"].append(package)
            leaked = json.loads(proc.stdout.strip().splitlines()[-1])
        config.log(f"start-up: {reps} rounds done")
        if has_cli:
            _, proc = _run(list(commands["virtabstract vm list --json (1000 mock VMs)"][0]), warm)
            listed = len(json.loads(proc.stdout))
            if listed != 1000:
                result.skipped.append(f"vm list printed {listed} VMs, not 1000")
    for name, values in {**samples, **importtime}.items():
        result.rows.append(Row("start-up", "start-up", name, None, values))
    total = result.find("start-up", "-X importtime: total")
    assert total is not None
    result.checks.append(
        Check(
            "start-up: import virtabstract (-X importtime total)",
            f"{total.median * 1e3:.0f} ms",
            f"< {IMPORT_TARGET_S * 1e3:.0f} ms",
            total.median < IMPORT_TARGET_S,
        )
    )
    result.checks.append(
        Check("start-up: no SDK imported by import virtabstract", ", ".join(leaked) or "none", "none", not leaked)
    )
    for name, target in (
        ("virtabstract --help", HELP_TARGET_S),
        ("virtabstract vm list --json (1000 mock VMs)", LIST_TARGET_S),
    ):
        row = result.find("start-up", name)
        if row is not None:
            result.checks.append(
                Check(
                    f"start-up: {name}", f"{row.median * 1e3:.0f} ms", f"< {target * 1e3:.0f} ms", row.median < target
                )
            )
    return result
