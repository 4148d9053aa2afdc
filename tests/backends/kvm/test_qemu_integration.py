"""The KVM backend on a real libvirtd + QEMU (TCG) with the tiny guest of tests/infra/guest_image.py.

Skips (with the reason) when libvirtd, QEMU or root are not available, or when libvirtd does
not answer a trivial ``virsh define`` within a minute. Everything it creates is named
``vatest-kvm-<run token>-…`` and removed by :func:`tests.infra.libvirt.cleanup_prefixed` with
that run's own prefix, before and after, even when a test fails. (A bare ``vatest-`` cleanup
would delete the volumes of other test sessions sharing the daemon.)

Direct kernel boot: VMSpec has no kernel field (it is not portable), so the test creates the
VM through the library and then adds ``<kernel>/<initrd>/<cmdline>`` through the documented
escape hatch ``vm.native`` (a ``virDomain``): the product API gains no test-only option.
"""

from __future__ import annotations

import secrets
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest

import virtabstract
from virtabstract import VM, Capability, Disk, Nic, PowerState, VMSpec

pytestmark = [pytest.mark.libvirtd, pytest.mark.slow]

infra_libvirt = pytest.importorskip("tests.infra.libvirt")
infra_image = pytest.importorskip("tests.infra.guest_image")


RUN_PREFIX = f"vatest-kvm-{secrets.token_hex(2)}-"


def _define_answers(timeout: float = 60) -> str:
    """'' when libvirtd defines and undefines a trivial domain in time, else the reason."""
    name = RUN_PREFIX + "probe"
    xml = f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"
    try:
        subprocess.run(
            ["virsh", "-c", "qemu:///system", "define", "/dev/stdin"],
            input=xml,
            text=True,
            capture_output=True,
            check=True,
            timeout=timeout,
        )
        subprocess.run(
            ["virsh", "-c", "qemu:///system", "undefine", name], capture_output=True, check=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"libvirtd did not answer 'virsh define' within {timeout:.0f}s (daemon busy or hung)"
    except subprocess.CalledProcessError as exc:
        return f"virsh define failed: {exc.stderr.strip()}"
    return ""


@pytest.fixture(scope="module")
def qemu_env() -> Iterator[dict[str, Any]]:
    ok, why = infra_libvirt.libvirt_available()
    if not ok:
        pytest.skip(why)
    try:
        uri = infra_libvirt.ensure_libvirtd()
        image = infra_image.build_guest_image()
    except (infra_libvirt.LibvirtUnavailable, infra_image.GuestImageError) as exc:
        pytest.skip(str(exc))
    why = _define_answers()
    if why:
        pytest.skip(why)
    conn = infra_libvirt.open_connection(uri)
    infra_libvirt.cleanup_prefixed(conn, RUN_PREFIX)
    pool = infra_libvirt.ensure_storage_pool(conn)
    network = infra_libvirt.ensure_network(conn)
    try:
        yield {"uri": uri, "image": image, "pool": pool.name(), "network": network, "conn": conn}
    finally:
        infra_libvirt.cleanup_prefixed(conn, RUN_PREFIX)
        conn.close()


@pytest.fixture
def hv(qemu_env: dict[str, Any]) -> Iterator[virtabstract.Hypervisor]:
    with virtabstract.connect(qemu_env["uri"], domain_type="qemu", pool=qemu_env["pool"]) as hypervisor:
        yield hypervisor


def virsh(*args: str) -> str:
    return subprocess.run(["virsh", "-c", "qemu:///system", *args], check=True, capture_output=True, text=True).stdout


def add_kernel_boot(vm: VM, env: dict[str, Any], index: int = 0) -> None:
    """Rewrite the persistent definition with direct kernel boot (raw libvirt, via vm.native)."""
    dom = vm.native
    root = ET.fromstring(dom.XMLDesc(0x1 | 0x2))  # VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE
    os_el = root.find("os")
    assert os_el is not None
    for boot in os_el.findall("boot"):
        os_el.remove(boot)
    network = env["network"]
    ip = gw = None
    if not network.dhcp:
        ip, gw = network.static_address(index + 10), network.gateway
    image = env["image"]
    for tag, text in (
        ("kernel", str(image.kernel)),
        ("initrd", str(image.initrd)),
        ("cmdline", image.cmdline_for(hostname="vatest-guest", ip=ip, gateway=gw)),
    ):
        ET.SubElement(os_el, tag).text = text
    dom.connect().defineXML(ET.tostring(root, encoding="unicode"))


def make_guest(hv: virtabstract.Hypervisor, env: dict[str, Any], name: str) -> VM:
    spec = VMSpec(
        name=name,
        cpus=1,
        memory=256,
        guest_os="debian-12",
        disks=[Disk(size=64)],
        nics=[Nic(network=env["network"].name)],
        description="integration <guest> & 'friends'",
        tags=["vatest", "qemu"],
    )
    vm = hv.vms.create(spec)
    add_kernel_boot(vm, env)
    return vm


def test_real_guest_end_to_end(hv: virtabstract.Hypervisor, qemu_env: dict[str, Any]) -> None:
    """create → boot → agent → exec → files → IP → memory snapshot → revert → clones → delete, checked with virsh."""
    name = f"{RUN_PREFIX}e2e"
    vm = make_guest(hv, qemu_env, name)
    dumped = ET.fromstring(virsh("dumpxml", vm.id))
    assert dumped.get("type") == "qemu"
    assert dumped.findtext("name") == name
    assert dumped.findtext("description") == "integration <guest> & 'friends'"
    assert dumped.find("devices/channel/target[@name='org.qemu.guest_agent.0']") is not None
    graphics = dumped.find("devices/graphics")
    assert graphics is not None and graphics.get("listen") == "127.0.0.1"
    assert virsh("domstate", vm.id).strip() == "shut off"

    vm.start()
    vm.wait_for_state(PowerState.RUNNING, timeout=30)
    assert virsh("domstate", vm.id).strip() == "running"
    info = vm.guest.wait_ready(timeout=180)
    assert info.agent == "qemu-guest-agent" and info.hostname == "vatest-guest"

    console = vm.console()
    assert console.protocol == "vnc" and console.port and console.password is not None
    assert console.serial_device.startswith("/dev/pts/")

    result = vm.guest.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=60)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert vm.guest.exec(["cat"], stdin=b"piped", timeout=60).stdout == "piped"

    payload = bytes(range(256)) * 500 + "ünïcode".encode()  # > 2 chunks of 48 KiB
    vm.guest.write_file("/tmp/vatest.bin", payload)
    assert vm.guest.read_file("/tmp/vatest.bin") == payload
    with pytest.raises(virtabstract.errors.GuestFileNotFound):
        vm.guest.read_file("/tmp/does-not-exist")

    address = vm.wait_for_ip(timeout=120)
    assert any(a.address == address and a.source in ("agent", "dhcp", "arp") for a in vm.guest.ip_addresses())

    snap = vm.snapshots.create("booted", description="with memory", memory=True)
    assert snap.info.has_memory and snap.info.vm_state is PowerState.RUNNING
    assert "booted" in virsh("snapshot-list", vm.id, "--name")
    vm.guest.write_file("/tmp/after-snapshot", b"x")
    snap.revert()
    vm.wait_for_state(PowerState.RUNNING, timeout=60)
    vm.guest.wait_ready(timeout=60)
    with pytest.raises(virtabstract.errors.GuestFileNotFound):
        vm.guest.read_file("/tmp/after-snapshot")
    assert vm.guest.read_file("/tmp/vatest.bin") == payload  # RAM state (tmpfs) came back with the snapshot

    vm.power_off()
    vm.wait_for_state(PowerState.STOPPED, timeout=30)
    snap.delete()
    full = vm.clone(f"{name}-full")
    linked = vm.clone(f"{name}-linked", linked=True)
    source_macs = {n.mac for n in vm.info().nics}
    for clone in (full, linked):
        cinfo = clone.info()
        assert clone.id != vm.id and not source_macs & {n.mac for n in cinfo.nics}
        assert cinfo.disks[0].path != vm.info().disks[0].path
    assert linked.info().disks[0].backing == vm.info().disks[0].path
    clone_xml = ET.fromstring(virsh("dumpxml", linked.id))
    assert clone_xml.find("os/kernel") is not None  # the clone boots the same way
    linked.start()
    linked.guest.wait_ready(timeout=180)
    assert linked.guest.exec(["true"], timeout=60).ok
    linked.power_off()
    linked.wait_for_state(PowerState.STOPPED, timeout=30)

    for each in (linked, full, vm):
        paths = [d.path for d in each.info().disks]
        each.delete()
        for path in paths:
            assert subprocess.run(["test", "-e", path], check=False).returncode != 0, path
    assert name not in virsh("list", "--all", "--name")


