"""Helpers that give the test suite a real libvirtd with the QEMU driver.

Used by pytest fixtures (kept free of pytest imports). Typical use::

    ok, why = libvirt_available()
    if not ok:
        pytest.skip(why)
    uri = ensure_libvirtd()                       # "qemu:///system"
    conn = libvirt.open(uri)
    cleanup_prefixed(conn)                        # leftovers of an earlier run
    pool = ensure_storage_pool(conn)              # dir pool "virtabstract-test"
    net = ensure_network(conn)                    # "default" NAT, else isolated fallback
    ...
    cleanup_prefixed(conn)

Everything a test creates must be named with :data:`TEST_PREFIX` ("vatest-") so that
:func:`cleanup_prefixed` can remove it and nothing else.

libvirtd is started as a plain daemon (``libvirtd -d``, ``virtlogd -d``) when its socket
does not answer: CI machines have no systemd. It keeps running after the tests; the CI
harness ends it with the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

if TYPE_CHECKING:  # pragma: no cover
    import libvirt as _libvirt_mod

__all__ = [
    "ISOLATED_NETWORK_NAME",
    "LIBVIRTD_SOCKET",
    "LIBVIRT_URI",
    "TEST_POOL_NAME",
    "TEST_POOL_PATH",
    "TEST_PREFIX",
    "LibvirtUnavailable",
    "TestNetwork",
    "cleanup_prefixed",
    "ensure_libvirtd",
    "ensure_network",
    "ensure_storage_pool",
    "libvirt_available",
    "open_connection",
    "run_prefix",
    "write_ext_relay",
]

LIBVIRT_URI = "qemu:///system"
LIBVIRTD_SOCKET = Path("/run/libvirt/libvirt-sock")
VIRTLOGD_SOCKET = Path("/run/libvirt/virtlogd-sock")
TEST_PREFIX = "vatest-"
TEST_POOL_NAME = "virtabstract-test"
TEST_POOL_PATH = Path("/var/lib/virtabstract-test/pool")
DEFAULT_NETWORK_NAME = "default"
ISOLATED_NETWORK_NAME = "virtabstract-test-net"

_DAEMON_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": "/root"}

# The standard libvirt 'default' network (as shipped in /usr/share/libvirt/networks).
_DEFAULT_NETWORK_XML = """<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>
"""

# Fallback when NAT cannot be set up (no iptables/nftables, no dnsmasq...). The subnet is
# only ever on this host's bridge.
_ISOLATED_SUBNET = ipaddress.ip_network("192.168.231.0/24")


def run_prefix(label: str = "") -> str:
    """A prefix unique to this test run, under :data:`TEST_PREFIX`: ``vatest-[label-]<8 hex>-``.

    Several test sessions can share one libvirtd (parallel pytest-xdist workers, two
    developers' suites on one machine): name objects with a run prefix and tear down with
    ``cleanup_prefixed(conn, run_prefix)`` so one run never deletes another's domains or
    volumes. Sweep the bare ``TEST_PREFIX`` only where no other run can be active.
    """
    label = f"{label}-" if label else ""
    return f"{TEST_PREFIX}{label}{uuid.uuid4().hex[:8]}-"


_EXT_RELAY = """#!{python}
import os, socket, threading
sock = socket.socket(socket.AF_UNIX)
sock.connect("{socket}")
def upstream():
    while True:
        data = os.read(0, 65536)
        if not data:
            sock.shutdown(socket.SHUT_WR)
            return
        sock.sendall(data)
threading.Thread(target=upstream, daemon=True).start()
while True:
    data = sock.recv(65536)
    if not data:
        break
    os.write(1, data)
"""


def write_ext_relay(path: Path) -> Path:
    """Write an executable relay between stdin/stdout and libvirtd's socket to *path*; return it.

    ``…+ext:///…?command=<path>`` then goes through libvirt's remote driver as over a network (keepalive,
    the event loop at open), and the relay can be frozen (SIGSTOP) to model a network that stops answering.
    """
    path.write_text(_EXT_RELAY.format(python=sys.executable, socket=LIBVIRTD_SOCKET))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


class LibvirtUnavailable(RuntimeError):
    """A real libvirtd cannot be used here; the message says why."""


@dataclasses.dataclass(frozen=True)
class TestNetwork:
    """A libvirt network guests can be attached to.

    ``dhcp`` says whether libvirt's dnsmasq hands out addresses; when False give the guest
    a static address with :meth:`static_address` (guest cmdline ``va_ip=``).
    """

    __test__ = False  # not a pytest test class

    name: str
    forward_mode: str  # "nat" or "isolated"
    dhcp: bool
    gateway: str | None
    prefixlen: int | None

    def static_address(self, index: int) -> str:
        """``ADDR/PREFIX`` for the guest number ``index`` (0-based), outside the DHCP range."""
        if self.gateway is None or self.prefixlen is None:
            raise ValueError(f"network {self.name} has no IPv4 subnet")
        net = ipaddress.ip_interface(f"{self.gateway}/{self.prefixlen}").network
        # DHCP (if any) uses .2-.199 of a /24 here; statics come from .200 up.
        return f"{net.network_address + 200 + index}/{self.prefixlen}"


def _import_libvirt() -> Any:
    import libvirt  # optional dependency (libvirt-python)

    if not hasattr(libvirt, "virConnect"):
        # Running a script from inside tests/infra/ puts this file first on sys.path.
        raise ImportError(f"'import libvirt' found {libvirt.__file__}, not libvirt-python")
    return libvirt


def libvirt_available() -> tuple[bool, str]:
    """Can this process run real-libvirt tests? Returns (ok, reason-if-not)."""
    if os.geteuid() != 0:
        return False, "real libvirt tests need root (to start libvirtd and use qemu:///system)"
    missing = [b for b in ("libvirtd", "virtlogd", "qemu-system-x86_64") if _which(b) is None]
    if missing:
        return False, (
            f"missing binaries: {', '.join(missing)} "
            "(run .ci/install-system-packages.sh: libvirt-daemon-system, qemu-system-x86)"
        )
    try:
        _import_libvirt()
    except ImportError as exc:
        return False, f"python module 'libvirt' missing (pip install libvirt-python): {exc}"
    return True, ""


def _which(name: str) -> str | None:
    return shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")


def _socket_answers(path: Path) -> bool:
    if not path.exists():
        return False
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        s.close()


def _start_daemon(binary: str) -> None:
    path = _which(binary)
    if path is None:
        raise LibvirtUnavailable(f"{binary} not found")
    # -d daemonises; std streams to /dev/null so a capturing parent (pytest) never waits
    # on pipes the daemon holds open; a clean env so the venv's variables don't leak in.
    proc = subprocess.run(
        [path, "-d"],
        env=_DAEMON_ENV,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        raise LibvirtUnavailable(
            f"{binary} -d exited {proc.returncode}: {proc.stderr.decode(errors='replace').strip()}"
        )


def _wait_for_socket(path: Path, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not _socket_answers(path):
        if time.monotonic() > deadline:
            raise LibvirtUnavailable(f"{what} socket {path} did not answer within {timeout:.0f}s")
        time.sleep(0.1)


def ensure_libvirtd(timeout: float = 30.0) -> str:
    """Make sure virtlogd and libvirtd are running (as root); return the URI to use.

    Starts ``virtlogd -d`` / ``libvirtd -d`` only when their socket does not answer (a
    systemd- or previously-started daemon is reused), then waits up to ``timeout``
    seconds for the sockets. Raises :class:`LibvirtUnavailable`.
    """
    ok, why = libvirt_available()
    if not ok:
        raise LibvirtUnavailable(why)
    _fix_kvm_device_access()
    if not _socket_answers(VIRTLOGD_SOCKET):
        _start_daemon("virtlogd")
        _wait_for_socket(VIRTLOGD_SOCKET, timeout, "virtlogd")
    if not _socket_answers(LIBVIRTD_SOCKET):
        _start_daemon("libvirtd")
        _wait_for_socket(LIBVIRTD_SOCKET, timeout, "libvirtd")
    # The socket can accept before the QEMU driver is initialised: wait for a real answer.
    libvirt = _import_libvirt()
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = libvirt.open(LIBVIRT_URI)
            try:
                conn.getLibVersion()
            finally:
                conn.close()
            return LIBVIRT_URI
        except libvirt.libvirtError as exc:
            if time.monotonic() > deadline:
                raise LibvirtUnavailable(f"cannot open {LIBVIRT_URI}: {exc}") from exc
            time.sleep(0.2)


def _fix_kvm_device_access() -> None:
    """Give /dev/kvm the group access Debian's udev rule would (root:kvm 0660).

    Without udev (containers, microVMs) /dev/kvm can be root:root 0600. Then libvirtd's probe of
    QEMU (run as root) finds KVM usable while its cache check (as libvirt-qemu) finds it not, so it
    throws the capabilities cache away and re-probes QEMU on *every* call: 20-40 s each under TCG.
    """
    device = Path("/dev/kvm")
    try:
        info = device.stat()
    except OSError:
        return
    import grp

    try:
        kvm_gid = grp.getgrnam("kvm").gr_gid
    except KeyError:
        return
    if info.st_gid != kvm_gid or (info.st_mode & 0o060) != 0o060:
        try:
            os.chown(device, -1, kvm_gid)
            os.chmod(device, (info.st_mode & 0o7777) | 0o060)
        except OSError:  # not root, or a read-only /dev: the daemon will just be slow
            return


def open_connection(uri: str | None = None) -> _libvirt_mod.virConnect:
    """``ensure_libvirtd()`` then ``libvirt.open()``."""
    libvirt = _import_libvirt()
    return libvirt.open(uri or ensure_libvirtd())


# --------------------------------------------------------------------------- storage


def _ensure_dir_for_qemu(path: Path) -> None:
    """Create ``path`` 0755 and make every parent searchable by libvirt-qemu."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    for parent in path.parents:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod((mode & 0o7777) | 0o001)


