"""Build (at test time) and cache a tiny Linux guest that runs qemu-guest-agent.

Everything comes from Debian packages fetched with ``apt-get download`` and unpacked
with ``dpkg -x`` -- nothing is installed on the host, nothing else is downloaded:

* the kernel and its virtio modules from ``linux-image-*-cloud-amd64``;
* ``busybox`` from ``busybox-static`` (PID 1 via busybox init, shell, ip, udhcpc, acpid);
* ``qemu-ga`` from ``qemu-guest-agent`` plus every shared library ``ldd`` lists for it.

They are packed with ``cpio -H newc`` + gzip into an initramfs and booted with libvirt's
direct kernel boot (``<os><kernel/><initrd/><cmdline/></os>``); there is no disk image.

What the guest needs from the domain XML (the real backend builds its own XML, see
:data:`GUEST_XML_REQUIREMENTS` and ``tests/infra/README.md``):

* ``<domain type='qemu'>`` (TCG; KVM works too where it exists but is not relied on);
* ``<os><type arch='x86_64' machine='pc'>hvm</type><kernel>`` / ``<initrd>`` /
  ``<cmdline>`` from :class:`GuestImage`;
* ``<features><acpi/></features>`` so ACPI power-off and the power button work;
* ``<channel type='unix'><target type='virtio' name='org.qemu.guest_agent.0'/></channel>``
  -- the agent finds its port by that name under /sys/class/virtio-ports;
* ``<serial type='pty'>`` + ``<console type='pty'><target type='serial'/>`` (``console=ttyS0``);
* optionally ``<interface>`` with ``<model type='virtio'/>`` (eth0) and
  ``<disk>`` with ``<target bus='virtio'/>`` (vda, vdb, ...).

Kernel command line switches understood by the guest's init (all optional):

* ``va_hostname=NAME``   hostname (default ``vatest-guest``);
* ``va_ip=ADDR/PREFIX``  static IPv4 on eth0 (else DHCP with udhcpc in the background);
  ``va_ip=off`` leaves IPv4 unconfigured;
* ``va_gw=ADDR``         default IPv4 route when ``va_ip`` is static.

An IPv6 link-local address (EUI-64 from the MAC) is always configured on every NIC.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "AGENT_CHANNEL_NAME",
    "BUILDER_VERSION",
    "GUEST_XML_REQUIREMENTS",
    "GuestDisk",
    "GuestImage",
    "GuestImageError",
    "build_guest_image",
    "default_cache_dir",
    "guest_domain_xml",
]

#: Bump when the contents of the initramfs change. The cache key also holds a hash of
#: this file, so any edit here rebuilds the image.
BUILDER_VERSION = "1"

#: virtio-serial port name that the guest's qemu-ga looks for (and libvirt connects to).
AGENT_CHANNEL_NAME = "org.qemu.guest_agent.0"

KERNEL_METAPACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"
AGENT_PACKAGE = "qemu-guest-agent"

#: Modules insmod-ed by the guest's init, in this order (dependencies first).
#: Missing ones are skipped (only the first six are required for the agent).
GUEST_MODULES: tuple[str, ...] = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "virtio_console",
    "failover",
    "net_failover",
    "virtio_net",
    "virtio_blk",
    "virtio-rng",
    "evdev",
    "button",
)
REQUIRED_MODULES = GUEST_MODULES[:6]

#: Base kernel command line; ``GuestImage.cmdline_for`` appends the va_* switches.
BASE_CMDLINE = "console=ttyS0 quiet 8250.nr_uarts=1 no_timer_check mitigations=off"

GUEST_XML_REQUIREMENTS = textwrap.dedent(
    f"""\
    <domain type='qemu'>                       <!-- TCG; 'kvm' also works but is not required -->
      <os>
        <type arch='x86_64' machine='pc'>hvm</type>
        <kernel>GuestImage.kernel</kernel>
        <initrd>GuestImage.initrd</initrd>
        <cmdline>GuestImage.cmdline (+ va_hostname=, va_ip=, va_gw=)</cmdline>
      </os>
      <features><acpi/></features>           <!-- ACPI power button + ACPI power-off -->
      <devices>
        <channel type='unix'>                 <!-- qemu-ga; the guest looks it up by name -->
          <target type='virtio' name='{AGENT_CHANNEL_NAME}'/>
        </channel>
        <serial type='pty'><target port='0'/></serial>   <!-- console=ttyS0 -->
        <console type='pty'><target type='serial' port='0'/></console>
        <interface type='network'>           <!-- optional: eth0, DHCP or va_ip= -->
          <source network='default'/><model type='virtio'/>
        </interface>
        <disk type='file' device='disk'>     <!-- optional: vda, vdb, ... (not mounted) -->
          <driver name='qemu' type='qcow2'/><source file='...'/>
          <target dev='vda' bus='virtio'/>
        </disk>
      </devices>
    </domain>
    """
)


class GuestImageError(RuntimeError):
    """The guest image could not be built."""


@dataclasses.dataclass(frozen=True)
class GuestImage:
    """A built guest: boot it with direct kernel boot."""

    kernel: Path
    initrd: Path
    cmdline: str
    kernel_version: str
    packages: dict[str, str]

    def cmdline_for(
        self,
        *,
        hostname: str | None = None,
        ip: str | None = None,
        gateway: str | None = None,
    ) -> str:
        """The kernel command line with the guest's own switches appended."""
        parts = [self.cmdline]
        for key, value in (("va_hostname", hostname), ("va_ip", ip), ("va_gw", gateway)):
            if value is not None:
                if not value or any(c.isspace() for c in value):
                    raise ValueError(f"{key} must be a non-empty word, got {value!r}")
                parts.append(f"{key}={value}")
        return " ".join(parts)


