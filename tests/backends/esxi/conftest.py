"""Fixtures for the esxi backend tests: vcsim (ESX and VPX models) started once per session."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:  # tests.infra lives at the repository root
    sys.path.insert(0, str(ROOT))

from tests.infra.vcsim import VcsimInstance, run_vcsim, vcsim_available  # noqa: E402


@pytest.fixture(scope="session")
def vcsim_ok() -> None:
    ok, why = vcsim_available()
    if not ok:
        pytest.skip(why)
    pytest.importorskip("pyVmomi", reason="pyVmomi is not installed (pip install 'virtabstract[esxi]')")


@pytest.fixture(scope="session")
def esx_sim(vcsim_ok: None) -> Iterator[VcsimInstance]:
    """vcsim's ESX model: one standalone host, datacenter ha-datacenter, two VMs."""
    with run_vcsim(model="esx", vms=2) as sim:
        yield sim


@pytest.fixture(scope="session")
def vpx_sim(vcsim_ok: None) -> Iterator[VcsimInstance]:
    """vcsim's VPX model: vCenter with a cluster of 3 hosts and a standalone host."""
    with run_vcsim(model="vpx", vms=2) as sim:
        yield sim
