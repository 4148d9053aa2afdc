"""The shipped contract suite against libvirt's in-process test driver (``test:///default``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import virtabstract
from virtabstract.testing.contract import FullContract

pytest.importorskip("libvirt", reason="libvirt-python is not installed")


class TestKVMOnTestDriver(FullContract):
    """Everything the test driver can do; guest-agent areas skip by capability."""

    spec_network = "default"
    spec_storage = "default-pool"
    # memory first: the running-VM resource test uses the first field, and the test driver has no live cputune
    resource_fields = ("memory_limit_mib", "memory_reservation_mib", "disk_weight", "cpu_limit_mhz", "cpu_shares")

    @pytest.fixture
    def hypervisor(self) -> Iterator[virtabstract.Hypervisor]:
        with virtabstract.connect("test:///default") as hv:
            yield hv