@dataclasses.dataclass(frozen=True)
class GuestDisk:
    """An extra disk for :func:`guest_domain_xml` (appears as /dev/vdX in the guest)."""

    path: str
    target: str = "vda"
    format: str = "qcow2"
    readonly: bool = False


def default_cache_dir() -> Path:
    return Path(os.environ.get("VIRTABSTRACT_TEST_CACHE") or "/var/cache/virtabstract-test")


# --------------------------------------------------------------------------- building


def build_guest_image(cache_dir: str | os.PathLike[str] | None = None, *, force: bool = False) -> GuestImage:
    """Return the cached guest image, building it first if needed.

    Safe to call from several processes at once (an flock serialises builds). The
    cache holds ``guest-v<BUILDER_VERSION>/{vmlinuz,initrd.img,meta.json}``; all files
    are world-readable and the directories world-traversable so that QEMU, running as
    libvirt-qemu, can open them. Raises :class:`GuestImageError` with the reason.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    _make_world_readable(cache)
    final = cache / f"guest-v{BUILDER_VERSION}-{_builder_hash()}"
    with _locked(cache / ".lock"):
        if not force:
            image = _load(final)
            if image is not None:
                return image
        work = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
        try:
            _build(work)
            if final.exists():
                shutil.rmtree(final)
            (work / "out").rename(final)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        image = _load(final)
        if image is None:  # pragma: no cover - _build always writes meta.json
            raise GuestImageError(f"built image in {final} is unreadable")
        for old in cache.glob("guest-v*"):  # images of older builders
            if old != final:
                shutil.rmtree(old, ignore_errors=True)
        _check_readable_by_others(image.kernel)
        _check_readable_by_others(image.initrd)
        return image


def _builder_hash() -> str:
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _load(directory: Path) -> GuestImage | None:
    meta_path = directory / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("builder_version") != BUILDER_VERSION:
        return None
    kernel, initrd = directory / "vmlinuz", directory / "initrd.img"
    if not (kernel.is_file() and initrd.is_file()):
        return None
    if hashlib.sha256(initrd.read_bytes()).hexdigest() != meta.get("initrd_sha256"):
        return None
    return GuestImage(
        kernel=kernel,
        initrd=initrd,
        cmdline=meta["cmdline"],
        kernel_version=meta["kernel_version"],
        packages=dict(meta["packages"]),
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    try:
        proc = subprocess.run(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except FileNotFoundError as exc:
        raise GuestImageError(f"{cmd[0]} not found (see .ci/install-system-packages.sh)") from exc
    if proc.returncode != 0:
        raise GuestImageError(f"{' '.join(cmd)} failed with {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


_apt_updated = False


def _apt_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG"))}
    env.update(LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    return env


def _apt(*args: str, cwd: Path | None = None) -> str:
    """Run apt-get/apt-cache; on failure run ``apt-get update`` once (as root) and retry."""
    global _apt_updated
    try:
        return _run(args, cwd=cwd, env=_apt_env())
    except GuestImageError:
        if _apt_updated or os.geteuid() != 0:
            raise
        _run(["apt-get", "update", "-qq"], env=_apt_env())
        _apt_updated = True
        return _run(args, cwd=cwd, env=_apt_env())


def _resolve_kernel_package() -> str:
    out = _apt("apt-cache", "depends", KERNEL_METAPACKAGE)
    names: list[str] = re.findall(r"Depends:\s+(linux-image-\S+-cloud-amd64)\b", out)
    if not names:  # stale or missing package lists: refresh once
        global _apt_updated
        if not _apt_updated and os.geteuid() == 0:
            _run(["apt-get", "update", "-qq"], env=_apt_env())
            _apt_updated = True
            out = _apt("apt-cache", "depends", KERNEL_METAPACKAGE)
            names = re.findall(r"Depends:\s+(linux-image-\S+-cloud-amd64)\b", out)
    if not names:
        raise GuestImageError(f"cannot resolve {KERNEL_METAPACKAGE}:\n{out}")
    return names[0]


def _download_and_extract(packages: Sequence[str], downloads: Path, root: Path) -> dict[str, str]:
    """apt-get download + dpkg -x each package into ``root``; return name -> version."""
    downloads.mkdir(parents=True, exist_ok=True)
    _apt("apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages, cwd=downloads)
    versions: dict[str, str] = {}
    for deb in sorted(downloads.glob("*.deb")):
        fields = _run(["dpkg-deb", "-W", "--showformat=${Package}\t${Version}", str(deb)])
        name, _, version = fields.partition("\t")
        if name in versions:
            continue
        versions[name] = version
        _run(["dpkg-deb", "-x", str(deb), str(root)])
    missing = [p for p in packages if p not in versions]
    if missing:
        raise GuestImageError(f"apt-get download did not produce {missing}")
    return versions


def _ldd(binary: Path, lib_dirs: Sequence[Path]) -> tuple[list[Path], list[str]]:
    env = dict(os.environ, LC_ALL="C")
    if lib_dirs:
        env["LD_LIBRARY_PATH"] = ":".join(str(d) for d in lib_dirs)
    out = _run(["ldd", str(binary)], env=env)
    found: list[Path] = []
    missing: list[str] = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" in line:
            name, _, rest = line.partition("=>")
            rest = rest.strip()
            if rest.startswith("not found"):
                missing.append(name.strip())
            elif rest.startswith("/"):
                found.append(Path(rest.split()[0]))
        elif line.startswith("/"):
            found.append(Path(line.split()[0]))  # the dynamic loader
    return found, missing


def _build(work: Path) -> None:
    for tool in ("apt-get", "apt-cache", "dpkg-deb", "cpio", "gzip", "ldd"):
        if shutil.which(tool) is None:
            raise GuestImageError(f"{tool} not found (see .ci/install-system-packages.sh)")

    kernel_pkg = _resolve_kernel_package()
    extracted = work / "extracted"
    packages = _download_and_extract([kernel_pkg, BUSYBOX_PACKAGE, AGENT_PACKAGE], work / "debs", extracted)

    boot = sorted((extracted / "boot").glob("vmlinuz-*"))
    if not boot:
        raise GuestImageError(f"{kernel_pkg} has no /boot/vmlinuz-*")
    kernel_version = boot[0].name[len("vmlinuz-") :]
    moddir = extracted / "lib" / "modules" / kernel_version

    root = work / "root"
    for d in (
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/acpi/PWRF",
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/log",
        "var/lib",
        "root",
        "mnt",
        f"lib/modules/{kernel_version}",
    ):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    (root / "var" / "run").symlink_to("../run")

    # busybox and its applet links
    busybox = extracted / "bin" / "busybox"
    if not busybox.is_file():
        raise GuestImageError(f"{BUSYBOX_PACKAGE} has no /bin/busybox")
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = _run([str(busybox), "--list-full"]).split()
    for applet in applets:
        link = root / applet
        if link.exists() or link.is_symlink() or applet in ("sbin/shutdown",):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(root / "bin" / "busybox", link.parent))
    (root / "init").symlink_to("bin/busybox")

    # qemu-ga and its shared libraries (from the host, or from downloaded debs if absent)
    qga = extracted / "usr" / "sbin" / "qemu-ga"
    if not qga.is_file():
        raise GuestImageError(f"{AGENT_PACKAGE} has no /usr/sbin/qemu-ga")
    shutil.copy2(qga, root / "usr" / "sbin" / "qemu-ga")
    lib_dirs = [
        extracted / "lib" / "x86_64-linux-gnu",
        extracted / "usr" / "lib" / "x86_64-linux-gnu",
    ]
    libs, missing = _ldd(qga, lib_dirs)
    if missing:
        deps = _apt("apt-cache", "depends", "--no-pre-depends", AGENT_PACKAGE)
        dep_pkgs = sorted(set(re.findall(r"^\s+Depends:\s+([a-z0-9][a-z0-9.+-]*)$", deps, re.MULTILINE)))
        _download_and_extract(dep_pkgs, work / "debs-deps", extracted)
        libs, missing = _ldd(qga, lib_dirs)
        if missing:
            raise GuestImageError(f"qemu-ga needs libraries not found anywhere: {missing}")
    for lib in libs:
        dest = root / _strip_extract_prefix(lib, extracted).relative_to("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)

    # kernel modules, flat, in load order
    order: list[str] = []
    for name in GUEST_MODULES:
        found = list(moddir.rglob(f"{name}.ko")) or list(moddir.rglob(f"{name}.ko.*"))
        if not found:
            if name in REQUIRED_MODULES:
                raise GuestImageError(f"module {name} not in {kernel_pkg}")
            continue
        ko = found[0]
        if ko.suffix != ".ko":
            raise GuestImageError(f"compressed module {ko.name}: busybox insmod cannot load it")
        shutil.copy2(ko, root / "lib" / "modules" / kernel_version / ko.name)
        order.append(ko.name)

    _write_guest_files(root, kernel_version, order, packages)

    # pack
    out = work / "out"
    out.mkdir()
    shutil.copy2(boot[0], out / "vmlinuz")
    _pack_initramfs(root, out / "initrd.img")
    meta = {
        "builder_version": BUILDER_VERSION,
        "kernel_version": kernel_version,
        "cmdline": BASE_CMDLINE,
        "packages": packages,
        "modules": order,
        "initrd_sha256": hashlib.sha256((out / "initrd.img").read_bytes()).hexdigest(),
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    _make_world_readable(out)
    for f in out.iterdir():
        _make_world_readable(f)


def _strip_extract_prefix(lib: Path, extracted: Path) -> Path:
    try:
        return Path("/") / lib.relative_to(extracted)
    except ValueError:
        return lib


def _pack_initramfs(root: Path, dest: Path) -> None:
    files = sorted(
        os.path.relpath(os.path.join(dirpath, name), root)
        for dirpath, dirnames, filenames in os.walk(root)
        for name in dirnames + filenames
    )
    listing = "\n".join(files) + "\n"
    with open(dest, "wb") as out:
        cpio = subprocess.Popen(
            ["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0", "--reproducible"],
            cwd=root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        gzip = subprocess.Popen(["gzip", "-6", "-n"], stdin=cpio.stdout, stdout=out)
        assert cpio.stdin is not None and cpio.stdout is not None
        cpio.stdout.close()
        cpio.stdin.write(listing.encode())
        cpio.stdin.close()
        if cpio.wait() != 0 or gzip.wait() != 0:
            raise GuestImageError("cpio | gzip failed")


def _make_world_readable(path: Path) -> None:
    mode = path.stat().st_mode
    extra = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
    if path.is_dir():
        extra |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
    if mode & extra != extra:
        path.chmod(stat.S_IMODE(mode) | extra)


def _check_readable_by_others(path: Path) -> None:
    """QEMU runs as libvirt-qemu: every parent must be o+x and the file o+r."""
    p = path.resolve()
    if not p.stat().st_mode & stat.S_IROTH:
        raise GuestImageError(f"{p} is not world-readable; libvirt-qemu cannot open it")
    for parent in p.parents:
        if not parent.stat().st_mode & stat.S_IXOTH:
            raise GuestImageError(
                f"{parent} is not world-searchable (o+x), so libvirt-qemu cannot reach {p}; "
                "set VIRTABSTRACT_TEST_CACHE to a path under a world-searchable directory"
            )


# --------------------------------------------------------------------------- guest files


def _write(root: Path, rel: str, content: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(content).lstrip("\n"))
    path.chmod(mode)


def _write_guest_files(root: Path, kernel_version: str, modules: list[str], packages: dict[str, str]) -> None:
    _write(root, "etc/modules-order", "\n".join(modules) + "\n")
    _write(
        root,
        "etc/os-release",
        f"""
        NAME="virtabstract test guest"
        ID=virtabstract-testguest
        ID_LIKE=debian
        PRETTY_NAME="virtabstract test guest (busybox + qemu-ga, kernel {kernel_version})"
        VERSION_ID="{BUILDER_VERSION}"
        VERSION="{BUILDER_VERSION} (qemu-guest-agent {packages.get(AGENT_PACKAGE, "?")})"
        VARIANT="initramfs"
        VARIANT_ID=initramfs
        """,
    )
    _write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n")
    _write(root, "etc/group", "root:x:0:\n")
    _write(root, "etc/shadow", "root:*:19000:0:99999:7:::\n", 0o600)
    _write(root, "etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    _write(root, "etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n")
    _write(root, "etc/resolv.conf", "")

    # busybox init: sysinit, then respawn qemu-ga and acpid; shutdown hooks.
    _write(
        root,
        "etc/inittab",
        """
        ::sysinit:/etc/init.d/rcS
        ::respawn:/sbin/va-qemu-ga
        ::respawn:/sbin/va-acpid
        ::askfirst:-/bin/sh
        ::ctrlaltdel:/sbin/poweroff
        ::shutdown:/etc/init.d/rcK
        """,
    )
    _write(
        root,
        "etc/init.d/rcS",
        r"""
        #!/bin/sh
        # Guest init (run once by busybox init). Keep it quick: TCG is slow.
        export PATH=/sbin:/bin:/usr/sbin:/usr/bin
        log() { echo "va-init: $*" > /dev/kmsg; echo "va-init: $*" > /dev/console; }
        mount -t proc proc /proc
        mount -t sysfs sysfs /sys
        mount -t devtmpfs devtmpfs /dev 2>/dev/null
        mkdir -p /dev/pts /dev/shm
        mount -t devpts devpts /dev/pts
        mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
        mkdir -p /run/qemu-ga

        for m in $(cat /etc/modules-order); do
            insmod "/lib/modules/$(uname -r)/$m" 2>/dev/null || log "insmod $m failed"
        done

        VA_HOSTNAME=vatest-guest VA_IP= VA_GW=
        for arg in $(cat /proc/cmdline); do
            case "$arg" in
                va_hostname=*) VA_HOSTNAME=${arg#va_hostname=} ;;
                va_ip=*) VA_IP=${arg#va_ip=} ;;
                va_gw=*) VA_GW=${arg#va_gw=} ;;
            esac
        done
        hostname "$VA_HOSTNAME"
        echo "$VA_HOSTNAME" > /etc/hostname

        ip link set lo up
        for dev in /sys/class/net/*; do
            n=${dev##*/}
            [ "$n" = lo ] && continue
            # Always an IPv6 link-local (EUI-64 from the MAC), even without carrier, no DAD wait.
            echo 1 > /proc/sys/net/ipv6/conf/$n/addr_gen_mode 2>/dev/null
            echo 0 > /proc/sys/net/ipv6/conf/$n/disable_ipv6 2>/dev/null
            ll=
            set -- $(tr ':' ' ' < "$dev/address")
            [ $# -eq 6 ] && ll=$(printf 'fe80::%02x%s:%sff:fe%s:%s%s' $((0x$1 ^ 2)) "$2" "$3" "$4" "$5" "$6")
            echo 0 > /proc/sys/net/ipv6/conf/$n/accept_dad 2>/dev/null
            ip link set "$n" up
            [ -n "$ll" ] && ip -6 addr add "$ll/64" dev "$n" scope link
        done

        if [ -e /sys/class/net/eth0 ]; then
            case "$VA_IP" in
                off) ;;
                "")
                    udhcpc -f -S -i eth0 -s /etc/udhcpc.script -T 1 -t 10 -A 3 \
                        -x "hostname:$VA_HOSTNAME" >/dev/null 2>&1 </dev/null &
                    ;;
                *)
                    ip addr add "$VA_IP" dev eth0
                    [ -n "$VA_GW" ] && ip route add default via "$VA_GW"
                    ;;
            esac
        fi
        log "sysinit done at $(cut -d' ' -f1 /proc/uptime)s"
        """,
        0o755,
    )
    _write(
        root,
        "etc/init.d/rcK",
        """
        #!/bin/sh
        echo "va-init: shutting down" > /dev/console
        sync
        """,
        0o755,
    )
    _write(
        root,
        "sbin/va-qemu-ga",
        f"""
        #!/bin/sh
        # Find the virtio-serial port named {AGENT_CHANNEL_NAME} (no udev, so no
        # /dev/virtio-ports/ symlinks: the node is /dev/vportNpM) and run qemu-ga on it.
        export PATH=/sbin:/bin:/usr/sbin:/usr/bin
        i=0
        while [ $i -lt 100 ]; do
            for p in /sys/class/virtio-ports/vport*; do
                [ -r "$p/name" ] || continue
                if [ "$(cat "$p/name")" = "{AGENT_CHANNEL_NAME}" ] && [ -c "/dev/${{p##*/}}" ]; then
                    echo "va-init: qemu-ga on /dev/${{p##*/}} at $(cut -d' ' -f1 /proc/uptime)s" \
                        | tee /dev/kmsg > /dev/console
                    exec /usr/sbin/qemu-ga -m virtio-serial -p "/dev/${{p##*/}}" \\
                        -t /run/qemu-ga -f /run/qemu-ga.pid
                fi
            done
            i=$((i + 1))
            usleep 50000
        done
        echo "va-init: no virtio port named {AGENT_CHANNEL_NAME}; retrying" > /dev/console
        sleep 5
        """,
        0o755,
    )
    _write(
        root,
        "sbin/va-acpid",
        """
        #!/bin/sh
        # ACPI power button -> /etc/acpi/PWRF/00000080 -> poweroff (busybox acpid reads
        # /dev/input/event*, provided by the evdev + button modules).
        if ls /dev/input/event* >/dev/null 2>&1; then
            exec /sbin/acpid -f -d -c /etc/acpi -a /etc/acpid.conf >/dev/null 2>&1
        fi
        sleep 3600
        """,
        0o755,
    )
    _write(root, "etc/acpid.conf", "PWRF PWRF/00000080\n")
    _write(root, "etc/acpi/PWRF/00000080", "#!/bin/sh\nexec /sbin/poweroff\n", 0o755)
    _write(
        root,
        "sbin/shutdown",
        """
        #!/bin/sh
        # qemu-ga's guest-shutdown runs: /sbin/shutdown -h -P|-H|-r +0 "message"
        action=poweroff
        for a in "$@"; do
            case "$a" in
                -r) action=reboot ;;
                -H) action=halt ;;
                -P) action=poweroff ;;
            esac
        done
        exec /bin/busybox "$action"
        """,
        0o755,
    )
    _write(
        root,
        "etc/udhcpc.script",
        """
        #!/bin/sh
        # Minimal udhcpc hook: set the address, default route and resolv.conf.
        case "$1" in
            deconfig)
                ip -4 addr flush dev "$interface"
                ;;
            bound|renew)
                ip -4 addr flush dev "$interface"
                ip addr add "$ip/${mask:-24}" dev "$interface"
                if [ -n "$router" ]; then
                    ip route del default 2>/dev/null
                    for r in $router; do ip route add default via "$r" dev "$interface" && break; done
                fi
                : > /etc/resolv.conf
                for d in $dns; do echo "nameserver $d" >> /etc/resolv.conf; done
                ;;
        esac
        exit 0
        """,
        0o755,
    )


# --------------------------------------------------------------------------- domain XML


def guest_domain_xml(
    name: str,
    image: GuestImage,
    *,
    memory_mib: int = 256,
    vcpus: int = 1,
    network: str | None = "default",
    mac: str | None = None,
    disks: Sequence[GuestDisk] = (),
    hostname: str | None = None,
    ip: str | None = None,
    gateway: str | None = None,
    domain_type: str = "qemu",
    uuid: str | None = None,
) -> str:
    """Domain XML for a standalone smoke test of the guest (not used by the backend).

    ``network=None`` gives no NIC. ``hostname`` defaults to ``name``.
    """
    cmdline = image.cmdline_for(hostname=hostname or name, ip=ip, gateway=gateway)
    devices: list[str] = [
        "<serial type='pty'><target port='0'/></serial>",
        "<console type='pty'><target type='serial' port='0'/></console>",
        f"<channel type='unix'><target type='virtio' name='{AGENT_CHANNEL_NAME}'/></channel>",
        "<memballoon model='none'/>",
    ]
    if network is not None:
        mac_xml = f"<mac address={quoteattr(mac)}/>" if mac else ""
        devices.append(
            "<interface type='network'>"
            f"<source network={quoteattr(network)}/>{mac_xml}<model type='virtio'/>"
            "</interface>"
        )
    for disk in disks:
        ro = "<readonly/>" if disk.readonly else ""
        devices.append(
            "<disk type='file' device='disk'>"
            f"<driver name='qemu' type={quoteattr(disk.format)}/>"
            f"<source file={quoteattr(disk.path)}/>"
            f"<target dev={quoteattr(disk.target)} bus='virtio'/>{ro}"
            "</disk>"
        )
    uuid_xml = f"<uuid>{escape(uuid)}</uuid>" if uuid else ""
    body = "\n    ".join(devices)
    return f"""<domain type={quoteattr(domain_type)}>
  <name>{escape(name)}</name>{uuid_xml}
  <memory unit='MiB'>{int(memory_mib)}</memory>
  <vcpu>{int(vcpus)}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{escape(str(image.kernel))}</kernel>
    <initrd>{escape(str(image.initrd))}</initrd>
    <cmdline>{escape(cmdline)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    {body}
  </devices>
</domain>
"""
