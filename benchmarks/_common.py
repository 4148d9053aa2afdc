"""Shared plumbing of the harness: results, interleaved timing, round-trip counters, availability probes.

Every workload returns a :class:`WorkloadResult`: measured :class:`Row` s (one per approach, scenario and N,
with every sample kept) and :class:`Check` s (one per target of issue 8). Ratios are always computed between
rows measured in the *same* run, in interleaved rounds whose order rotates, because this machine is noisy.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import http.client
import importlib
import importlib.util
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
"""The repository root (``benchmarks/`` lives directly under it)."""

if str(REPO) not in sys.path:  # ``python benchmarks/run.py`` and ``tests.infra`` imports
    sys.path.insert(0, str(REPO))


class Skip(Exception):
    """Raised by a workload (or one of its scenarios) that cannot run here; the message says why."""


@dataclass
class Config:
    """Run settings shared by every workload."""

    quick: bool = False
    """Smoke mode: fewer repetitions and smaller fleets; targets are reported, not enforced."""
    verbose: bool = True

    def reps(self, full: int, quick: int = 1) -> int:
        """Repetitions for this mode."""
        return quick if self.quick else full

    def log(self, message: str) -> None:
        """Progress on stderr (stdout carries the table)."""
        if self.verbose:
            print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    """One approach in one scenario at one N: every sample (seconds, or bytes for memory rows)."""

    workload: str
    scenario: str
    approach: str
    n: int | None
    samples: list[float]
    round_trips: int | None = None
    unit: str = "s"
    ref: str | None = None
    """The approach of the same scenario and N this row is compared to (ratio column)."""
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def low(self) -> float:
        return min(self.samples) if self.samples else float("nan")

    @property
    def high(self) -> float:
        return max(self.samples) if self.samples else float("nan")

    def iqr(self) -> tuple[float, float]:
        """Interquartile range (falls back to min/max below 4 samples)."""
        if len(self.samples) < 4:
            return self.low, self.high
        q = statistics.quantiles(self.samples, n=4, method="inclusive")
        return q[0], q[2]

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": self.workload,
            "scenario": self.scenario,
            "approach": self.approach,
            "n": self.n,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "samples": self.samples,
            "round_trips": self.round_trips,
            "ref": self.ref,
            "note": self.note,
        }


@dataclass
class Check:
    """One target: ``passed`` is None when it could not be evaluated."""

    name: str
    value: str
    target: str
    passed: bool | None
    detail: str = ""


@dataclass
class WorkloadResult:
    """What one workload produced (or why it was skipped)."""

    name: str
    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """``"scenario: reason"`` for each part that did not run."""
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def find(self, scenario: str, approach: str, n: int | None = None) -> Row | None:
        for row in self.rows:
            if row.scenario == scenario and row.approach == approach and (n is None or row.n == n):
                return row
        return None

    def difference(self, row: Row, ref: Row) -> float:
        """Median of the per-round differences when both have the same number of rounds, else difference of
        medians (rounds are paired: a round measured during a burst of load on the machine moves both rows)."""
        if len(row.samples) == len(ref.samples) and row.samples:
            return statistics.median(a - b for a, b in zip(row.samples, ref.samples, strict=True))
        return row.median - ref.median

    def ratio(self, row: Row, ref: Row) -> float:
        """Median of the per-round ratios when both have the same number of rounds, else ratio of medians."""
        if len(row.samples) == len(ref.samples) and row.samples:
            return statistics.median(a / b for a, b in zip(row.samples, ref.samples, strict=True) if b > 0)
        return row.median / ref.median if ref.median > 0 else float("nan")


# -- timing -----------------------------------------------------------------------------------------------


@dataclass
class Approach:
    """One way of doing the work: ``run`` is timed; ``prepare``/``cleanup`` run untimed around it."""

    name: str
    run: Callable[[], Any]
    rounds: int | None = None
    """Fewer rounds for slow approaches (None: every round)."""
    prepare: Callable[[], Any] | None = None
    cleanup: Callable[[], Any] | None = None
    count: Callable[[Callable[[], Any]], int | None] | None = None
    """Round-trip counter: given a callable, runs it once and returns the number of calls it made."""
    ref: str | None = None
    note: str = ""


def timed(func: Callable[[], Any]) -> float:
    """Wall time of one call (garbage collection off while it runs, as ``timeit`` does)."""
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        func()
        return time.perf_counter() - start
    finally:
        if enabled:
            gc.enable()


def _retry(func: Callable[[], T], attempts: int = 3) -> T:
    """Call *func*, again if it fails: on a shared libvirtd, other clients' domains vanish mid-listing."""
    for _ in range(attempts - 1):
        try:
            return func()
        except Exception:
            continue
    return func()


