"""libvirt faults against the real libvirtd (qemu:///system), touching only what this module creates.

* our own client connection cut by the daemon (``virt-admin client-disconnect`` of *our* client id,
  found by matching its ``unix_process_id`` with this process);
* a frozen transport: ``qemu+ssh://`` whose "ssh" is a local relay to the daemon's socket, then
  SIGSTOPped — the keepalive must notice within ``interval * (count + 1)`` seconds;
* the same freeze over ``qemu+ext://`` (a finding: no keepalive there);
* a guest without an agent, a guest that ignores ACPI, a QEMU process killed under the VM;
* libvirtd restarted between calls — only when ``CI=true`` (never on a shared host).

Every VM is named ``vatest-rel-<token>-…`` and removed by ``cleanup_prefixed`` with that prefix.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import virtabstract
from virtabstract import VM, Hypervisor, PowerState, VMSpec
from virtabstract.errors import ConnectionLost, GuestAgentUnavailable, OperationTimeout

from .conftest import IN_CI
from .support import Tally

pytestmark = pytest.mark.libvirtd

PREFIX = f"vatest-rel-{secrets.token_hex(2)}-"
KEEPALIVE = (1, 1)


@pytest.fixture(scope="module")
def env(kvm_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    infra = pytest.importorskip("tests.infra.libvirt")
    ok, why = infra.libvirt_available()
    if not ok:
        pytest.skip(why)
    if os.geteuid() != 0:
        pytest.skip("qemu:///system needs root")
    try:
        uri = infra.ensure_libvirtd()
    except infra.LibvirtUnavailable as exc:
        pytest.skip(str(exc))
    relay = infra.write_ext_relay(tmp_path_factory.mktemp("relay") / "relay.py")
    conn = infra.open_connection(uri)
    infra.cleanup_prefixed(conn, PREFIX)
    state = {"uri": uri, "relay": relay, "conn": conn, "infra": infra}
    try:
        yield state
    finally:  # state["conn"] is a new connection when the restart test replaced a dead one
        infra.cleanup_prefixed(state["conn"], PREFIX)
        state["conn"].close()


@pytest.fixture
def hv(env: dict[str, Any]) -> Iterator[Hypervisor]:
    with virtabstract.connect(env["uri"], domain_type="qemu") as connection:
        yield connection


@pytest.fixture
def guest(hv: Hypervisor) -> Iterator[VM]:
    """A diskless QEMU guest (SeaBIOS finds nothing to boot and waits): no agent, no ACPI handling."""
    vm = hv.vms.create(VMSpec(name=PREFIX + secrets.token_hex(3), memory=64, graphics="none"))
    vm.start()
    yield vm
    if vm.state is not PowerState.STOPPED:
        vm.power_off()
    vm.delete()


def _our_client_ids() -> set[str]:
    listing = subprocess.run(["virt-admin", "client-list", "libvirtd"], capture_output=True, text=True, check=True)
    ours = set()
    for line in listing.stdout.splitlines()[2:]:
        if not line.strip():
            continue
        client = line.split()[0]
        info = subprocess.run(["virt-admin", "client-info", "libvirtd", client], capture_output=True, text=True)
        for row in info.stdout.splitlines():
            key, _, value = row.partition(":")
            if key.strip() == "unix_process_id" and value.strip() == str(os.getpid()):
                ours.add(client)
    return ours


def _bounded_start(func: Any) -> dict[str, Any]:
    """Start *func* in a thread; the dict gets its result or error, and ``thread``."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        try:
            outcome["result"] = func()
        except BaseException as exc:
            outcome["error"] = exc

    outcome["thread"] = threading.Thread(target=body, daemon=True)
    outcome["thread"].start()
    return outcome


def _bounded(func: Any, limit: float) -> dict[str, Any]:
    """Run *func* in a thread; report its result/error and time, or that it was still blocked after *limit*."""
    outcome: dict[str, Any] = {}

    def body() -> None:
        started = time.monotonic()
        try:
            outcome["result"] = func()
        except BaseException as exc:
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    worker = threading.Thread(target=body, daemon=True)
    worker.start()
    worker.join(limit)
    outcome["hung"] = worker.is_alive()
    outcome["thread"] = worker
    return outcome


# -- connection faults --------------------------------------------------------------------------------------


def test_client_connection_cut_by_the_daemon(env: dict[str, Any], tally: Tally) -> None:
    if shutil.which("virt-admin") is None:
        pytest.skip("virt-admin is not installed")
    before = _our_client_ids()
    with virtabstract.connect(env["uri"], domain_type="qemu") as hv:
        vm = hv.vms.create(VMSpec(name=PREFIX + "cut", memory=64))
        # the close callback comes from libvirt's event loop, which a qemu:///system connection gets with its
        # first need for events: the listing starts the loop and reopens the connection (not a reconnect)
        hv.vms.list_info()
        lc = hv.backend.lc
        assert lc.reconnects == 0
        mine = _our_client_ids() - before
        deadline = time.monotonic() + 5
        while len(mine) > 1 and time.monotonic() < deadline:  # the client closed by the reopen may linger
            time.sleep(0.05)
            mine = _our_client_ids() - before
        assert len(mine) == 1, mine
        for round_ in range(2):
            with tally.fault("kvm", "client-disconnect"):
                subprocess.run(["virt-admin", "client-disconnect", "libvirtd", mine.pop()], check=True,
                               capture_output=True)  # fmt: skip
                deadline = time.monotonic() + 5
                while not lc.lost and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert lc.lost, "the close callback did not report the cut"
                assert vm.info().name == PREFIX + "cut"  # a read reconnects and retries transparently
                assert lc.reconnects == round_ + 1
                mine = _our_client_ids() - before
        with tally.fault("kvm", "client-disconnect:write"):
            subprocess.run(["virt-admin", "client-disconnect", "libvirtd", mine.pop()], check=True,
                           capture_output=True)  # fmt: skip
            try:
                vm.reconfigure(description="after the cut")  # a write is never retried ...
            except ConnectionLost:
                vm.reconfigure(description="after the cut")  # ... but the next call reconnects
            assert vm.info().description == "after the cut"
        vm.delete()


