"""libvirt's event loop starts only when something needs it; a socket connection opened without it is reopened.

A remote-driver connection (``test+unix://``, ``qemu:///system``) opened after libvirt's default event
loop is registered has its socket watched by the loop, and every RPC then costs 7 to 20 % more (the
client disables and re-enables the watch around each call, waking the loop thread). So
``LibvirtConnection.open`` starts the loop only for remote URIs (keepalive needs it), and the first
need for events (a listing, a subscriber) starts it and reopens a socket connection so that libvirt
attaches it; the in-process test driver needs no reopen (it adds its event timer when a callback is
registered).

The loop is process-global and cannot be unregistered: every check of "not started" runs in a
fresh interpreter (``subprocess.run([sys.executable, "-c", ...])``), which prints its findings as
one JSON line. Objects on the shared libvirtd are named with a run prefix and removed afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

libvirt = pytest.importorskip("libvirt")

ROOT = Path(__file__).resolve().parents[3]

_PRELUDE = """
import json, os, subprocess, sys, time
import libvirt
import virtabstract
from virtabstract import Capability, PowerState, VMSpec
from virtabstract.errors import UnsupportedOperation
from virtabstract_kvm._events import event_loop_running

out = {}


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def power_cycle(vm):  # state, start, state, power off, state: the verbs that must not start the loop
    states = [vm.state]
    vm.start()
    states.append(vm.state)
    vm.power_off()
    states.append(vm.state)
    return [s.value for s in states]


def domain_xml(name, uuid, memory):
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid}</uuid><memory unit='MiB'>{memory}</memory>"
        "<os><type>hvm</type></os></domain>"
    )
"""


def _run(body: str, *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run *body* (after the prelude) in a fresh interpreter; return the dict it left in ``out``."""
    code = _PRELUDE + textwrap.dedent(body) + '\nprint("RESULT " + json.dumps(out))\n'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env
    )
    assert done.returncode == 0, f"the child failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the child printed no result:\n{done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(lines[-1].removeprefix("RESULT "))
    return result


@pytest.fixture(scope="module")
def infra(libvirtd_infra: Any) -> Any:
    """tests.infra.libvirt with libvirtd running (skip otherwise): the shared fixture, under this module's name."""
    return libvirtd_infra


@contextlib.contextmanager
def _prefixed(infra: Any, uri: str, label: str) -> Iterator[str]:
    """A run prefix for objects on *uri*; whatever the child left behind with it is removed afterwards."""
    prefix = infra.run_prefix(label)
    try:
        yield prefix
    finally:
        conn = libvirt.open(uri)
        try:
            for dom in conn.listAllDomains(0):
                if dom.name().startswith(prefix):
                    with contextlib.suppress(libvirt.libvirtError):
                        if dom.isActive():
                            dom.destroy()
                    with contextlib.suppress(libvirt.libvirtError):
                        dom.undefine()
        finally:
            conn.close()


# -- the in-process test driver -----------------------------------------------------------------------------


def test_in_process_driver_works_without_the_loop_and_gets_events_once_it_runs() -> None:
    out = _run("""
        with virtabstract.connect("test:///default") as hv:
            lc = hv.backend.lc
            out["capability"] = Capability.EVENTS in hv.capabilities
            vm = hv.vms.create(VMSpec(name="vatest-evloop-inproc"))
            try:
                out["states"] = power_cycle(vm)
                out["loop_after_ops"] = event_loop_running()
                first = lc.conn
                seen = []
                unsubscribe = hv.backend.subscribe_events(lambda uuid, state, native: seen.append((uuid, state)))
                out["loop_after_subscribe"] = event_loop_running()
                out["same_conn"] = lc.conn is first
                out["reconnects"] = lc.reconnects
                other = libvirt.open("test:///default")  # the same in-process driver, another client
                dom = other.lookupByUUIDString(vm.id)
                dom.create()
                out["started_event"] = wait_for(lambda: (vm.id, PowerState.RUNNING) in seen)
                dom.destroy()
                out["stopped_event"] = wait_for(lambda: (vm.id, PowerState.STOPPED) in seen)
                other.close()
                unsubscribe()
            finally:
                vm.delete()
    """)
    assert out["capability"] is True  # events are enabled although the loop does not run yet
    assert out["states"] == ["stopped", "running", "stopped"]
    assert out["loop_after_ops"] is False
    assert out["loop_after_subscribe"] is True
    assert out["same_conn"] is True and out["reconnects"] == 0  # in process: nothing to reattach
    assert out["started_event"] and out["stopped_event"]


