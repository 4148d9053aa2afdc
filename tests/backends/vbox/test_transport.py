"""The VBoxManage transport: locating it, timeouts, garbage, password files; and the backend on the fake."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from virtabstract_vbox._vboxmanage import VBoxManage, find_vboxmanage, password_file

import virtabstract
from virtabstract import Disk, Nic, PowerState, VMSpec
from virtabstract.errors import (
    BackendError,
    BackendUnavailable,
    GuestFileNotFound,
    InvalidState,
    InvalidURL,
    OperationTimeout,
    SnapshotNotFound,
    SpecError,
    VMNotFound,
)

from .conftest import FakeVBox


def _exe(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_find_vboxmanage_override_path_and_platforms(tmp_path: Path) -> None:
    exe = _exe(tmp_path / "VBoxManage", "echo 7.0.0r1")
    assert find_vboxmanage(str(exe)) == str(exe)
    with pytest.raises(BackendUnavailable):
        find_vboxmanage(str(tmp_path / "missing"))
    assert find_vboxmanage(environ={"PATH": str(tmp_path)}) == str(exe)
    win = tmp_path / "win"
    win.mkdir()
    (win / "VBoxManage.exe").write_text("")
    found = find_vboxmanage(platform="win32", environ={"PATH": "", "VBOX_MSI_INSTALL_PATH": str(win)})
    assert found == str(win / "VBoxManage.exe")
    with pytest.raises(BackendUnavailable, match="install VirtualBox"):
        find_vboxmanage(platform="win32", environ={"PATH": "", "ProgramFiles": str(tmp_path / "nope")})


def test_timeout_and_garbage(tmp_path: Path) -> None:
    hang = VBoxManage(str(_exe(tmp_path / "hang", "sleep 30")), timeout=0.3)
    with pytest.raises(OperationTimeout):
        hang.out("list", "vms")
    junk = _exe(tmp_path / "junk", "echo 'not a version at all'")
    with pytest.raises(BackendError):
        virtabstract.connect("vbox:///session", vboxmanage=str(junk))
    with pytest.raises(BackendError):
        VBoxManage(str(tmp_path / "absent")).out("--version")


@pytest.mark.parametrize("transport", ["vboxmanage", "api"])
@pytest.mark.parametrize(("url", "options", "message"), [
    ("vbox:///session?timeout=abc", {}, "option timeout='abc'"),
    ("vbox:///session", {"timeout": -3}, "option timeout=-3"),
    ("vbox://otherhost/session", {}, "only the local VirtualBox"),
    ("vbox:///elsewhere", {}, "only the local VirtualBox"),
])  # fmt: skip
def test_bad_url_or_timeout_is_refused_before_connecting(
    transport: str, url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidURL, match=message):
        virtabstract.connect(url, transport=transport, **options)


def test_password_file_is_private_and_removed() -> None:
    with password_file("pa ss") as path:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert Path(path).read_text() == "pa ss"
    assert not os.path.exists(path)


def test_transport_selection(fake_vbox: FakeVBox) -> None:
    with pytest.raises(BackendUnavailable, match="vboxapi"):  # forced API, and vboxapi does not import here
        virtabstract.connect("vbox:///session?transport=api", vboxmanage=str(fake_vbox.exe))
    with pytest.raises(virtabstract.errors.InvalidURL):
        virtabstract.connect("vbox:///session?transport=ftp", vboxmanage=str(fake_vbox.exe))
    url = f"vbox:///session?transport=vboxmanage&vboxmanage={fake_vbox.exe}"
    with virtabstract.connect(url) as hv:
        assert hv.host.version.startswith(fake_vbox.profile)
        assert not hv.supports(virtabstract.Capability.REBOOT)  # no guest credentials


@pytest.mark.parametrize("fake_vbox", ["6.1", "7.1"], indirect=True)
def test_backend_lifecycle_on_fake(vbox_hv: virtabstract.Hypervisor, fake_vbox: FakeVBox) -> None:
    hv = vbox_hv
    spec = VMSpec(name='we"b 1', cpus=2, memory="256MiB", guest_os="ubuntu-22.04", disks=[Disk(size="1GiB")],
                  nics=[Nic(network="default"), Nic(network="vboxnet0", kind="hostonly")], tags=["web"])  # fmt: skip
    vm = hv.vms.create(spec)
    info = vm.info()
    assert info.name == 'we"b 1' and info.cpus == 2 and info.memory_mib == 256 and info.tags == ("web",)
    # 6.1 only knows the generic Ubuntu_64, which the catalog resolves to the newest Ubuntu.
    assert info.guest_os == ("ubuntu-24.04" if fake_vbox.profile == "6.1" else "ubuntu-22.04")
    expected_native = "Ubuntu_64" if fake_vbox.profile == "6.1" else "Ubuntu22_LTS_64"
    assert info.guest_os_native == expected_native
    assert [n.kind for n in info.nics] == ["nat", "hostonly"] and info.disks[0].size_mib == 1024
    vm.start()
    assert vm.state is PowerState.RUNNING
    plan = vm.reconfigure(cpus=4, dry_run=True)
    assert plan.needs_power_off
    with pytest.raises(InvalidState):
        vm.reconfigure(memory="512MiB")
    vm.set_resources(cpu_limit_mhz=2000)  # live: controlvm cpuexecutioncap
    assert vm.resources().cpu_limit_mhz == 2000  # 50% of 2 vCPUs x 2000 MHz
    with pytest.raises(SpecError):
        vm.set_resources(cpu_shares=10)
    assert vm.guest.wait_for_ip(timeout=5) == "10.0.2.15"
    result = vm.guest.exec(["sh", "-c", "echo hello; exit 4"])
    assert (result.exit_code, result.stdout) == (4, "hello\n")
    vm.guest.write_file("/tmp/x", b"\x00bin")
    assert vm.guest.read_file("/tmp/x") == b"\x00bin"
    with pytest.raises(GuestFileNotFound):
        vm.guest.read_file("/tmp/nope")
    vm.reboot()
    snap = vm.snapshots.create("live", memory=True)
    assert snap.info.has_memory
    with pytest.raises(InvalidState):
        vm.snapshots.create("disk-only")
    vm.suspend()
    assert vm.state is PowerState.SUSPENDED
    vm.start()
    vm.shutdown(timeout=10)
    assert vm.state is PowerState.STOPPED
    snap.revert()
    assert vm.state is PowerState.RUNNING
    vm.power_off()
    clone = vm.clone("linked", linked=True, snapshot=snap)
    assert clone.info().disks[0].backing == info.disks[0].path
    assert clone.info().nics[0].mac != info.nics[0].mac
    with pytest.raises(SnapshotNotFound):
        hv.backend.revert_snapshot(vm.id, "00000000-0000-0000-0000-000000000000")
    clone.delete()
    vm.delete()
    with pytest.raises(VMNotFound):
        hv.backend.get_vm(info.id)
    state = fake_vbox.read()
    assert state["violations"] == []
    assert state["media"] == {}


@pytest.mark.parametrize("fake_vbox", ["7.0"], indirect=True)
def test_backend_failures_on_fake(vbox_hv: virtabstract.Hypervisor, fake_vbox: FakeVBox) -> None:
    hv = vbox_hv
    with pytest.raises(virtabstract.errors.NetworkNotFound):
        hv.vms.create(VMSpec(name="n", nics=[Nic(network="nope")]))
    with pytest.raises(virtabstract.errors.StorageNotFound):
        hv.vms.create(VMSpec(name="n", disks=[Disk(size=16, storage="nope")]))
    # Failure in the middle (disk path exists) rolls back the registered VM.
    existing = Path(fake_vbox.read()["machine_folder"]) / "r" / "r-disk0.vdi"
    existing.parent.mkdir(parents=True)
    existing.write_text("x")
    with pytest.raises(BackendError):
        hv.vms.create(VMSpec(name="r", disks=[Disk(size=16)]))
    assert hv.vms.list() == []
    vm = hv.vms.create(VMSpec(name="m", disks=[Disk(size=16)]))
    vm.start()
    with pytest.raises(InvalidState):
        hv.backend.vbm.out("modifyvm", vm.id, "--cpus", "2")  # write lock held by the running VM
    fake_vbox.update(lambda s: s["vms"][vm.id]["guest"].update(additions=False))
    with pytest.raises(virtabstract.errors.GuestAgentUnavailable):
        vm.guest.info()
    fake_vbox.update(lambda s: s["vms"][vm.id].update(state="aborted"))
    assert vm.state is PowerState.CRASHED
    vm.start()
    vm.power_off()
    vm.delete()