def test_frozen_transport_is_noticed_by_keepalive(env: dict[str, Any], tally: Tally) -> None:
    """The peer stops answering (a SIGSTOPped ssh): the keepalive closes the connection after
    interval*(count+1) s, and the blocked read reconnects — never a hang."""
    url = f"qemu+ssh://localhost/system?command={env['relay']}&no_tty=1"
    with virtabstract.connect(url, keepalive=f"{KEEPALIVE[0]},{KEEPALIVE[1]}", domain_type="qemu") as hv:
        assert hv.vms.list_info() is not None
        relays = _relays(env["relay"])
        assert relays
        with tally.fault("kvm", "frozen-transport:ssh"):
            lc = hv.backend.lc
            frozen = time.monotonic()
            for pid in relays:
                os.kill(pid, signal.SIGSTOP)
            try:
                call = _bounded_start(hv.vms.list_info)
                while not lc.lost and time.monotonic() - frozen < 10:
                    time.sleep(0.02)
                noticed = time.monotonic() - frozen
                call["thread"].join(20)
            finally:
                for pid in relays:
                    _kill(pid)
            assert not call["thread"].is_alive(), "a frozen transport blocked the call"
            # the keepalive declares the peer dead after interval * (count + 1) s; the reconnect comes on top
            assert noticed < KEEPALIVE[0] * (KEEPALIVE[1] + 1) + 1.5, noticed
            assert "result" in call or isinstance(call.get("error"), ConnectionLost), call
            assert hv.vms.list_info() is not None  # and the connection works again


def test_frozen_ext_transport_is_noticed_by_keepalive(env: dict[str, Any]) -> None:
    url = f"qemu+ext:///system?command={env['relay']}"
    with virtabstract.connect(url, keepalive=f"{KEEPALIVE[0]},{KEEPALIVE[1]}", domain_type="qemu") as hv:
        hv.vms.list_info()
        relays = _relays(env["relay"])
        for pid in relays:
            os.kill(pid, signal.SIGSTOP)
        try:
            outcome = _bounded(hv.vms.list_info, KEEPALIVE[0] * (KEEPALIVE[1] + 1) + 1)
        finally:
            for pid in relays:
                _kill(pid)
            outcome["thread"].join(10)
        assert not outcome["hung"], "a frozen transport blocked the call"


def _relays(relay: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(relay).encode() in cmdline and int(entry.name) != os.getpid():
                found.append(int(entry.name))
    return found


def _kill(pid: int) -> None:
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return


# -- guest faults ----------------------------------------------------------------------------------------------


def test_guest_agent_absent(guest: VM, tally: Tally) -> None:
    with tally.fault("kvm", "agent-absent", 3):
        for call in (guest.guest.info, lambda: guest.guest.exec(["true"])):
            with pytest.raises(GuestAgentUnavailable):
                call()
        started = time.monotonic()
        with pytest.raises(OperationTimeout):
            guest.guest.wait_ready(timeout=1.0)
        assert time.monotonic() - started < 6


def test_guest_ignoring_acpi_times_out_then_escalates(guest: VM, tally: Tally) -> None:
    with tally.fault("kvm", "ignore-shutdown", 2):
        started = time.monotonic()
        with pytest.raises(OperationTimeout):
            guest.shutdown(timeout=1.0)
        assert time.monotonic() - started < 6
        assert guest.state is PowerState.RUNNING
        result = guest.shutdown(timeout=1.0, force=True)
        assert result.stage == "forced" and guest.state is PowerState.STOPPED


def test_qemu_killed_under_the_vm(guest: VM, tally: Tally) -> None:
    pid_file = Path("/run/libvirt/qemu") / f"{guest.name}.pid"
    with tally.fault("kvm", "qemu-killed"):
        pid = int(pid_file.read_text().strip())
        os.kill(pid, signal.SIGKILL)  # the QEMU of our own test guest only
        deadline = time.monotonic() + 10
        while guest.state is PowerState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.1)
        info = guest.info()
        assert info.state in (PowerState.CRASHED, PowerState.STOPPED), info
        guest.start()
        assert guest.state is PowerState.RUNNING


# -- the daemon restarted between calls (CI only) ----------------------------------------------------------------


@pytest.mark.skipif(not IN_CI, reason="restarts libvirtd: only inside CI (CI=true), never on a shared host")
def test_libvirtd_restarted_between_calls(env: dict[str, Any], tally: Tally) -> None:
    with virtabstract.connect(env["uri"], domain_type="qemu") as hv:
        vm = hv.vms.create(VMSpec(name=PREFIX + "restart", memory=64))
        pid = int(Path("/run/libvirtd.pid").read_text().strip())
        with tally.fault("kvm", "libvirtd-restart"):
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            env["infra"].ensure_libvirtd()
            assert vm.info().name == PREFIX + "restart"  # reconnects transparently
            assert hv.backend.lc.reconnects >= 1
        vm.delete()
    with contextlib.suppress(Exception):  # the helper connection died with the old daemon
        env["conn"].close()
    env["conn"] = env["infra"].open_connection(env["uri"])