BEST_OF = 5
"""A round's sample of a quick approach is the fastest of up to this many consecutive calls (see :func:`sampled`)."""
BEST_OF_BUDGET_S = 0.25
"""…made while the calls so far took less than this: a slow approach gets one call per round, as before."""


def sampled(approach: Approach, best_of: int = BEST_OF) -> float:
    """One round's sample of *approach*: the fastest of up to *best_of* calls within the time budget.

    As ``timeit`` reports the best of its repeats: the machine is shared, and other tenants' load only ever
    adds time, so the fastest of a few back-to-back calls is the steadiest estimate of what the call costs.
    ``prepare`` and ``cleanup`` run around every call (a cold listing opens a fresh connection each time).
    """
    best = spent = math.inf
    for index in range(best_of):
        if index and spent + best > BEST_OF_BUDGET_S:
            break
        if approach.prepare:
            approach.prepare()
        try:
            elapsed = _retry(lambda: timed(approach.run))
        finally:
            if approach.cleanup:
                approach.cleanup()
        spent = elapsed if index == 0 else spent + elapsed
        best = min(best, elapsed)
    return best


def interleaved(
    approaches: Sequence[Approach],
    rounds: int,
    *,
    workload: str,
    scenario: str,
    n: int | None,
    config: Config,
    warmup: bool = True,
    best_of: int = BEST_OF,
) -> list[Row]:
    """Time each approach in round-robin rounds, rotating the order every round; a round's sample is :func:`sampled`.

    Before timing, each approach runs once untimed (warm-up, and the round-trip count when it has a counter).
    *best_of* 1 times one call per round (for approaches whose ``prepare`` is itself slow).
    """
    trips: dict[str, int | None] = {}
    failed: dict[str, str] = {}
    for approach in approaches:
        if approach.prepare:
            approach.prepare()
        try:
            if approach.count is not None:
                trips[approach.name] = _retry(lambda a=approach: a.count(a.run))  # type: ignore[misc]
            elif warmup:
                _retry(approach.run)
        except Exception as exc:  # reported in the row; the other approaches still run
            failed[approach.name] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
        finally:
            if approach.cleanup:
                approach.cleanup()
    samples: dict[str, list[float]] = {a.name: [] for a in approaches}
    for index in range(rounds):
        order = list(approaches[index % len(approaches) :]) + list(approaches[: index % len(approaches)])
        for approach in order:
            if approach.name in failed or (approach.rounds is not None and index >= approach.rounds):
                continue
            try:
                samples[approach.name].append(sampled(approach, best_of))
            except Exception as exc:
                failed[approach.name] = f"failed: {type(exc).__name__}: {str(exc)[:120]}"
        config.log(f"  {scenario} N={n}: round {index + 1}/{rounds} done")
    for approach in approaches:
        if approach.name in failed:
            approach.note = f"{approach.note}; {failed[approach.name]}".lstrip("; ")
    return [
        Row(workload, scenario, a.name, n, samples[a.name], trips.get(a.name), ref=a.ref, note=a.note)
        for a in approaches
    ]


# -- round-trip counters ---------------------------------------------------------------------------------


