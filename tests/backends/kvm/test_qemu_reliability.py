"""Connection loss on the real libvirtd: the server drops OUR client (``virt-admin client-disconnect``).

libvirtd is never restarted (other suites share it). Our client is found with
``virt-admin client-list`` + ``client-info``: the ids whose ``unix_process_id`` is this
process, minus those that existed before the connection under test was opened (the
environment fixture holds a raw connection of its own).

* events on (default), once a listing has started libvirt's event loop (a ``qemu:///system``
  connection is opened without it and reopened, not reconnected, by the first listing): the
  loop sees the EOF, the close callback marks the connection lost; an idempotent read then
  reconnects once, transparently. Without the loop the loss is met by the next call (below).
* a change whose connection drops under it is never retried: ConnectionLost (the change may
  or may not have happened); the next call reconnects. Tested at the connection layer
  (``LibvirtConnection.write``), dropping the client from inside the change: every facade
  change begins with a read (state check, lookup), which would reconnect first.
* a read whose connection drops under it reconnects and is retried once (``events=0`` here).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import virtabstract
from tests.backends.kvm.qemu_support import QemuEnv, connect_kwargs, open_qemu_env
from virtabstract import Hypervisor, VMSpec, wait_until
from virtabstract.errors import ConnectionLost

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]


@pytest.fixture(scope="module")
def qemu_env() -> Iterator[QemuEnv]:
    with open_qemu_env("kvm2") as env:
        yield env


def _admin(*args: str) -> str:
    return subprocess.run(["virt-admin", *args], check=True, capture_output=True, text=True, timeout=60).stdout


def our_clients() -> set[int]:
    """Ids of libvirtd clients whose unix_process_id is this process."""
    ids = [int(m.group(1)) for m in re.finditer(r"^\s*(\d+)\s+unix", _admin("client-list", "libvirtd"), re.M)]
    mine = set()
    for client in ids:
        try:
            info = _admin("client-info", "libvirtd", str(client))
        except subprocess.CalledProcessError:  # gone meanwhile
            continue
        match = re.search(r"unix_process_id\s*:\s*(\d+)", info)
        if match and int(match.group(1)) == os.getpid():
            mine.add(client)
    return mine


def _connect_and_find(
    env: QemuEnv, prepare: Callable[[Hypervisor], object] | None = None, **options: object
) -> tuple[Hypervisor, int]:
    """Connect, run *prepare* (which may reopen the connection), and find the one libvirtd client now ours."""
    before = our_clients()
    hv = virtabstract.connect(env.uri, **{**connect_kwargs(env), **options})
    if prepare is not None:
        prepare(hv)
    new = our_clients() - before
    deadline = time.monotonic() + 5
    while len(new) > 1 and time.monotonic() < deadline:  # a client closed by a reopen may linger a moment
        time.sleep(0.05)
        new = our_clients() - before
    assert len(new) == 1, f"expected one new libvirtd client for this process, found {new}"
    return hv, new.pop()


def _disconnect(client: int) -> None:
    _admin("client-disconnect", "libvirtd", str(client))


def test_close_callback_then_transparent_reconnect(qemu_env: QemuEnv) -> None:
    """Server-side disconnect → close callback → the next idempotent read reconnects once.

    The first listing starts the event loop and reopens the connection so that the loop watches it
    (not a reconnect): the client is looked for after it.
    """
    listed: list[int] = []
    hv, client = _connect_and_find(qemu_env, prepare=lambda h: listed.append(len(h.vms.list_info())))
    try:
        lc = hv.backend.lc  # type: ignore[attr-defined]
        count = listed[0]
        assert lc.reconnects == 0 and not lc.lost
        started = time.monotonic()
        _disconnect(client)
        wait_until(lambda: lc.lost, timeout=15, what="the close callback")
        noticed = time.monotonic() - started
        assert client not in our_clients()
        before = our_clients()
        assert isinstance(hv.vms.list_info(), list) and count >= 0  # idempotent read: reconnects, retries
        assert lc.reconnects == 1 and not lc.lost
        assert len(our_clients() - before) == 1, "the reconnect opened exactly one new client"
        assert hv.host.hostname
        assert lc.reconnects == 1
        print(f"close callback after {noticed:.3f}s")
    finally:
        hv.close()


def test_change_on_lost_connection_raises_then_next_call_reconnects(qemu_env: QemuEnv) -> None:
    """A change whose connection drops under it raises ConnectionLost (never retried); the next call reconnects.

    The server drops our client from inside the change, just before its libvirt call, so the
    loss is met by the change itself (every facade change begins with a read, which would
    otherwise reconnect first).
    """
    hv, client = _connect_and_find(qemu_env)
    name = f"{qemu_env.prefix}lost"
    xml = f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"
    calls = []

    def define(conn: Any) -> Any:
        calls.append(1)
        _disconnect(client)
        return conn.defineXML(xml)

    try:
        lc = hv.backend.lc  # type: ignore[attr-defined]
        with pytest.raises(ConnectionLost):
            lc.write("define a domain", define)
        assert calls == [1], "a change must never be retried"
        assert lc.lost and lc.reconnects == 0
        assert name not in hv.vms  # the next call (a read) reconnects; the define never reached libvirtd
        assert lc.reconnects == 1
        vm = hv.vms.create(VMSpec(name=name, cpus=1, memory=32, guest_os="linux", disks=[], nics=[]))
        assert vm.name == name
        vm.delete()
    finally:
        hv.close()


def test_read_meeting_dead_socket_retries_once(qemu_env: QemuEnv) -> None:
    """An idempotent read whose connection drops under it reconnects and is retried once, transparently."""
    hv, client = _connect_and_find(qemu_env, events=False)
    calls = []

    def read(conn: Any) -> str:
        calls.append(1)
        if len(calls) == 1:
            _disconnect(client)
        return str(conn.getHostname())

    try:
        lc = hv.backend.lc  # type: ignore[attr-defined]
        assert lc.read("read the host name", read)
        assert len(calls) == 2 and lc.reconnects == 1
        assert client not in our_clients()
        assert hv.host.cpu_count >= 1
    finally:
        hv.close()