def ensure_storage_pool(
    conn: _libvirt_mod.virConnect,
    name: str = TEST_POOL_NAME,
    path: str | os.PathLike[str] = TEST_POOL_PATH,
) -> _libvirt_mod.virStoragePool:
    """A persistent, active ``dir`` pool ``name`` at ``path`` (created 0755, readable by
    libvirt-qemu). An existing pool of that name is reused (built and started if needed)."""
    libvirt = _import_libvirt()
    target = Path(path)
    _ensure_dir_for_qemu(target)
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_NO_STORAGE_POOL:
            raise
        xml = (
            "<pool type='dir'>"
            f"<name>{escape(name)}</name>"
            f"<target><path>{escape(str(target))}</path>"
            "<permissions><mode>0755</mode><owner>0</owner><group>0</group></permissions>"
            "</target></pool>"
        )
        pool = conn.storagePoolDefineXML(xml, 0)
    if not pool.isActive():
        with contextlib.suppress(libvirt.libvirtError):
            pool.build(0)  # mkdir for dir pools; harmless if it exists
        pool.create(0)
    pool.refresh(0)
    return pool


# --------------------------------------------------------------------------- networks


def _network_info(net: Any, forward_mode: str) -> TestNetwork:
    root = ET.fromstring(net.XMLDesc(0))
    gateway = prefixlen = None
    dhcp = False
    for ip in root.findall("ip"):
        if ip.get("family", "ipv4") != "ipv4":
            continue
        gateway = ip.get("address")
        if ip.get("prefix"):
            prefixlen = int(ip.get("prefix", "24"))
        elif ip.get("netmask"):
            prefixlen = ipaddress.ip_network(f"0.0.0.0/{ip.get('netmask')}").prefixlen
        dhcp = ip.find("dhcp") is not None
        break
    fwd = root.find("forward")
    mode = fwd.get("mode", "nat") if fwd is not None else "isolated"
    return TestNetwork(
        name=net.name(),
        forward_mode=mode if fwd is not None else forward_mode,
        dhcp=dhcp and _which("dnsmasq") is not None,
        gateway=gateway,
        prefixlen=prefixlen,
    )


