"""The backend contract suite: mixin test classes every virtabstract backend runs.

A backend (ours or a third party's) runs the whole contract by providing one
fixture, the connection under test::

    import pytest
    import virtabstract
    from virtabstract.testing.contract import FullContract

    class TestMyBackend(FullContract):
        @pytest.fixture
        def hypervisor(self):
            with virtabstract.connect("mybackend://...") as hv:
                yield hv

Or pick areas: ``class TestMyBackend(PowerContract, SnapshotContract): ...``.

Each test skips, with a reason, when the connection does not declare the
capability it needs; :meth:`ErrorsContract.test_errors_undeclared_capabilities_raise_unsupported`
checks that undeclared operations really raise
:class:`~virtabstract.errors.UnsupportedOperation`. Tests assert real effects
(the state really changed, the snapshot really exists, the bytes really
round-trip) and wait with the facade's waits, so they hold for backends whose
transitions are synchronous (libvirt's test driver, the mock) and asynchronous
(QEMU, vSphere tasks).

What a backend may tune (class attributes, see :class:`ContractBase`):
``name_prefix``, ``timeouts`` (:class:`ContractTimeouts`), ``spec_guest_os``,
``spec_network``, ``spec_storage``, ``spec_memory``, ``spec_disk_size``,
``duplicate_vm_names``, ``resource_fields``, ``guest_tmp_dir``, ``guest_shell``;
and fixtures: ``contract_spec`` (builds each VM's spec), ``guest_spec``,
``guest_vm`` (a running VM whose guest agent answers), ``vm_factory``.

Every VM a test creates gets a name starting with ``name_prefix`` plus a random
token, and is powered off and deleted after the test, even when it fails,
together with every other VM whose name has that prefix (clones included).
"""

from __future__ import annotations

from .._factory import ContractTimeouts, SpecFactory, VMFactory, make_spec_factory
from ._base import ALL_RESOURCE_FIELDS, ContractBase, assert_state, require
from .clone import CloneContract
from .devices import DevicesContract
from .errors import ErrorsContract
from .guest import GuestContract
from .inventory import InventoryContract
from .lifecycle import LifecycleContract
from .power import PowerContract
from .reconfigure import ReconfigureContract
from .resources import ResourcesContract
from .snapshots import SnapshotContract

__all__ = [
    "ALL_RESOURCE_FIELDS",
    "CloneContract",
    "ContractBase",
    "ContractTimeouts",
    "DevicesContract",
    "ErrorsContract",
    "FullContract",
    "GuestContract",
    "InventoryContract",
    "LifecycleContract",
    "PowerContract",
    "ReconfigureContract",
    "ResourcesContract",
    "SnapshotContract",
    "SpecFactory",
    "VMFactory",
    "assert_state",
    "make_spec_factory",
    "require",
]


class FullContract(
    InventoryContract,
    LifecycleContract,
    PowerContract,
    SnapshotContract,
    CloneContract,
    ReconfigureContract,
    ResourcesContract,
    DevicesContract,
    GuestContract,
    ErrorsContract,
):
    """Every contract area at once: what a complete backend runs."""
