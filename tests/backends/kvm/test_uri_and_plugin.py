"""URL → libvirt URI (alias, our options stripped), option validation, and the cheap plugin import."""

from __future__ import annotations

import subprocess
import sys

import pytest
from virtabstract_kvm._uri import libvirt_uri, parse_options

from virtabstract import URL
from virtabstract.errors import InvalidURL


@pytest.mark.parametrize(
    ("url", "uri"),
    [
        ("qemu:///system", "qemu:///system"),
        ("qemu:///session", "qemu:///session"),
        ("qemu+ssh://root@kvm1/system?keyfile=/k&pool=vms", "qemu+ssh://root@kvm1/system?keyfile=%2Fk"),
        ("qemu+tls://kvm1:16514/system", "qemu+tls://kvm1:16514/system"),
        ("qemu+tcp://kvm1/system", "qemu+tcp://kvm1/system"),
        ("qemu+unix:///system?socket=/run/x.sock", "qemu+unix:///system?socket=%2Frun%2Fx.sock"),
        ("test:///default", "test:///default"),
        ("test:///tmp/node.xml?domain_type=qemu", "test:///tmp/node.xml"),
        ("kvm://", "qemu:///system"),
        ("kvm:///", "qemu:///system"),
        ("kvm:///session", "qemu:///session"),
        ("kvm+ssh://h/", "qemu+ssh://h/system"),
        ("kvm+ssh://admin:s3cret@h/", "qemu+ssh://admin@h/system"),
    ],
)
def test_libvirt_uri(url: str, uri: str) -> None:
    assert libvirt_uri(URL.parse(url)) == uri


def test_options_from_url_and_keywords() -> None:
    opts = parse_options(URL.parse("qemu:///system?pool=a&domain_type=qemu&keepalive=2,4&events=0"), {"pool": "b"})
    assert (opts.pool, opts.domain_type, opts.keepalive, opts.events) == ("b", "qemu", (2, 4), False)
    assert parse_options(URL.parse("qemu:///system?keepalive=0"), {}).keepalive == (0, 0)


@pytest.mark.parametrize(
    "options", [{"domain_type": "xen"}, {"shutdown_method": "magic"}, {"keepalive": "x"}, {"events": "maybe"}]
)
def test_bad_options(options: dict[str, str]) -> None:
    with pytest.raises(InvalidURL):
        parse_options(URL.parse("qemu:///system"), options)


def test_plugin_import_does_not_import_libvirt() -> None:
    code = "import sys, virtabstract_kvm.plugin, virtabstract_kvm; print('libvirt' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_entry_point_registers_the_schemes() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="virtabstract")}
    assert eps.get("kvm") == "virtabstract_kvm.plugin"
    import virtabstract

    manager = virtabstract.PluginManager()
    for scheme in ("qemu", "qemu+ssh", "test", "kvm", "kvm+ssh"):
        assert manager.backend_for(scheme).name == "kvm"
