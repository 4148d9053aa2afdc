"""Output: the markdown table, the machine description, docs/performance.md markers and the PNG plots."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from ._common import REPO, WorkloadResult, fmt_value

DOC = REPO / "docs/performance.md"
PLOTS = REPO / "docs/_static/perf"
MARKERS = {
    "machine": ("<!-- bench:machine:start -->", "<!-- bench:machine:end -->"),
    "table": ("<!-- bench:table:start -->", "<!-- bench:table:end -->"),
    "checks": ("<!-- bench:checks:start -->", "<!-- bench:checks:end -->"),
}


# -- machine ------------------------------------------------------------------------------------------------


def _first_line(args: Sequence[str]) -> str:
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "n/a"
    out = (proc.stdout or proc.stderr).strip().splitlines()
    return out[0] if out else "n/a"


def machine() -> dict[str, str]:
    """What the numbers were measured on."""
    cpu = "n/a"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kib = int(
            next(x for x in Path("/proc/meminfo").read_text().splitlines() if x.startswith("MemTotal")).split()[1]
        )
        ram = f"{mem_kib / 2**20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        ram = "n/a"

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    govmomi = _first_line(["dpkg-query", "-W", "-f=${Version}", "golang-github-vmware-govmomi-dev"])
    libvirt_lib = "n/a"
    try:
        import libvirt

        number = libvirt.getVersion()
        libvirt_lib = f"{number // 1000000}.{number // 1000 % 1000}.{number % 1000}"
    except Exception:
        pass
    os_release = ". /etc/os-release; echo $PRETTY_NAME"
    return {
        "OS": f"{platform.system()} {platform.release()} ({_first_line(['sh', '-c', os_release])})",
        "CPU": f"{os.cpu_count()} × {cpu}",
        "RAM": ram,
        "Python": platform.python_version(),
        "libvirt (library / libvirtd)": f"{libvirt_lib} / {_first_line(['libvirtd', '--version']).split()[-1]}",
        "libvirt-python": version("libvirt-python"),
        "pyVmomi": version("pyvmomi"),
        "govmomi (vcsim)": govmomi,
        "apache-libcloud": version("apache-libcloud"),
        "virtabstract": version("virtabstract"),
    }


def machine_markdown(info: dict[str, str]) -> str:
    return "\n".join(["| item | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in info.items())])


# -- table --------------------------------------------------------------------------------------------------


def table_markdown(results: Sequence[WorkloadResult]) -> str:
    """One markdown table of every row: median, [min–max], round trips, ratio to the row's reference."""
    lines = [
        "| workload | scenario | approach | N | median | [min–max] | rounds | round trips | × ref | note |",
        "|---|---|---|---:|---:|---|---:|---:|---|---|",
    ]
    for result in results:
        for row in result.rows:
            ref = result.find(row.scenario, row.ref, row.n) if row.ref else None
            ratio = f"{result.ratio(row, ref):.2f}× {ref.approach}" if ref is not None else ""
            lines.append(
                f"| {result.name} | {row.scenario} | {row.approach} | {row.n if row.n is not None else ''} "
                f"| {fmt_value(row.median, row.unit)} | {fmt_value(row.low, row.unit)}–{fmt_value(row.high, row.unit)} "
                f"| {len(row.samples)} | {row.round_trips if row.round_trips is not None else ''} | {ratio} "
                f"| {row.note} |"
            )
        for reason in result.skipped:
            lines.append(f"| {result.name} | skipped | {reason} | | | | | | | |")
    return "\n".join(lines)


def checks_markdown(results: Sequence[WorkloadResult], quick: bool) -> str:
    lines = ["| target | measured | goal | result |", "|---|---|---|---|"]
    for result in results:
        for check in result.checks:
            verdict = "n/a" if check.passed is None else ("pass" if check.passed else "**MISS**")
            lines.append(f"| {check.name} | {check.value} | {check.target} | {verdict} |")
    if quick:
        lines.append("")
        lines.append("_Quick (smoke) run: smaller fleets and fewer rounds; targets reported, not enforced._")
    return "\n".join(lines)


def update_doc(sections: dict[str, str], doc: Path = DOC) -> None:
    """Replace the text between each pair of markers in docs/performance.md (the prose stays as written)."""
    text = (
        doc.read_text()
        if doc.exists()
        else "# Performance\n\n" + "\n\n".join(f"{start}\n{end}" for start, end in MARKERS.values()) + "\n"
    )
    for key, body in sections.items():
        start, end = MARKERS[key]
        pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            text += f"\n{start}\n{end}\n"
        text = pattern.sub(lambda _m, s=start, e=end, b=body: f"{s}\n{b}\n{e}", text)
    doc.write_text(text)


# -- plots --------------------------------------------------------------------------------------------------


def plot_bars(result: WorkloadResult, path: Path, *, log: bool = True) -> Path | None:
    """One panel per scenario (and N): horizontal bars of the medians with min–max whiskers."""
    if not result.rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[str, list] = {}
    for row in result.rows:
        groups.setdefault(f"{row.scenario}" + (f", N={row.n}" if row.n else ""), []).append(row)
    fig, axes = plt.subplots(
        len(groups), 1, figsize=(9, 1.0 + 0.42 * sum(len(g) + 1.5 for g in groups.values())), squeeze=False
    )
    for ax, (title, rows) in zip(axes[:, 0], groups.items(), strict=True):
        scale = 2**-20 if rows[0].unit == "B" else 1.0
        medians = [r.median * scale for r in rows]
        err = [[(r.median - r.low) * scale for r in rows], [(r.high - r.median) * scale for r in rows]]
        colors = ["tab:orange" if r.approach.startswith("virtabstract") else "tab:blue" for r in rows]
        ax.barh([r.approach for r in rows], medians, xerr=err, color=colors, capsize=3)
        ax.invert_yaxis()
        if log and rows[0].unit != "B":
            ax.set_xscale("log")
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_xlabel("peak RSS (MiB)" if rows[0].unit == "B" else "seconds (median, min–max)", fontsize=8)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_scale(result: WorkloadResult, path: Path) -> Path | None:
    """Log-log inventory time against N, one line per approach, one panel per backend."""
    if not result.rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted({r.scenario for r in result.rows})
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.5), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        approaches: dict[str, list] = {}
        for row in result.rows:
            if row.scenario == scenario:
                approaches.setdefault(row.approach, []).append(row)
        for approach, rows in approaches.items():
            rows.sort(key=lambda r: r.n)
            style = "-o" if approach.startswith("virtabstract") else "--s"
            ax.errorbar(
                [r.n for r in rows],
                [r.median for r in rows],
                yerr=[[r.median - r.low for r in rows], [r.high - r.median for r in rows]],
                fmt=style,
                capsize=2,
                label=approach,
                markersize=4,
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("VMs (N)")
        ax.set_ylabel("inventory time, s")
        ax.set_title(scenario, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
