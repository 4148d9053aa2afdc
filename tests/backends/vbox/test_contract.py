"""The shipped contract suite against the fake VBoxManage (every version profile), and a real VirtualBox on request.

* Fake VBoxManage: always on. The fake runs in-process through the transport's
  ``vboxmanage_runner`` seam (one Python process per call would take minutes);
  tests/backends/vbox/test_transport.py keeps exercising the real subprocess path.
* Real VirtualBox: ``VIRTABSTRACT_VBOX_REAL=1`` (optionally ``VIRTABSTRACT_VBOX_URL``,
  ``VIRTABSTRACT_VBOX_GUEST_USER``/``_PASSWORD``); see backends/vbox/README.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

import virtabstract
from virtabstract.testing.contract import FullContract

from .conftest import GUEST_PASSWORD, GUEST_USER, FakeVBox

REAL_ON = os.environ.get("VIRTABSTRACT_VBOX_REAL") == "1"


class TestVBoxContractOnFake(FullContract):
    """Contract against the fake VBoxManage, once per version profile (6.1, 7.0, 7.1, 7.2)."""

    duplicate_vm_names = True
    resource_fields = ()  # cpu_limit_mhz is rounded to whole percents of the execution cap

    @pytest.fixture
    def hypervisor(self, fake_vbox: FakeVBox) -> Iterator[virtabstract.Hypervisor]:
        with virtabstract.connect(
            "vbox:///session?transport=vboxmanage", vboxmanage_runner=fake_vbox.runner(),
            guest_username=GUEST_USER, guest_password=GUEST_PASSWORD,
        ) as hv:  # fmt: skip
            yield hv


@pytest.mark.skipif(not REAL_ON, reason="set VIRTABSTRACT_VBOX_REAL=1 to run the contract against a real VirtualBox")
class TestVBoxContractReal(FullContract):
    """Contract against the local VirtualBox (creates and deletes VMs named vatest-*)."""

    duplicate_vm_names = True
    resource_fields = ()

    @pytest.fixture
    def hypervisor(self) -> Iterator[virtabstract.Hypervisor]:
        options: dict[str, Any] = {}
        if os.environ.get("VIRTABSTRACT_VBOX_GUEST_USER"):
            options["guest_username"] = os.environ["VIRTABSTRACT_VBOX_GUEST_USER"]
            options["guest_password"] = os.environ.get("VIRTABSTRACT_VBOX_GUEST_PASSWORD", "")
        url = os.environ.get("VIRTABSTRACT_VBOX_URL", "vbox:///session?transport=vboxmanage")
        with virtabstract.connect(url, **options) as hv:
            yield hv


class TestVBoxContractOnFakeAPI(FullContract):
    """Contract against the API transport over the fake COM layer, once per version profile.

    Connected with the fake guest's account (fake_com/guest.py), so the guest, console and
    reboot tests run as on the VBoxManage fake. Areas whose capabilities the API transport
    does not declare skip, and ErrorsContract checks they raise UnsupportedOperation.
    """

    duplicate_vm_names = True
    resource_fields = ()

    @pytest.fixture
    def hypervisor(self, fake_com: Any) -> Iterator[virtabstract.Hypervisor]:
        with virtabstract.connect(
            "vbox:///session?transport=api", vboxapi_module=fake_com,
            guest_username=GUEST_USER, guest_password=GUEST_PASSWORD,
        ) as hv:  # fmt: skip
            yield hv
        assert fake_com.server.locked_sessions() == [], "a session was left locked"
