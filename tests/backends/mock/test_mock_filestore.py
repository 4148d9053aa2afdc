"""The file-backed store: persistence, inter-process locking, threads, speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import virtabstract
from virtabstract import Disk, Nic, PowerState, VMSpec
from virtabstract.backends.mock import FileLock, FileStore, MockBackend
from virtabstract.errors import ConnectionFailed, InvalidURL, OperationTimeout

ROOT = Path(__file__).resolve().parents[3]


def url(path: Path, query: str = "") -> str:
    return f"mock://{path.as_posix()}" + (f"?{query}" if query else "")


def test_survives_connections(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab, "clock=manual")) as hv:
        vm = hv.vms.create(VMSpec(name="web", disks=[Disk(size=10)], nics=[Nic()]))
        vm.start()
        hv.backend.clock.sleep(1)
        vm.guest.write_file("/root/x", b"\x00\xffbinary")
        vm.snapshots.create("s1")
        assert isinstance(hv.native, FileStore)
    doc = json.loads(lab.read_text())
    assert doc["format"] == "virtabstract-mock/1"
    with virtabstract.connect(url(lab)) as hv:
        vm2 = hv.vms.get("web")
        assert vm2.id == vm.id
        assert vm2.state is PowerState.RUNNING
        assert [s.name for s in vm2.snapshots] == ["s1"]
        # the stored boot time is not comparable across clocks, the guest's files are
        assert hv.backend.native_vm(vm.id)["files"]["/root/x"]


def test_system_clock_guest_across_connections(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab, "agent_delay=0")) as hv:
        vm = hv.vms.create(VMSpec(name="a"))
        vm.start()
        vm.guest.write_file("/tmp/f", b"one")
    with virtabstract.connect(url(lab, "agent_delay=0")) as hv:
        assert hv.vms.get("a").guest.read_file("/tmp/f") == b"one"


def test_preset_only_for_new_files(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab, "vms=5")) as hv:
        assert len(hv.vms) == 5
    with virtabstract.connect(url(lab, "vms=7")) as hv:
        assert len(hv.vms) == 5


def test_missing_directory_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConnectionFailed, match="does not exist"):
        virtabstract.connect(url(tmp_path / "nope" / "lab.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConnectionFailed, match="not valid JSON"):
        virtabstract.connect(url(bad))
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(ConnectionFailed, match="not a virtabstract mock store"):
        virtabstract.connect(url(other))


def test_windows_style_path_is_local_path(tmp_path: Path) -> None:
    parsed = virtabstract.make_url("mock:///C:/labs/lab.json")
    assert parsed.local_path == "C:/labs/lab.json"
    if os.name != "nt":
        with pytest.raises(InvalidURL, match="absolute"):
            virtabstract.connect(parsed)


def test_failed_operation_writes_nothing(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab)) as hv:
        hv.vms.create(VMSpec(name="a"))
        before = lab.read_bytes()
        with pytest.raises(virtabstract.errors.NetworkNotFound):
            hv.vms.create(VMSpec(name="b", nics=[Nic(network="missing")]))
        assert lab.read_bytes() == before


def test_lock_timeout(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab, "lock_timeout=0.2")) as hv:
        holder = FileLock(str(lab) + ".lock")
        with holder:
            start = time.monotonic()
            with pytest.raises(OperationTimeout, match="lock"):
                hv.vms.create(VMSpec(name="blocked"))
            assert time.monotonic() - start >= 0.2
            hv.vms.list_info()  # reads need no lock
        hv.vms.create(VMSpec(name="free"))


def test_file_lock_excludes_other_objects(tmp_path: Path) -> None:
    path = str(tmp_path / "x.lock")
    first, second = FileLock(path, timeout=0.05), FileLock(path, timeout=0.05)
    first.acquire()
    assert first.locked
    with pytest.raises(OperationTimeout):
        second.acquire()
    first.release()
    first.release()  # idempotent
    with second:
        assert second.locked
    assert not second.locked


_WORKER = """
import sys
import virtabstract
from virtabstract import VMSpec, Nic
url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
with virtabstract.connect(url) as hv:
    shared = hv.vms.get("shared")
    for i in range(count):
        if i % 2:
            hv.vms.create(VMSpec(name=f"{prefix}-{i}", nics=[Nic()]))
        else:
            vm = hv.vms.get(shared.id)
            info = vm.info()
            vm.reconfigure(tags=[*info.tags, f"{prefix}-{i}"])