# -- through libvirtd ------------------------------------------------------------------------------------------

_THROUGH_LIBVIRTD = """
    uri, prefix, trigger = sys.argv[1:4]
    name, uuid = prefix + "vm", "5a1e0000-0000-4000-8000-" + os.urandom(6).hex()
    raw = libvirt.open(uri)  # the other client, opened before any loop: it makes the changes
    raw.defineXML(domain_xml(name, uuid, 64))
    try:
        with virtabstract.connect(uri) as hv:
            lc = hv.backend.lc
            out["capability"] = Capability.EVENTS in hv.capabilities
            vm = hv.vms.get(name)
            out["states"] = power_cycle(vm)
            out["loop_after_ops"] = event_loop_running()
            out["attached_before"] = lc._attached
            out["memo_before"] = bool(lc._domains)
            first = lc.conn
            seen = []

            def record(vm_id, state, native):
                if vm_id == uuid:
                    seen.append(state)

            if trigger == "subscribe":
                unsubscribe = hv.backend.subscribe_events(record)
            else:
                getattr(hv.vms, trigger)()
            out["loop_after_trigger"] = event_loop_running()
            out["reopened"] = lc.conn is not first
            out["attached_after"] = lc._attached
            out["reconnects"] = lc.reconnects
            if trigger == "subscribe":
                out["memo_reset"] = not lc._domains and not lc.no_image_while_unknown
            else:
                unsubscribe = hv.backend.subscribe_events(record)
            second = lc.conn
            dom = raw.lookupByUUIDString(uuid)
            dom.create()
            out["started_event"] = wait_for(lambda: PowerState.RUNNING in seen)
            dom.destroy()
            out["stopped_event"] = wait_for(lambda: PowerState.STOPPED in seen)

            def memory():
                return {s.id: s for s in hv.vms.list_summaries()}[uuid].memory_mib

            out["memory_before"] = memory()
            out["warm"] = lc.caching and uuid in lc.summaries
            raw.defineXML(domain_xml(name, uuid, 96))  # another client changes the memory: DEFINED/UPDATED
            out["memory_seen"] = wait_for(lambda: memory() == 96)
            out["kept_conn"] = lc.conn is second
            out["reconnects_end"] = lc.reconnects
            out["loop_at_end"] = event_loop_running()
            unsubscribe()
    finally:
        dom = raw.lookupByUUIDString(uuid)
        if dom.isActive():
            dom.destroy()
        dom.undefine()
        raw.close()
"""


@pytest.mark.libvirtd
@pytest.mark.parametrize("trigger", ["subscribe", "list_summaries", "list_info"])
def test_through_libvirtd_the_first_need_for_events_starts_the_loop_and_reopens(infra: Any, trigger: str) -> None:
    """A ``test+unix://`` connection runs without the loop; a subscriber or a listing starts it and reopens.

    Then lifecycle events of changes made by another client arrive, and a warm listing sees another
    client's redefinition (its cached XML dropped by the event).
    """
    uri = "test+unix:///default"  # libvirtd's shared default test driver: every client sees the same domains
    with _prefixed(infra, uri, "evloop") as prefix:
        out = _run(_THROUGH_LIBVIRTD, uri, prefix, trigger)
    assert out["capability"] is True
    assert out["states"] == ["stopped", "running", "stopped"]
    assert out["loop_after_ops"] is False, "a state query, start and stop must not start the event loop"
    assert out["attached_before"] is False and out["memo_before"] is True
    assert out["loop_after_trigger"] is True
    assert out["reopened"] is True and out["attached_after"] is True
    assert out["reconnects"] == 0, "reopening for events is not a loss"
    if trigger == "subscribe":
        assert out["memo_reset"] is True  # handles and memos belong to the connection they came from
    assert out["started_event"] is True, "no lifecycle event for a start by another client"
    assert out["stopped_event"] is True, "no lifecycle event for a stop by another client"
    assert out["memory_before"] == 64 and out["warm"] is True
    assert out["memory_seen"] is True, "the warm listing kept the memory from before another client's change"
    assert out["kept_conn"] is True and out["reconnects_end"] == 0  # attached once: never reopened again