def test_power_verbs_and_suspend(hv: virtabstract.Hypervisor, qemu_env: dict[str, Any]) -> None:
    """pause/resume, managed-save suspend/restore, ACPI shutdown, reconfigure live, checked with virsh."""
    vm = make_guest(hv, qemu_env, f"{RUN_PREFIX}power")
    try:
        vm.start()
        vm.guest.wait_ready(timeout=180)
        vm.pause()
        assert vm.state is PowerState.PAUSED and virsh("domstate", vm.id).strip() == "paused"
        vm.resume()
        vm.suspend()
        assert vm.state is PowerState.SUSPENDED
        assert virsh("domstate", vm.id, "--reason").strip() == "shut off (saved)"
        vm.start()
        assert vm.info().native_state.startswith("running:restored")
        vm.guest.wait_ready(timeout=60)
        # the test guest has no virtio balloon driver: a live memory change could not take effect
        assert vm.reconfigure(memory=200, dry_run=True).changes[0].mode == "needs_power_off"
        plan = vm.reconfigure(cpus=2, description="live & <changed>")
        assert {c.mode for c in plan.changes} == {"live"}
        assert vm.info().cpus == 2
        assert ET.fromstring(virsh("dumpxml", vm.id)).findtext("description") == "live & <changed>"
        if hv.supports(Capability.RESOURCES):
            vm.set_resources(memory_limit="1GiB")
            assert vm.resources().memory_limit_mib == 1024
        result = vm.shutdown(timeout=120, force=True)
        assert result.method == "acpi"
        assert virsh("domstate", vm.id).strip() == "shut off"
    finally:
        if vm.state.is_active:
            vm.power_off()
        vm.delete()
