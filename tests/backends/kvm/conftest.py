"""Shared setup of the KVM backend tests: ``tests.infra`` importable (the repository root on sys.path), libvirtd."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def libvirtd_infra() -> Any:
    """``tests.infra.libvirt`` with libvirtd running (started if needed); the test is skipped, with the reason, else."""
    infra = pytest.importorskip("tests.infra.libvirt")
    ok, why = infra.libvirt_available()
    if not ok:
        pytest.skip(why)
    try:
        infra.ensure_libvirtd()
    except infra.LibvirtUnavailable as exc:
        pytest.skip(str(exc))
    return infra
