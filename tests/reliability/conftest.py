"""Fixtures and the counting hooks of the reliability suite.

At the end of the session the counts (faults injected and survived, inputs tried, secret scans,
concurrent operations, TLS checks, and the outcome of every reliability test) are written as JSON
to ``$VIRTABSTRACT_RELIABILITY_COUNTS`` or, by default, ``.pytest_cache/reliability-counts.json``,
and summed up in one terminal line. docs/guarantees.md quotes a run's figures.

Every test here has a hard timeout (pytest-timeout, ``DEFAULT_TIMEOUT`` unless the test sets its
own): "never a hang" is enforced, not hoped for.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from .support import CANARY, REPO, TALLY, SecretScanner, Tally, write_json

if str(REPO) not in sys.path:  # tests.infra lives at the repository root
    sys.path.insert(0, str(REPO))

HERE = Path(__file__).resolve().parent
DEFAULT_TIMEOUT = 60
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

settings.register_profile(
    "reliability",
    deadline=None,
    database=None,
    derandomize=IN_CI,  # CI: the same cases every run; locally: new ones each time
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

_outcomes: Counter[str] = Counter()
_started = time.monotonic()


def _ours(nodeid_or_path: str | os.PathLike[str]) -> bool:
    text = str(nodeid_or_path)
    return "tests/reliability/" in text.replace(os.sep, "/") or text.startswith("reliability/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _ours(item.path) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if not _ours(report.nodeid if "/" in report.nodeid else report.fspath):
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):
            _outcomes["xfailed" if report.skipped else "xpassed"] += 1
        elif report.passed:
            _outcomes["passed"] += 1
        elif report.skipped:
            _outcomes["skipped"] += 1
        else:
            _outcomes["failed" if report.when == "call" else "errors"] += 1
    elif report.when == "teardown" and report.failed:
        _outcomes["errors"] += 1


def _counts() -> dict[str, Any]:
    data = TALLY.as_dict()
    data["tests"] = dict(sorted(_outcomes.items()))
    data["failures"] = _outcomes["failed"] + _outcomes["errors"] + _outcomes["xpassed"]
    data["wall_time_s"] = round(time.monotonic() - _started, 1)
    data["ci"] = IN_CI
    return data


def counts_path(config: pytest.Config) -> Path:
    explicit = os.environ.get("VIRTABSTRACT_RELIABILITY_COUNTS")
    if explicit:
        return Path(explicit)
    return Path(config.rootpath) / ".pytest_cache" / "reliability-counts.json"


def pytest_sessionfinish(session: pytest.Session) -> None:
    if sum(_outcomes.values()) == 0:
        return
    try:
        write_json(counts_path(session.config), _counts())
    except OSError as exc:  # a read-only checkout must not fail the run
        sys.stderr.write(f"reliability: could not write the counts: {exc}\n")


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if sum(_outcomes.values()) == 0:
        return
    data = _counts()
    faults = data["faults"]
    terminalreporter.write_line(
        f"reliability: {faults['injected']} faults injected, {faults['survived']} survived; "
        f"{data['inputs']['total']} inputs tried; {data['secret_scans']['total']} secret scans; "
        f"{data['concurrent_operations']['total']} concurrent operations; "
        f"{data['tls_checks']['total']} TLS checks; tests {data['tests']}; failures {data['failures']} "
        f"-> {counts_path(config)}"
    )


# -- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


@pytest.fixture
def scanner() -> SecretScanner:
    return SecretScanner((CANARY,), TALLY)


@pytest.fixture(scope="session")
def vcsim_ok() -> None:
    from tests.infra.vcsim import vcsim_available

    pytest.importorskip("pyVmomi", reason="pyVmomi is not installed (pip install 'virtabstract[esxi]')")
    pytest.importorskip("virtabstract_esxi", reason="the esxi backend is not installed")
    ok, why = vcsim_available()
    if not ok:
        pytest.skip(why)


def sim_url(sim: Any, scheme: str = "esx", path: str = "/", *, host: str | None = None,
            port: int | None = None, password: str | None = None, **query: str) -> str:  # fmt: skip
    """The virtabstract URL of a simulator (or of a proxy in front of it: host/port)."""
    options = dict(query)
    if sim.protocol == "http":
        options.setdefault("protocol", "http")
    text = "&".join(f"{k}={v}" for k, v in options.items())
    from urllib.parse import quote

    secret = quote(sim.password if password is None else password, safe="")
    where = f"{host or sim.host}:{port or sim.port}"
    return f"{scheme}://{sim.username}:{secret}@{where}{path}" + (f"?{text}" if text else "")


@pytest.fixture(scope="module")
def esx_sim(vcsim_ok: None) -> Iterator[Any]:
    """A module's own ESX simulator (tests change its inventory)."""
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="esx", vms=2) as sim:
        yield sim


@pytest.fixture(scope="module")
def vpx_sim(vcsim_ok: None) -> Iterator[Any]:
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="vpx", vms=2) as sim:
        yield sim


def kvm_available() -> tuple[bool, str]:
    """Whether the kvm backend has landed and libvirt-python imports (for the test driver)."""
    try:
        import libvirt  # noqa: F401
        import virtabstract_kvm  # noqa: F401
    except ImportError as exc:
        return False, f"the kvm backend is not available yet ({exc})"
    from virtabstract import get_plugin_manager

    try:
        get_plugin_manager().backend_for("test")
    except Exception as exc:
        return False, f"the kvm backend does not serve test:/// yet ({exc})"
    return True, ""


@pytest.fixture(scope="session")
def kvm_ok() -> None:
    ok, why = kvm_available()
    if not ok:
        pytest.skip(why)
