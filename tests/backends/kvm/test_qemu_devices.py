"""Devices and console on a RUNNING real QEMU (TCG) guest, cross-checked with virsh and from inside the guest.

Disk add (attachDeviceFlags LIVE|CONFIG) → the guest sees /dev/vdb; live resize (blockResize)
→ the guest sees the new size; remove (detach LIVE|CONFIG, the guest releases the PCI slot).
NIC add → the guest sees a new interface; move to another network (updateDeviceFlags) — a
prefixed isolated network created here and removed after — and remove. Console: VNC port and
the generated password, compared with ``virsh vncdisplay`` and ``virsh dumpxml --security-info``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

import virtabstract
from tests.backends.kvm.qemu_support import (
    QemuEnv,
    add_kernel_boot,
    connect_kwargs,
    isolated_network,
    open_qemu_env,
    virsh,
)
from virtabstract import VM, Disk, Hypervisor, Nic, VMSpec, wait_until

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]


@pytest.fixture(scope="module")
def qemu_env() -> Iterator[QemuEnv]:
    with open_qemu_env("kvm2") as env:
        yield env


@pytest.fixture(scope="module")
def hv(qemu_env: QemuEnv) -> Iterator[Hypervisor]:
    with virtabstract.connect(qemu_env.uri, **connect_kwargs(qemu_env)) as hypervisor:
        yield hypervisor


@pytest.fixture(scope="module")
def guest(hv: Hypervisor, qemu_env: QemuEnv) -> Iterator[VM]:
    spec = VMSpec(
        name=f"{qemu_env.prefix}dev",
        cpus=1,
        memory=128,
        guest_os="linux",
        disks=[Disk(size=32, storage=qemu_env.pool)],
        nics=[Nic(network=qemu_env.network.name)],
    )
    vm = hv.vms.create(spec)
    try:
        add_kernel_boot(vm, qemu_env)
        vm.start()
        vm.guest.wait_ready(timeout=180)
        yield vm
    finally:
        if vm.state.is_active:
            vm.power_off()
            vm.wait_for_state(virtabstract.PowerState.STOPPED, timeout=60)
        vm.delete()


@pytest.fixture(scope="module")
def other_network(qemu_env: QemuEnv) -> Iterator[str]:
    with isolated_network(qemu_env) as name:
        yield name


def _sh(vm: VM, command: str) -> str:
    result = vm.guest.exec(["sh", "-c", command], timeout=60)
    assert result.exit_code == 0, result
    return result.stdout.strip()


def _disk_targets(vm: VM, *, inactive: bool) -> set[str]:
    args = ["dumpxml", vm.id, *(["--inactive"] if inactive else [])]
    return {t.get("dev", "") for t in ET.fromstring(virsh(*args)).findall("devices/disk/target")}


def _nics(vm: VM, *, inactive: bool) -> dict[str, str]:
    args = ["dumpxml", vm.id, *(["--inactive"] if inactive else [])]
    out = {}
    for iface in ET.fromstring(virsh(*args)).findall("devices/interface"):
        mac = iface.find("mac")
        source = iface.find("source")
        if mac is not None and source is not None:
            out[mac.get("address", "")] = source.get("network") or source.get("bridge") or ""
    return out


def test_disk_add_resize_remove_live(guest: VM, qemu_env: QemuEnv) -> None:
    """A disk attached live and in the config shows up in the guest, grows live, and detaches live."""
    added = guest.add_disk(Disk(size=32, storage=qemu_env.pool))
    assert added.id == "vdb" and added.size_mib == 32
    assert "vdb" in _disk_targets(guest, inactive=False) and "vdb" in _disk_targets(guest, inactive=True)
    sectors = wait_until(
        lambda: _sh(guest, "cat /sys/block/vdb/size 2>/dev/null || true") or None,
        timeout=60,
        what="the guest to see /dev/vdb",
    )
    assert int(sectors) * 512 == 32 * 2**20

    resized = guest.resize_disk("vdb", "48MiB")
    assert resized.size_mib == 48
    assert {d.id: d.size_mib for d in guest.info().disks}["vdb"] == 48
    wait_until(
        lambda: int(_sh(guest, "cat /sys/block/vdb/size")) * 512 == 48 * 2**20,
        timeout=60,
        what="the guest to see the new size of /dev/vdb",
    )
    vol_info = virsh("vol-info", added.path)
    assert "48.00 MiB" in vol_info, vol_info

    guest.remove_disk("vdb", delete=True)
    assert "vdb" not in _disk_targets(guest, inactive=False)
    assert "vdb" not in _disk_targets(guest, inactive=True)
    wait_until(
        lambda: _sh(guest, "test -e /sys/block/vdb && echo yes || echo no") == "no",
        timeout=60,
        what="/dev/vdb to disappear from the guest",
    )
    assert not Path(added.path).exists(), "remove_disk(delete=True) left the volume file"
    assert added.path not in virsh("vol-list", qemu_env.pool)


def test_nic_add_move_remove_live(guest: VM, qemu_env: QemuEnv, other_network: str) -> None:
    """A NIC attached live appears in the guest, moves to another network keeping its MAC, and detaches."""
    before = _sh(guest, "ls /sys/class/net").split()
    added = guest.add_nic(Nic(network=qemu_env.network.name))
    assert _nics(guest, inactive=False)[added.mac] == qemu_env.network.name
    assert _nics(guest, inactive=True)[added.mac] == qemu_env.network.name
    new_if = wait_until(
        lambda: [n for n in _sh(guest, "ls /sys/class/net").split() if n not in before] or None,
        timeout=60,
        what="the guest to see the new NIC",
    )
    assert _sh(guest, f"cat /sys/class/net/{new_if[0]}/address") == added.mac

    moved = guest.update_nic(added.id, network=other_network)
    assert moved.network == other_network and moved.mac == added.mac
    assert _nics(guest, inactive=False)[added.mac] == other_network
    assert _nics(guest, inactive=True)[added.mac] == other_network
    assert added.mac in virsh("domiflist", guest.id)

    guest.remove_nic(added.id)
    wait_until(lambda: added.mac not in _nics(guest, inactive=False), timeout=60, what="the NIC to be detached")
    assert added.mac not in _nics(guest, inactive=True)
    assert added.mac not in {n.mac for n in guest.info().nics}


def test_console_vnc_port_and_password(guest: VM) -> None:
    """The console is the live VNC port on 127.0.0.1 and the generated password libvirt holds."""
    console = guest.console()
    assert console.protocol == "vnc" and console.host == "127.0.0.1"
    display = virsh("vncdisplay", guest.id).strip()  # "127.0.0.1:N"
    assert console.port == 5900 + int(display.rsplit(":", 1)[1])
    graphics = ET.fromstring(virsh("dumpxml", "--security-info", guest.id)).find("devices/graphics")
    assert graphics is not None
    assert console.password is not None and console.password.reveal() == graphics.get("passwd")
    assert len(console.password.reveal()) == 8
    assert console.serial_device.startswith("/dev/pts/")
