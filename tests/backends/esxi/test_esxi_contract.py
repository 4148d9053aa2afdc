"""The shipped contract suite against vcsim's ESX model (standalone host) and VPX model (vCenter).

vcsim 0.24 cannot do some things a real ESXi/vCenter does; those tests are skipped here
with the reason, and what they cover is tested elsewhere:

* guest operations (no VMware Tools, no process/file operations without Docker) →
  ``test_esxi_guest.py`` against a fake GuestOperationsManager;
* ``RebootGuest`` (not implemented: MethodNotFound) → ``test_esxi_units.py``;
* ``AcquireTicket`` (not implemented) → console is UnsupportedOperation on vcsim;
* snapshot revert only moves the current pointer (config and power state are not restored).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import pytest
from esxi_support import sim_url

import virtabstract
from virtabstract import VM, Hypervisor
from virtabstract.testing.contract import ALL_RESOURCE_FIELDS, FullContract

pytestmark = pytest.mark.vcsim

VCSIM_SKIPS = {
    "test_power_reboot": "vcsim 0.24 does not implement RebootGuest (MethodNotFound)",
    "test_lifecycle_console": "vcsim 0.24 does not implement AcquireTicket",
    "test_snapshot_revert_restores_config": "vcsim 0.24 RevertToSnapshot only moves the current-snapshot pointer",
    "test_snapshot_revert_disk_only_stops_running_vm": "vcsim 0.24 RevertToSnapshot does not change the power state",
    "test_snapshot_with_memory": "vcsim 0.24 RevertToSnapshot does not change the power state",
    "test_snapshot_revert_to_older": "vcsim 0.24 RevertToSnapshot only moves the current-snapshot pointer",
    "test_clone_full": "vcsim 0.24 CloneVM_Task copies the source's MAC addresses (vCenter generates new ones)",
    "test_clone_linked": "vcsim 0.24 CloneVM_Task copies the source's MAC addresses (vCenter generates new ones)",
    "test_clone_from_snapshot": "vcsim 0.24 CloneVM_Task ignores spec.snapshot (clones the current state)",
}


class _VcsimContract(FullContract):
    spec_network: ClassVar[str | None] = "VM Network"
    duplicate_vm_names: ClassVar[bool | None] = True
    # vSphere has no per-VM disk weight (disk shares are per virtual disk): set_resources refuses it.
    resource_fields: ClassVar[tuple[str, ...]] = tuple(f for f in ALL_RESOURCE_FIELDS if f != "disk_weight")

    @pytest.fixture(autouse=True)
    def _vcsim_limits(self, request: pytest.FixtureRequest) -> None:
        reason = VCSIM_SKIPS.get(request.node.originalname)
        if reason:
            pytest.skip(reason)

    @pytest.fixture
    def guest_vm(self) -> VM:
        pytest.skip("vcsim 0.24 runs no guest OS and no VMware Tools: guest operations are tested against fakes")

    @pytest.fixture
    def graceful_vm(self, running_vm: VM) -> VM:
        # vcsim's ShutdownGuest works without Tools, so a fresh VM honours graceful requests.
        return running_vm


class TestContractESX(_VcsimContract):
    """vcsim ESX model: one standalone ESXi host (no cloning)."""

    @pytest.fixture
    def hypervisor(self, esx_sim) -> Iterator[Hypervisor]:
        with virtabstract.connect(sim_url(esx_sim, "esx")) as hv:
            yield hv


class TestContractVPX(_VcsimContract):
    """vcsim VPX model: vCenter with a DRS cluster and a standalone host."""

    @pytest.fixture
    def hypervisor(self, vpx_sim) -> Iterator[Hypervisor]:
        with virtabstract.connect(sim_url(vpx_sim, "vpx")) as hv:
            yield hv
