"""The mock backend runs the whole backend contract: in memory, file-backed, and with capabilities removed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import virtabstract
from virtabstract import Hypervisor
from virtabstract.testing.contract import FullContract

NARROWED = "-pause,-suspend,-reconfigure_live,-snapshot_memory,-linked_clone,-guest_files,-resources,-events,-autostart"


class TestMockInMemory(FullContract):
    """``mock://`` with the manual clock: every wait finishes at once."""

    duplicate_vm_names = True  # the mock documents that its backend allows duplicate names

    @pytest.fixture
    def hypervisor(self) -> Iterator[Hypervisor]:
        with virtabstract.connect("mock://?clock=manual") as hv:
            yield hv


class TestMockFileBacked(FullContract):
    """``mock:///…/lab.json`` on the real clock: transitions take (a little) real time, as on QEMU."""

    duplicate_vm_names = True

    @pytest.fixture
    def hypervisor(self, tmp_path: Path) -> Iterator[Hypervisor]:
        url = "mock://" + (tmp_path / "lab.json").as_posix()
        with virtabstract.connect(url, agent_delay=0.05, ip_delay=0.05, shutdown_delay=0.05) as hv:
            yield hv


class TestMockNarrowed(FullContract):
    """Capabilities removed by the URL: those tests skip, and the operations raise UnsupportedOperation."""

    @pytest.fixture
    def hypervisor(self) -> Iterator[Hypervisor]:
        with virtabstract.connect(f"mock://?clock=manual&capabilities={NARROWED}") as hv:
            yield hv