def _activate(net: Any) -> None:
    if not net.isActive():
        net.create()


def ensure_network(conn: _libvirt_mod.virConnect) -> TestNetwork:
    """Make the ``default`` NAT network exist and be active; return it.

    If that is impossible here (no dnsmasq, no iptables, subnet clash...), fall back to an
    isolated network :data:`ISOLATED_NETWORK_NAME` (with DHCP when dnsmasq exists, else
    without: then guests need ``va_ip=``). Raises :class:`LibvirtUnavailable` if neither
    can be started; the message holds both errors.
    """
    libvirt = _import_libvirt()
    errors: list[str] = []
    try:
        try:
            net = conn.networkLookupByName(DEFAULT_NETWORK_NAME)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            net = conn.networkDefineXML(_DEFAULT_NETWORK_XML)
        _activate(net)
        return _network_info(net, "nat")
    except libvirt.libvirtError as exc:
        errors.append(f"default NAT network: {exc}")

    gw = _ISOLATED_SUBNET.network_address + 1
    dhcp = (
        f"<dhcp><range start='{_ISOLATED_SUBNET.network_address + 2}' "
        f"end='{_ISOLATED_SUBNET.network_address + 199}'/></dhcp>"
        if _which("dnsmasq")
        else ""
    )
    xml = (
        f"<network><name>{ISOLATED_NETWORK_NAME}</name>"
        "<bridge name='vabr-test' stp='off' delay='0'/>"
        f"<ip address='{gw}' prefix='{_ISOLATED_SUBNET.prefixlen}'>{dhcp}</ip>"
        "</network>"
    )
    try:
        try:
            net = conn.networkLookupByName(ISOLATED_NETWORK_NAME)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() != libvirt.VIR_ERR_NO_NETWORK:
                raise
            net = conn.networkDefineXML(xml)
        _activate(net)
        return _network_info(net, "isolated")
    except libvirt.libvirtError as exc:
        errors.append(f"isolated network {ISOLATED_NETWORK_NAME}: {exc}")
    raise LibvirtUnavailable("no usable libvirt network: " + "; ".join(errors))


