"""Simulated fleets: libvirt test-driver node files, inactive qemu:///system domains, vcsim inventories."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._common import Skip, require_vcsim

PREFIX = "vabench-"
"""Name prefix of every libvirt domain the harness defines (and removes) on a real libvirtd."""

_LIBOSINFO = (
    "<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'>"
    "<libosinfo:os id='http://debian.org/debian/12'/></libosinfo:libosinfo></metadata>"
)
_TEST_NETWORK = (
    "<network><name>default</name><uuid>dd8fe884-6c02-601e-7551-cca97df1c5df</uuid><bridge name='virbr0'/>"
    "<forward/><ip address='192.168.122.1' netmask='255.255.255.0'><dhcp>"
    "<range start='192.168.122.2' end='192.168.122.254'/></dhcp></ip></network>"
)


def _uuid(index: int) -> str:
    return f"0000abcd-0000-4000-8000-{index:012x}"


def _mac(index: int) -> str:
    return f"52:54:00:{(index >> 16) & 255:02x}:{(index >> 8) & 255:02x}:{index & 255:02x}"


def test_domain_xml(index: int) -> str:
    """A test-driver domain: even index running, odd shut off, 2 vCPUs, 512 MiB, one NIC, a libosinfo id."""
    state = 1 if index % 2 == 0 else 5  # VIR_DOMAIN_RUNNING / VIR_DOMAIN_SHUTOFF
    return (
        "<domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>"
        f"<name>{PREFIX}{index:05d}</name><uuid>{_uuid(index)}</uuid>"
        f"<memory unit='MiB'>512</memory><vcpu>2</vcpu>{_LIBOSINFO}<os><type arch='x86_64'>hvm</type></os>"
        f"<devices><interface type='network'><mac address='{_mac(index)}'/><source network='default'/>"
        f"</interface></devices><test:runstate>{state}</test:runstate></domain>"
    )


def write_node_file(directory: Path, n: int) -> Path:
    """A ``test:///…`` node file with *n* domains (and the ``default`` network)."""
    path = directory / f"node-{n}.xml"
    if not path.exists():
        domains = "\n".join(test_domain_xml(i) for i in range(n))
        path.write_text(f"<node>\n{_TEST_NETWORK}\n{domains}\n</node>\n")
    return path


@contextlib.contextmanager
def test_node(n: int) -> Iterator[str]:
    """Yield a ``test:///path.xml`` URI of a fresh node file with *n* domains (removed afterwards)."""
    with tempfile.TemporaryDirectory(prefix="vabench-") as tmp:
        yield f"test://{write_node_file(Path(tmp), n)}"


def qemu_domain_xml(index: int) -> str:
    """An inactive qemu domain (never started): 2 vCPUs, 512 MiB, a libosinfo id, no devices."""
    return (
        f"<domain type='qemu'><name>{PREFIX}{index:05d}</name><uuid>{_uuid(index)}</uuid>"
        f"<memory unit='MiB'>512</memory><vcpu>2</vcpu>{_LIBOSINFO}"
        "<os><type arch='x86_64' machine='pc'>hvm</type></os></domain>"
    )


def remove_prefixed(conn: Any) -> int:
    """Undefine (after destroying) every domain named with :data:`PREFIX`; return how many went."""
    import libvirt

    removed = 0
    for dom in conn.listAllDomains(0):
        if not dom.name().startswith(PREFIX):
            continue
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            removed += 1
    return removed


@contextlib.contextmanager
def qemu_fleet(uri: str, n: int) -> Iterator[str]:
    """Define *n* inactive ``vabench-`` domains on *uri*; always undefine them afterwards."""
    import libvirt

    conn = libvirt.open(uri)
    try:
        remove_prefixed(conn)
        for index in range(n):
            conn.defineXML(qemu_domain_xml(index))
        yield uri
    finally:
        remove_prefixed(conn)
        conn.close()


@contextlib.contextmanager
def vcsim_fleet(n: int, *, tls: bool = True, autostart: bool = True, **kwargs: Any) -> Iterator[Any]:
    """A vCenter simulator with *n* VMs in one cluster of 4 hosts (and no standalone host)."""
    vcsim = require_vcsim()
    try:
        with vcsim.run_vcsim(
            model="vpx",
            vms=n,
            hosts=4,
            clusters=1,
            standalone_hosts=0,
            tls=tls,
            autostart=autostart,
            start_timeout=120,
            **kwargs,
        ) as sim:
            yield sim
    except vcsim.VcsimError as exc:
        raise Skip(f"vcsim did not start: {str(exc).splitlines()[0]}") from exc


def va_url(sim: Any) -> str:
    """The virtabstract URL of a running simulator (vpx://, https with its CA, or ?protocol=http)."""
    query = f"ca_file={sim.ca_cert}" if sim.ca_cert else "protocol=http"
    return f"vpx://{sim.host}:{sim.port}/?{query}"


def smart_connect(sim: Any) -> Any:
    """A raw pyVmomi ServiceInstance for *sim*."""
    import ssl

    from pyVim.connect import SmartConnect

    if sim.ca_cert:
        context = ssl.create_default_context(cafile=str(sim.ca_cert))
        return SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, sslContext=context)
    return SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, protocol="http")