"""


def test_two_processes_lose_nothing(tmp_path: Path) -> None:
    """2 processes x 50 changes each: 25 creates plus 25 read-modify-write tag updates of one VM."""
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab, "seed=1")) as hv:
        hv.vms.create(VMSpec(name="shared"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, url(lab, "seed=1"), prefix, "50"], env=env, cwd=ROOT)
        for prefix in ("p", "q")
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    with virtabstract.connect(url(lab)) as hv:
        infos = hv.vms.list_info()
        names = {i.name for i in infos}
        assert len(infos) == 51
        assert {f"{p}-{i}" for p in "pq" for i in range(1, 50, 2)} <= names
        macs = [n.mac for i in infos for n in i.nics]
        assert len(macs) == len(set(macs)) == 50
        assert len({i.id for i in infos}) == 51
    # tag updates are read-modify-write across two calls, so concurrent writers can
    # overwrite each other there; what must hold is that every write landed whole.
    doc = json.loads(lab.read_text())
    assert doc["counters"]["id"] >= 51


_TAGGER = """
import sys
import virtabstract
url, prefix = sys.argv[1], sys.argv[2]
with virtabstract.connect(url) as hv:
    backend = hv.backend
    vm_id = hv.vms.get("shared").id
    for i in range(50):
        with backend._txn() as doc:  # one atomic read-modify-write, as the CLI would do
            doc["vms"][vm_id]["tags"].append(f"{prefix}-{i}")
"""


def test_two_processes_atomic_updates(tmp_path: Path) -> None:
    lab = tmp_path / "lab.json"
    with virtabstract.connect(url(lab)) as hv:
        hv.vms.create(VMSpec(name="shared"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", _TAGGER, url(lab), prefix], env=env, cwd=ROOT) for prefix in "ab"]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    with virtabstract.connect(url(lab)) as hv:
        tags = hv.vms.get("shared").info().tags
    assert sorted(tags) == sorted(f"{p}-{i}" for p in "ab" for i in range(50))


@pytest.mark.parametrize("store", ["memory", "file"])
def test_threads_mixed_operations(tmp_path: Path, store: str) -> None:
    target = (
        "mock://?agent_delay=0&shutdown_delay=0"
        if store == "memory"
        else url(tmp_path / "lab.json", "agent_delay=0&shutdown_delay=0")
    )
    errors: list[BaseException] = []
    with virtabstract.connect(target) as hv:

        def work(n: int) -> None:
            try:
                for i in range(6):
                    vm = hv.vms.create(VMSpec(name=f"t{n}-{i}", disks=[Disk(size=1)], nics=[Nic()]))
                    vm.start()
                    vm.guest.write_file("/tmp/n", str(n).encode())
                    assert vm.guest.read_file("/tmp/n") == str(n).encode()
                    vm.reconfigure(tags=[f"t{n}"])
                    vm.snapshots.create("s")
                    vm.power_off()
                    if i % 2:
                        vm.delete()
                    hv.vms.list_info()
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors[:3]
        infos = hv.vms.list_info()
        assert len(infos) == 16 * 3
        assert all(i.tags == (i.name.split("-")[0],) for i in infos)
        macs = [n.mac for i in infos for n in i.nics]
        assert len(set(macs)) == len(macs)


def test_thousand_vms_list_fast(tmp_path: Path) -> None:
    lab = tmp_path / "big.json"
    with virtabstract.connect(url(lab, "vms=1000")) as hv:
        backend = hv.backend
        assert isinstance(backend, MockBackend) and isinstance(backend.store, FileStore)
    with virtabstract.connect(url(lab)) as hv:
        store = hv.backend.store  # type: ignore[attr-defined]
        reads = store.file_reads
        best = float("inf")
        for _ in range(5):
            store._cache_raw = store._cache_doc = None  # measure a real parse every time
            start = time.perf_counter()
            infos = hv.vms.list_info()
            best = min(best, time.perf_counter() - start)
        assert len(infos) == 1000
        assert store.file_reads - reads == 5  # one file read per listing
        assert best < 0.1, f"listing 1000 VMs took {best * 1000:.1f} ms"