@pytest.mark.libvirtd
@pytest.mark.parametrize("uri", ["test:///default", "test+unix:///default"])
def test_events_off_never_starts_the_loop(infra: Any, uri: str) -> None:
    out = _run(
        """
        uri = sys.argv[1]
        with virtabstract.connect(uri + "?events=0") as hv:
            lc = hv.backend.lc
            first = lc.conn
            out["capability"] = Capability.EVENTS in hv.capabilities
            hv.vms.list_summaries()
            hv.vms.list_info()
            try:
                hv.backend.subscribe_events(lambda *a: None)
                out["subscribe"] = "accepted"
            except UnsupportedOperation:
                out["subscribe"] = "unsupported"
            out["loop"] = event_loop_running()
            out["same_conn"] = lc.conn is first
            out["callbacks"] = sorted(lc._callbacks)
        """,
        uri,
    )
    assert out == {
        "capability": False,
        "subscribe": "unsupported",
        "loop": False,
        "same_conn": True,
        "callbacks": [],
    }


@pytest.mark.libvirtd
def test_remote_uri_starts_the_loop_at_open_for_keepalive(infra: Any, tmp_path: Path) -> None:
    """A remote-driver transport (``ext``, here a local relay) gets the loop at open: keepalive needs it.

    The connection is attached from the start, so a subscriber needs no reopen.
    """
    relay = infra.write_ext_relay(tmp_path / "relay.py")
    uri = f"test+ext:///default?command={relay}"
    with _prefixed(infra, "test+unix:///default", "evloop-ext") as prefix:
        out = _run(
            """
            uri, prefix = sys.argv[1:3]
            name, uuid = prefix + "vm", "5a1e0000-0000-4000-8000-" + os.urandom(6).hex()
            raw = libvirt.open("test+unix:///default")
            raw.defineXML(domain_xml(name, uuid, 64))
            try:
                with virtabstract.connect(uri) as hv:
                    lc = hv.backend.lc
                    out["remote"] = lc.is_remote
                    out["loop_at_open"] = event_loop_running()
                    out["attached"] = lc._attached
                    first = lc.conn
                    seen = []
                    unsubscribe = hv.backend.subscribe_events(lambda vm_id, state, native: seen.append(vm_id))
                    out["same_conn"] = lc.conn is first
                    raw.lookupByUUIDString(uuid).create()
                    out["event"] = wait_for(lambda: uuid in seen)
                    unsubscribe()
            finally:
                dom = raw.lookupByUUIDString(uuid)
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
                raw.close()
            """,
            uri,
            prefix,
        )
    assert out == {"remote": True, "loop_at_open": True, "attached": True, "same_conn": True, "event": True}


@pytest.mark.libvirtd
def test_without_the_loop_a_dropped_connection_is_met_by_the_next_read(infra: Any) -> None:
    """No loop watches the socket, so no close callback: the next read meets the dead socket and reconnects once."""
    if os.geteuid() != 0 or shutil.which("virt-admin") is None:
        pytest.skip("needs root and virt-admin (to drop our client from libvirtd)")
    uri = infra.ensure_libvirtd()
    with _prefixed(infra, uri, "evloop-cut") as prefix:
        out = _run(
            """
            uri, prefix = sys.argv[1:3]

            def admin(*args):
                return subprocess.run(["virt-admin", *args], check=True, capture_output=True, text=True).stdout

            def ours():
                mine = set()
                for line in admin("client-list", "libvirtd").splitlines()[2:]:
                    if line.strip():
                        client = line.split()[0]
                        try:
                            info = admin("client-info", "libvirtd", client)
                        except subprocess.CalledProcessError:
                            continue
                        for row in info.splitlines():
                            key, _, value = row.partition(":")
                            if key.strip() == "unix_process_id" and value.strip() == str(os.getpid()):
                                mine.add(client)
                return mine

            raw = libvirt.open(uri)
            dom = raw.defineXML(
                f"<domain type='qemu'><name>{prefix}vm</name><memory unit='MiB'>32</memory>"
                "<os><type>hvm</type></os></domain>"
            )
            try:
                before = ours()
                with virtabstract.connect(uri, domain_type="qemu") as hv:
                    lc = hv.backend.lc
                    client = ours() - before
                    out["clients"] = len(client)
                    vm = hv.vms.get(dom.UUIDString())
                    out["state_before"] = vm.state.value
                    admin("client-disconnect", "libvirtd", client.pop())
                    time.sleep(1.0)
                    out["lost_flag"] = lc.lost  # nothing watches the socket: not noticed yet
                    out["state_after"] = vm.state.value  # meets the dead socket, reconnects, retries
                    out["reconnects"] = lc.reconnects
                    out["loop"] = event_loop_running()
            finally:
                dom.undefine()
                raw.close()
            """,
            uri,
            prefix,
        )
    assert out == {
        "clients": 1,
        "state_before": "stopped",
        "lost_flag": False,
        "state_after": "stopped",
        "reconnects": 1,
        "loop": False,
    }
