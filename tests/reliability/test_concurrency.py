"""Concurrency: 16 threads on one connection (mock, vcsim, libvirt's test driver), 4 processes on one
file-backed mock. No crash, no wrong result, no lost update: every count is checked exactly."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import virtabstract
from virtabstract import Nic, PowerState, VMSpec

from .conftest import sim_url
from .support import REPO, Tally

THREADS = 16


def run_threads(worker: Callable[[int], int], n: int = THREADS, timeout: float = 60) -> int:
    """Run worker(i) in *n* threads released at once; re-raise the first error; return the operations done."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    done = [0] * n

    def body(i: int) -> None:
        try:
            barrier.wait(10)
            done[i] = worker(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,), name=f"rel-{i}") for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a thread hung"
    if errors:
        raise errors[0]
    return sum(done)


# -- mock: 16 threads, one connection ------------------------------------------------------------


def test_sixteen_threads_one_mock_connection(tally: Tally) -> None:
    rounds = 3
    with virtabstract.connect("mock://?agent_delay=0&ip_delay=0&shutdown_delay=0&seed=5") as hv:
        shared = hv.vms.create(VMSpec(name="shared", memory=256))
        shared.start()

        def worker(i: int) -> int:
            ops = 0
            for r in range(rounds):
                name = f"t{i:02d}-{r}"
                vm = hv.vms.create(VMSpec(name=name, cpus=1, memory=128, nics=[Nic(network="default")]))
                vm.start()
                assert vm.state is PowerState.RUNNING
                vm.pause()
                assert vm.info().state is PowerState.PAUSED
                vm.resume()
                snap = vm.snapshots.create("s", memory=True)
                assert [s.id for s in vm.snapshots.list()] == [snap.id]
                assert vm.guest.exec(["echo", name]).stdout == name + "\n"
                vm.power_off()
                vm.reconfigure(cpus=2, tags=[name])
                info = vm.info()
                assert (info.name, info.cpus, info.tags, info.state) == (name, 2, (name,), PowerState.STOPPED)
                shared.snapshots.create(f"{name}-snap")
                shared.guest.write_file(f"/tmp/{name}", name.encode())
                assert name in {v.name for v in hv.vms.list_info()}
                assert hv.vms.get(name).id == vm.id
                vm.delete()
                ops += 16
            return ops

        ops = run_threads(worker)
        tally.add_operations("mock:threads", ops)
        assert [v.name for v in hv.vms.list_info()] == ["shared"]
        assert len(shared.snapshots) == THREADS * rounds
        for i in range(THREADS):
            for r in range(rounds):
                assert shared.guest.read_file(f"/tmp/t{i:02d}-{r}") == f"t{i:02d}-{r}".encode()
        assert hv.backend.store.read()["volumes"] == {} or all(  # no volume leaked by a deleted VM
            v.get("vm") in (None, shared.id) for v in hv.backend.store.read()["volumes"].values()
        )


# -- mock: 4 processes, one file ---------------------------------------------------------------------

PROCESSES = 4
PER_PROCESS = 6

_WORKER = r"""
import json, sys
import virtabstract
from virtabstract import VMSpec, Nic
url, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ops = 0
with virtabstract.connect(url) as hv:
    running = hv.vms.get("running")
    stopped = hv.vms.get("stopped")
    for i in range(n):
        hv.vms.create(VMSpec(name=f"{tag}-vm{i}", memory=64))
        running.snapshots.create(f"{tag}-snap{i}")
        stopped.add_nic(Nic(network="default"))
        running.guest.write_file(f"/tmp/{tag}-{i}", f"{tag}:{i}".encode())
        running.reconfigure(description=f"{tag}-{i}")
        ops += 5
print(json.dumps({"ops": ops}))
"""


