"""Helpers shared by the KVM tests that run on the real libvirtd + QEMU (TCG) with the test guest.

* :func:`open_qemu_env` probes libvirtd (skip reasons instead of failures), builds the guest
  image, ensures the test pool and network, and removes everything named with this session's
  own prefix (``vatest-kvm2-<8 hex>-``) before and after. A bare ``vatest-`` sweep would
  delete other sessions' objects on the shared daemon, so it is never done here.
* :func:`add_kernel_boot` rewrites a VM's persistent definition for direct kernel boot of the
  test guest through the documented escape hatch ``vm.native`` (VMSpec has no kernel field).
* :class:`GuestVMFactory` is the contract suite's VM factory whose VMs all boot the test guest
  when started (so ACPI shutdown and reboot have a guest that handles the power button).
"""

from __future__ import annotations

import contextlib
import itertools
import secrets
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.infra import guest_image as infra_image
from tests.infra import libvirt as infra_libvirt
from virtabstract import VM, Hypervisor, PowerState
from virtabstract.testing import VMFactory

URI = "qemu:///system"


@dataclass
class QemuEnv:
    """What the real-QEMU tests need: the URI, the guest image, the pool, the network, a raw connection."""

    uri: str
    prefix: str
    image: Any
    pool: str
    network: Any
    conn: Any
    addresses: Iterator[int] = field(default_factory=lambda: itertools.count(20))

    def next_address_index(self) -> int:
        """A fresh index for :meth:`TestNetwork.static_address` (used only when the network has no DHCP)."""
        return next(self.addresses)


def virsh(*args: str, check: bool = True) -> str:
    """Run ``virsh -c qemu:///system ARGS`` (a client nobody here wrote) and return its stdout."""
    done = subprocess.run(["virsh", "-c", URI, *args], check=check, capture_output=True, text=True, timeout=120)
    return done.stdout


def _define_answers(prefix: str, timeout: float = 60) -> str:
    """'' when libvirtd defines and undefines a trivial domain in time, else the reason."""
    name = prefix + "probe"
    xml = f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>32</memory><os><type>hvm</type></os></domain>"
    try:
        subprocess.run(
            ["virsh", "-c", URI, "define", "/dev/stdin"],
            input=xml,
            text=True,
            capture_output=True,
            check=True,
            timeout=timeout,
        )
        subprocess.run(["virsh", "-c", URI, "undefine", name], capture_output=True, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"libvirtd did not answer 'virsh define' within {timeout:.0f}s (daemon busy or hung)"
    except subprocess.CalledProcessError as exc:
        return f"virsh define failed: {exc.stderr.strip()}"
    return ""


@contextlib.contextmanager
def open_qemu_env(label: str = "kvm2") -> Iterator[QemuEnv]:
    """Set up (or skip) the real-QEMU environment; remove this run's objects afterwards."""
    ok, why = infra_libvirt.libvirt_available()
    if not ok:
        pytest.skip(why)
    try:
        uri = infra_libvirt.ensure_libvirtd()
        image = infra_image.build_guest_image()
    except (infra_libvirt.LibvirtUnavailable, infra_image.GuestImageError) as exc:
        pytest.skip(str(exc))
    prefix = infra_libvirt.run_prefix(label)
    why = _define_answers(prefix)
    if why:
        pytest.skip(why)
    conn = infra_libvirt.open_connection(uri)
    try:
        infra_libvirt.cleanup_prefixed(conn, prefix)
        pool = infra_libvirt.ensure_storage_pool(conn)
        network = infra_libvirt.ensure_network(conn)
        yield QemuEnv(uri=uri, prefix=prefix, image=image, pool=pool.name(), network=network, conn=conn)
    finally:
        infra_libvirt.cleanup_prefixed(conn, prefix)
        conn.close()


def add_kernel_boot(vm: VM, env: QemuEnv, *, hostname: str = "vatest-guest") -> None:
    """Rewrite the persistent definition of *vm* with direct kernel boot of the test guest (raw libvirt)."""
    dom = vm.native
    root = ET.fromstring(dom.XMLDesc(0x1 | 0x2))  # VIR_DOMAIN_XML_SECURE | VIR_DOMAIN_XML_INACTIVE
    os_el = root.find("os")
    assert os_el is not None
    for child in [c for c in os_el if c.tag in ("boot", "kernel", "initrd", "cmdline")]:
        os_el.remove(child)
    ip = gw = None
    if not env.network.dhcp:
        ip, gw = env.network.static_address(env.next_address_index()), env.network.gateway
    for tag, text in (
        ("kernel", str(env.image.kernel)),
        ("initrd", str(env.image.initrd)),
        ("cmdline", env.image.cmdline_for(hostname=hostname, ip=ip, gateway=gw)),
    ):
        ET.SubElement(os_el, tag).text = text
    dom.connect().defineXML(ET.tostring(root, encoding="unicode"))


class GuestVMFactory(VMFactory):
    """A :class:`VMFactory` whose VMs boot the test guest (direct kernel boot added before any start)."""

    def __init__(self, hypervisor: Hypervisor, env: QemuEnv, **kwargs: Any) -> None:
        super().__init__(hypervisor, **kwargs)
        self.env = env

    def __call__(
        self,
        spec: Any = None,
        *,
        hypervisor: Hypervisor | None = None,
        start: bool = False,
        wait: bool = True,
        **overrides: Any,
    ) -> VM:
        """Create (and track) the VM stopped, add kernel boot, then start it if asked."""
        vm = super().__call__(spec, hypervisor=hypervisor, start=False, **overrides)
        add_kernel_boot(vm, self.env)
        if start:
            vm.start()
            if wait:
                vm.wait_for_state(PowerState.RUNNING, timeout=self.timeouts.state)
        return vm


@contextlib.contextmanager
def isolated_network(env: QemuEnv, suffix: str = "net") -> Iterator[str]:
    """A prefixed isolated network (no IP, no DHCP: a bare bridge) to move NICs to; removed after."""
    name = f"{env.prefix}{suffix}"
    root = ET.Element("network")
    ET.SubElement(root, "name").text = name
    ET.SubElement(root, "bridge", name=f"vak2{secrets.token_hex(3)}", stp="off")
    net = env.conn.networkDefineXML(ET.tostring(root, encoding="unicode"))
    try:
        net.create()
        yield name
    finally:
        if net.isActive():
            net.destroy()
        net.undefine()


def connect_kwargs(env: QemuEnv) -> Mapping[str, Any]:
    """``virtabstract.connect()`` keywords for the test pool and TCG."""
    return {"domain_type": "qemu", "pool": env.pool}
