"""Domain event callbacks are registered on demand, and every cache is right with or without them.

A registered callback costs every start and stop a GIL hand-off on libvirt's event thread, so a
connection registers the lifecycle callback only for a subscriber, and the cache-invalidating
events only for a listing. A state query never registers anything: the managed-save memo is used
only while a listing or a subscriber keeps the callback registered anyway.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import virtabstract
from virtabstract import PowerState, VMSpec
from virtabstract.errors import InvalidState

libvirt = pytest.importorskip("libvirt")

from virtabstract_kvm._connection import CACHE, LIFECYCLE  # noqa: E402

ALL = frozenset(name for name in CACHE if hasattr(libvirt, name))


@contextlib.contextmanager
def _vm(hv: Any, name: str) -> Iterator[Any]:
    made = hv.vms.create(VMSpec(name=name, tags=["lazy"]))
    try:
        yield made
    finally:
        if made.state is not PowerState.STOPPED:
            made.power_off()
        made.delete()


def _wait_for(predicate: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """Poll until *predicate* holds (events arrive on libvirt's event thread); fail with *what* otherwise."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def _state_of_stopped(hv: Any, vm: Any) -> None:
    assert vm.state is PowerState.STOPPED


def _round_trip_state(hv: Any, vm: Any) -> None:
    hv.backend.lc.in_process = False  # the policy of every URI but test:///
    assert vm.state is PowerState.STOPPED


def _power_and_snapshot(hv: Any, vm: Any) -> None:
    vm.start()
    assert vm.state is PowerState.RUNNING
    vm.power_off()
    vm.snapshots.create("lazy").delete()
    vm.info()


def _subscribe(hv: Any, vm: Any) -> None:
    hv.backend.subscribe_events(lambda *_a: None)()


# (what the connection does, the callbacks it then has registered)
REGISTRATION_CASES = [
    pytest.param(_state_of_stopped, frozenset(), id="state-in-process"),
    pytest.param(_power_and_snapshot, frozenset(), id="power-snapshot-info"),
    pytest.param(_round_trip_state, frozenset(), id="state-round-trip"),
    pytest.param(_subscribe, frozenset(LIFECYCLE), id="subscribe"),
    pytest.param(lambda hv, vm: hv.vms.list_summaries(), ALL, id="list-summaries"),
    pytest.param(lambda hv, vm: hv.vms.list_info(), ALL, id="list-info"),
]


@pytest.mark.parametrize(("action", "registered"), REGISTRATION_CASES)
def test_callbacks_are_registered_only_when_needed(action: Any, registered: frozenset[str]) -> None:
    with virtabstract.connect("test:///default") as hv, _vm(hv, "vatest-lazy-reg") as vm:
        lc = hv.backend.lc
        assert not lc._callbacks
        action(hv, vm)
        assert set(lc._callbacks) == registered
        assert lc.caching is (registered == ALL)
        assert lc.lifecycle_watched is bool(registered)


def test_nothing_is_registered_with_events_off() -> None:
    with virtabstract.connect("test:///default", events=False) as hv, _vm(hv, "vatest-lazy-off") as vm:
        lc = hv.backend.lc
        lc.in_process = False
        hv.vms.list_summaries()
        assert vm.state is PowerState.STOPPED
        assert not lc._callbacks
        assert not lc.caching
        assert not lc.no_managed_save
        assert not lc.summaries


@pytest.mark.parametrize("events", [True, False], ids=["callbacks", "no-callbacks"])
def test_listing_sees_changes_by_another_client(events: bool) -> None:
    """Cached XML is dropped by events; without callbacks nothing is cached, so nothing can go stale."""
    with virtabstract.connect("test:///default", events=events) as hv, _vm(hv, "vatest-lazy-list") as vm:
        assert {s.id: s for s in hv.vms.list_summaries()}[vm.id].tags == ("lazy",)
        assert bool(hv.backend.lc.summaries) is events
        with virtabstract.connect("test:///default", events=False) as other:
            other.vms.get(vm.id).reconfigure(tags=["changed"])
            other.vms.get(vm.id).start()

        def fresh() -> bool:
            summary = {s.id: s for s in hv.vms.list_summaries()}[vm.id]
            return summary.tags == ("changed",) and summary.state is PowerState.RUNNING

        if events:
            _wait_for(fresh, "the metadata and lifecycle events to drop the cached summary")
        else:
            assert fresh()
        assert {i.id: i for i in hv.vms.list_info()}[vm.id].tags == ("changed",)


def test_reconnect_registers_what_was_asked_for() -> None:
    with virtabstract.connect("test:///default") as hv, _vm(hv, "vatest-lazy-reconnect") as vm:
        lc = hv.backend.lc
        hv.backend.subscribe_events(lambda *_a: None)
        assert set(lc._callbacks) == set(LIFECYCLE)
        hv.vms.list_summaries()
        assert set(lc._callbacks) == ALL
        lc.lost = True  # what the close callback does
        assert not lc.caching and not lc.lifecycle_watched
        assert vm.state is PowerState.STOPPED  # reconnects first
        assert lc.reconnects == 1
        assert set(lc._callbacks) == ALL
        assert lc.caching


class _RefusingConn:
    """A virConnect whose driver refuses one event id (counting the attempts)."""

    def __init__(self, conn: Any, refused: int) -> None:
        self._conn = conn
        self.refused = refused
        self.attempts = 0

    def domainEventRegisterAny(self, dom: Any, event_id: int, cb: Any, opaque: Any) -> int:
        if event_id == self.refused:
            self.attempts += 1
            raise libvirt.libvirtError("event not supported")
        return int(self._conn.domainEventRegisterAny(dom, event_id, cb, opaque))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_refused_event_disables_the_xml_cache_and_is_not_asked_again() -> None:
    with virtabstract.connect("test:///default") as hv, _vm(hv, "vatest-lazy-refused") as vm:
        lc = hv.backend.lc
        refusing = _RefusingConn(lc.conn, libvirt.VIR_DOMAIN_EVENT_ID_TUNABLE)
        lc.conn = refusing
        try:
            hv.vms.list_summaries()
            hv.vms.list_summaries()
            assert refusing.attempts == 1
            assert not lc.caching  # a change it would announce could go unseen: read every time
            assert not lc.summaries
            assert lc.lifecycle_watched  # the lifecycle callback itself was registered
            lc.in_process = False
            assert vm.state is PowerState.STOPPED
            assert vm.id in lc.no_managed_save
        finally:
            lc.conn = refusing._conn


def test_error_messages_name_a_vm_renamed_by_another_client() -> None:
    """Without the lifecycle callback a cached handle's name() can lag a rename; messages read it fresh."""
    with virtabstract.connect("test:///default") as hv, _vm(hv, "vatest-lazy-old") as vm:
        assert vm.state is PowerState.STOPPED  # the handle is cached now
        other = libvirt.open("test:///default")
        try:
            other.lookupByUUIDString(vm.id).rename("vatest-lazy-new", 0)
            with pytest.raises(InvalidState, match="vatest-lazy-new"):
                vm.power_off()
            with pytest.raises(InvalidState, match="vatest-lazy-new"):
                vm.pause()
        finally:
            other.lookupByUUIDString(vm.id).rename("vatest-lazy-old", 0)
            other.close()


@pytest.mark.libvirtd
def test_through_libvirtd_a_state_query_registers_nothing(tmp_path: Path, libvirtd_infra: Any) -> None:
    infra = libvirtd_infra
    # a node file of its own: libvirtd opens a private test driver for it, shared with no other run
    name = infra.run_prefix("lazy") + "vm"
    node = tmp_path / "node.xml"
    node.write_text(
        f"<node><domain type='test'><name>{name}</name><memory unit='MiB'>64</memory>"
        "<os><type>hvm</type></os></domain></node>"
    )
    node.chmod(0o644)
    with virtabstract.connect(f"test+unix://{node}") as hv:
        lc = hv.backend.lc
        assert not lc.in_process
        vm = hv.vms.get(name)
        if vm.state is PowerState.RUNNING:  # node-file domains start running
            vm.power_off()
        assert vm.state is PowerState.STOPPED  # destroyed: no image can exist, one RPC
        assert not lc._callbacks
        vm.start()
        vm.suspend()
        assert vm.state is PowerState.SUSPENDED  # saved: the image is asked about
        vm.start()
        assert vm.state is PowerState.RUNNING
        vm.power_off()
        assert vm.state is PowerState.STOPPED
        assert not lc._callbacks