def test_four_processes_one_file_store_lose_no_update(tmp_path: Path, tally: Tally) -> None:
    url = f"mock://{(tmp_path / 'lab.json').as_posix()}?agent_delay=0&ip_delay=0"
    with virtabstract.connect(url) as hv:
        hv.vms.create(VMSpec(name="running", memory=256)).start()
        hv.vms.create(VMSpec(name="stopped", memory=256))
    env = {"PYTHONPATH": str(REPO)}
    import os

    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url, f"p{i}", str(PER_PROCESS)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **env})
        for i in range(PROCESSES)
    ]  # fmt: skip
    ops = 0
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        ops += json.loads(out)["ops"]
    tally.add_operations("mock:processes", ops)
    total = PROCESSES * PER_PROCESS
    with virtabstract.connect(url) as hv:
        infos = hv.vms.list_info()
        assert len(infos) == 2 + total
        assert len({v.id for v in infos}) == len(infos)
        running, stopped = hv.vms.get("running"), hv.vms.get("stopped")
        assert len(running.snapshots) == total
        assert len(stopped.info().nics) == total
        macs = [n.mac for v in hv.vms.list_info() for n in v.nics]
        assert len(set(macs)) == len(macs) == total
        for p in range(PROCESSES):
            for i in range(PER_PROCESS):
                assert running.guest.read_file(f"/tmp/p{p}-{i}") == f"p{p}:{i}".encode()
        assert running.info().description.endswith(f"-{PER_PROCESS - 1}")


def test_concurrent_guest_appends_are_all_kept() -> None:
    with virtabstract.connect("mock://?agent_delay=0&ip_delay=0") as hv:
        vm = hv.vms.create(VMSpec(name="appender", memory=128))
        vm.start()
        rounds = 3

        def worker(i: int) -> int:
            for r in range(rounds):
                script = f"sleep 0.05; echo {i}-{r} >> /tmp/log"  # a command that takes a moment, like real ones
                vm.guest.exec(["sh", "-c", script], check=True)
            return rounds

        run_threads(worker)
        lines = vm.guest.read_file("/tmp/log").decode().split()
        assert Counter(lines) == Counter(f"{i}-{r}" for i in range(THREADS) for r in range(rounds))


# -- vcsim: 16 threads, one connection -------------------------------------------------------------


@pytest.mark.vcsim
def test_sixteen_threads_one_vcsim_connection(vpx_sim: Any, tally: Tally) -> None:
    with virtabstract.connect(sim_url(vpx_sim, "vpx")) as hv:
        existing = {v.id: v.name for v in hv.vms.list_info()}

        def worker(i: int) -> int:
            name = f"va-rel-t{i:02d}"
            vm = hv.vms.create(VMSpec(name=name, cpus=1, memory=64))
            ops = 1
            try:
                vm.start()
                assert vm.state is PowerState.RUNNING
                snap = vm.snapshots.create("s")
                assert [s.id for s in vm.snapshots.list()] == [snap.id]
                vm.power_off()
                vm.reconfigure(cpus=2, description=name)
                info = vm.info()
                assert (info.name, info.cpus, info.description, info.state) == (name, 2, name, PowerState.STOPPED)
                listed = {v.id: v.name for v in hv.vms.list_info()}
                assert listed[vm.id] == name and all(listed[k] == v for k, v in existing.items())
                ops += 8
            finally:
                vm.delete()
                ops += 1
            return ops

        ops = run_threads(worker, timeout=120)
        tally.add_operations("esxi:threads", ops)
        assert {v.id: v.name for v in hv.vms.list_info()} == existing


# -- libvirt's test driver: 16 threads, one connection ----------------------------------------------------


def test_sixteen_threads_one_libvirt_test_driver_connection(kvm_ok: None, tally: Tally) -> None:
    with virtabstract.connect("test:///default") as hv:
        existing = {v.id: v.name for v in hv.vms.list_info()}
        rounds = 2

        def worker(i: int) -> int:
            ops = 0
            for r in range(rounds):
                name = f"rel-t{i:02d}-{r}"
                vm = hv.vms.create(VMSpec(name=name, cpus=1, memory=64))
                try:
                    vm.start()
                    assert vm.state is PowerState.RUNNING
                    vm.pause()
                    assert vm.info().state is PowerState.PAUSED
                    vm.resume()
                    snap = vm.snapshots.create("s")
                    assert [s.id for s in vm.snapshots.list()] == [snap.id]
                    vm.power_off()
                    vm.reconfigure(cpus=2, description=name)
                    info = vm.info()
                    assert (info.name, info.cpus, info.description) == (name, 2, name)
                    assert hv.vms.get(name).id == vm.id
                    snap.delete()
                    ops += 12
                finally:
                    vm.delete()
                    ops += 1
            return ops

        ops = run_threads(worker)
        tally.add_operations("kvm:threads", ops)
        assert {v.id: v.name for v in hv.vms.list_info()} == existing
