"""The shipped contract suite against the fake VBoxManage, and against a real VirtualBox on request.

* Fake: set ``VIRTABSTRACT_VBOX_CONTRACT=1`` (slow: every VBoxManage call is a Python process).
* Real VirtualBox: ``VIRTABSTRACT_VBOX_REAL=1`` (optionally ``VIRTABSTRACT_VBOX_URL``,
  ``VIRTABSTRACT_VBOX_GUEST_USER``/``_PASSWORD``); see backends/vbox/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

import virtabstract

try:
    from virtabstract.testing.contract import FullContract as _Contract
except ImportError:  # the suite is still being assembled: use the mixins that exist
    from virtabstract.testing.contract.inventory import InventoryContract
    from virtabstract.testing.contract.lifecycle import LifecycleContract
    from virtabstract.testing.contract.power import PowerContract
    from virtabstract.testing.contract.snapshots import SnapshotContract

    class _Contract(InventoryContract, LifecycleContract, PowerContract, SnapshotContract):  # type: ignore[no-redef]
        """The available contract mixins."""


from .conftest import GUEST_PASSWORD, GUEST_USER, FakeVBox

FAKE_ON = os.environ.get("VIRTABSTRACT_VBOX_CONTRACT") == "1"
REAL_ON = os.environ.get("VIRTABSTRACT_VBOX_REAL") == "1"


@pytest.mark.skipif(not FAKE_ON, reason="set VIRTABSTRACT_VBOX_CONTRACT=1 to run the contract against the fake")
class TestVBoxContractOnFake(_Contract):
    """Contract against the fake VBoxManage, once per version profile."""

    duplicate_vm_names = True
    resource_fields = ()  # cpu_limit_mhz is rounded to whole percents of the execution cap

    @pytest.fixture
    def hypervisor(self, fake_vbox: FakeVBox) -> Iterator[virtabstract.Hypervisor]:
        with virtabstract.connect(
            "vbox:///session?transport=vboxmanage", vboxmanage=str(fake_vbox.exe),
            guest_username=GUEST_USER, guest_password=GUEST_PASSWORD,
        ) as hv:  # fmt: skip
            yield hv


@pytest.mark.skipif(not REAL_ON, reason="set VIRTABSTRACT_VBOX_REAL=1 to run the contract against a real VirtualBox")
class TestVBoxContractReal(_Contract):
    """Contract against the local VirtualBox (creates and deletes VMs named vatest-*)."""

    duplicate_vm_names = True
    resource_fields = ()

    @pytest.fixture
    def hypervisor(self) -> Iterator[virtabstract.Hypervisor]:
        options = {}
        if os.environ.get("VIRTABSTRACT_VBOX_GUEST_USER"):
            options["guest_username"] = os.environ["VIRTABSTRACT_VBOX_GUEST_USER"]
            options["guest_password"] = os.environ.get("VIRTABSTRACT_VBOX_GUEST_PASSWORD", "")
        url = os.environ.get("VIRTABSTRACT_VBOX_URL", "vbox:///session?transport=vboxmanage")
        with virtabstract.connect(url, **options) as hv:
            yield hv