class HttpCounter:
    """Counts HTTP requests made through :mod:`http.client` (pyVmomi and Libcloud's vSphere driver use it).

    Patched only while counting, so timed runs carry no wrapper.
    """

    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def active(self) -> Iterator[HttpCounter]:
        original = http.client.HTTPConnection.request
        counter = self

        @functools.wraps(original)
        def request(conn: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> Any:
            with counter._lock:
                counter.count += 1
            return original(conn, *args, **kwargs)

        http.client.HTTPConnection.request = request  # type: ignore[method-assign]
        try:
            yield self
        finally:
            http.client.HTTPConnection.request = original  # type: ignore[method-assign]

    def __call__(self, func: Callable[[], Any]) -> int:
        """Run *func* once and return how many HTTP requests it made."""
        self.count = 0
        with self.active():
            func()
        return self.count


LIBVIRT_LOCAL_METHODS = frozenset({"name", "UUIDString", "UUID", "ID", "connect", "c_pointer", "domain"})
"""virDomain/virConnect methods answered from the client object, without a call into the driver."""


class LibvirtCounter:
    """Counts calls into libvirt's driver API (every virConnect/virDomain/virDomainSnapshot method but local accessors).

    Through libvirtd each counted call is one RPC; in process it is one driver call.
    """

    def __init__(self) -> None:
        self.count = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[LibvirtCounter]:
        import libvirt

        saved: list[tuple[type, str, Any]] = []
        counter = self

        def wrap(original: Any) -> Any:
            @functools.wraps(original)
            def method(*args: Any, **kwargs: Any) -> Any:
                counter.count += 1
                return original(*args, **kwargs)

            return method

        for cls in (libvirt.virConnect, libvirt.virDomain, libvirt.virDomainSnapshot):
            for attr, value in list(vars(cls).items()):
                if attr.startswith("_") or attr in LIBVIRT_LOCAL_METHODS or not callable(value):
                    continue
                saved.append((cls, attr, value))
                setattr(cls, attr, wrap(value))
        try:
            yield self
        finally:
            for cls, attr, value in saved:
                setattr(cls, attr, value)

    def __call__(self, func: Callable[[], Any]) -> int:
        self.count = 0
        with self.active():
            func()
        return self.count


# -- availability -----------------------------------------------------------------------------------------


def importable(module: str) -> str | None:
    """None when *module* imports, else the reason."""
    try:
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
        importlib.import_module(module)
    except Exception as exc:
        return f"{module} does not import ({type(exc).__name__}: {exc})"
    return None


BACKEND_FILES = {
    "kvm": REPO / "backends/kvm/virtabstract_kvm/_backend.py",
    "esxi": REPO / "backends/esxi/virtabstract_esxi/_backend.py",
}
BACKEND_MODULES = {"kvm": ("virtabstract_kvm._backend", "libvirt"), "esxi": ("virtabstract_esxi._backend", "pyVmomi")}


def require_backend(name: str) -> None:
    """Raise :class:`Skip` unless the backend's package and its SDK import."""
    path = BACKEND_FILES.get(name)
    if path is not None and not path.exists():
        raise Skip(f"the {name} backend is not written yet ({path.relative_to(REPO)} missing)")
    for module in BACKEND_MODULES[name]:
        why = importable(module)
        if why:
            raise Skip(why)


def require_vcsim() -> Any:
    """The ``tests.infra.vcsim`` module once the simulator binary is built, else :class:`Skip`."""
    try:
        from tests.infra import vcsim
    except ImportError as exc:
        raise Skip(f"tests/infra/vcsim.py does not import: {exc}") from exc
    ok, why = vcsim.vcsim_available()
    if not ok:
        raise Skip(why)
    return vcsim


LIBVIRTD_PROBE_S = 20.0


def require_libvirtd(*, qemu: bool = True) -> str:
    """The qemu:///system URI with libvirtd running (started if needed), else :class:`Skip`.

    With *qemu*, the QEMU driver must also answer ``getCapabilities`` in time (it must to define domains).
    """
    try:
        from tests.infra import libvirt as infra
    except ImportError as exc:
        raise Skip(f"tests/infra/libvirt.py does not import: {exc}") from exc
    ok, why = infra.libvirt_available()
    if not ok:
        raise Skip(why)
    try:
        uri = str(infra.ensure_libvirtd())
    except infra.LibvirtUnavailable as exc:
        raise Skip(str(exc)) from exc
    if not qemu:
        return uri
    # Defining a domain needs the driver's capabilities; a wedged QEMU probe blocks that call forever.
    import subprocess

    try:
        subprocess.run(["virsh", "-c", uri, "capabilities"], capture_output=True, timeout=LIBVIRTD_PROBE_S, check=True)
    except subprocess.TimeoutExpired as exc:
        raise Skip(
            f"libvirtd does not answer getCapabilities within {LIBVIRTD_PROBE_S:.0f} s (QEMU probe stuck?)"
        ) from exc
    except (OSError, subprocess.CalledProcessError) as exc:
        raise Skip(f"virsh capabilities failed: {exc}") from exc
    return uri


def fmt_seconds(value: float) -> str:
    """Human units: µs, ms or s with 3 significant figures."""
    if value != value:  # NaN
        return "–"
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def fmt_value(value: float, unit: str) -> str:
    if unit == "s":
        return fmt_seconds(value)
    if unit == "B":
        return f"{value / 2**20:.1f} MiB"
    return f"{value:.3g} {unit}"


def env_without(*names: str) -> Mapping[str, str]:
    """The environment minus *names*."""
    return {k: v for k, v in os.environ.items() if k not in names}