# --------------------------------------------------------------------------- cleanup


def _ignore_gone(libvirt: Any, fn: Any, *args: Any) -> bool:
    """Call fn; swallow 'object no longer exists / not running' errors. True if it ran."""
    gone = {
        libvirt.VIR_ERR_NO_DOMAIN,
        libvirt.VIR_ERR_OPERATION_INVALID,  # e.g. destroy on an inactive domain
        libvirt.VIR_ERR_NO_STORAGE_VOL,
        libvirt.VIR_ERR_NO_STORAGE_POOL,
        libvirt.VIR_ERR_NO_NETWORK,
    }
    try:
        fn(*args)
        return True
    except libvirt.libvirtError as exc:
        if exc.get_error_code() in gone:
            return False
        raise


def _undefine_domain(libvirt: Any, dom: Any) -> None:
    flags = (
        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    )
    flags |= getattr(libvirt, "VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA", 0)
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as exc:
        code = exc.get_error_code()
        if code == libvirt.VIR_ERR_NO_DOMAIN:
            return
        if code == libvirt.VIR_ERR_OPERATION_INVALID and not dom.isPersistent():
            return  # transient domain: gone once destroyed
        # Older drivers reject some flags: remove the pieces one by one, then undefine.
        if dom.hasManagedSaveImage(0):
            _ignore_gone(libvirt, dom.managedSaveRemove, 0)
        with contextlib.suppress(libvirt.libvirtError):
            for snap in dom.listAllSnapshots(0):
                _ignore_gone(libvirt, snap.delete, libvirt.VIR_DOMAIN_SNAPSHOT_DELETE_METADATA_ONLY)
        _ignore_gone(libvirt, dom.undefine)


def cleanup_prefixed(conn: _libvirt_mod.virConnect, prefix: str = TEST_PREFIX) -> list[str]:
    """Remove every libvirt object whose name starts with ``prefix``; return what went.

    * domains: destroyed if running, then undefined with their managed-save image,
      snapshot (and checkpoint) metadata and NVRAM;
    * volumes in every active pool: deleted (pools are refreshed first);
    * networks and storage pools named with the prefix: stopped and undefined
      (a pool's volumes go first; its directory stays).

    Objects that vanish meanwhile are ignored; other errors propagate.
    """
    if not prefix:
        raise ValueError("refusing to clean up with an empty prefix")
    libvirt = _import_libvirt()
    removed: list[str] = []

    for dom in conn.listAllDomains(0):
        try:
            name = dom.name()
        except libvirt.libvirtError:
            continue
        if not name.startswith(prefix):
            continue
        if dom.isActive():
            _ignore_gone(libvirt, dom.destroy)
        _undefine_domain(libvirt, dom)
        removed.append(f"domain:{name}")

    for pool in conn.listAllStoragePools(0):
        if not pool.isActive():
            continue
        with contextlib.suppress(libvirt.libvirtError):
            pool.refresh(0)
        pool_prefixed = pool.name().startswith(prefix)
        for vol in pool.listAllVolumes(0):
            if (pool_prefixed or vol.name().startswith(prefix)) and _ignore_gone(libvirt, vol.delete, 0):
                removed.append(f"volume:{pool.name()}/{vol.name()}")

    for pool in conn.listAllStoragePools(0):
        if pool.name().startswith(prefix):
            if pool.isActive():
                _ignore_gone(libvirt, pool.destroy)
            if pool.isPersistent():
                _ignore_gone(libvirt, pool.undefine)
            removed.append(f"pool:{pool.name()}")

    for net in conn.listAllNetworks(0):
        if net.name().startswith(prefix):
            if net.isActive():
                _ignore_gone(libvirt, net.destroy)
            if net.isPersistent():
                _ignore_gone(libvirt, net.undefine)
            removed.append(f"network:{net.name()}")

    return removed
