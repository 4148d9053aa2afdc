"""Domain XML built with ElementTree: hostile names survive exactly, nothing can be injected."""

from __future__ import annotations

import pytest
from virtabstract_kvm._xml import build_domain, parse_domain, to_string

import virtabstract
from virtabstract import Disk, Firmware, Nic, VMSpec

HOSTILE = [
    'a<b>&"c"\'d',
    "</name><memory>999999</memory><name>x",
    "ünïcødé ✓ 名前",
    "]]> <!-- --> &amp; &#x41;",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_build_and_parse_round_trip(text: str) -> None:
    spec = VMSpec(
        name=text.replace("/", "_")[:80],
        description=text + "\n" + text,
        tags=[text.replace(",", ";")],
        memory=256,
        cpus=2,
        guest_os="ubuntu-22.04",
        nics=[Nic(network=text.replace("/", "_")[:50])],
    )
    xml = to_string(build_domain(spec, domain_type="qemu", arch="x86_64", disks=[], vnc_password="p<&>'\""))
    cfg = parse_domain(xml)
    assert cfg.name == spec.name
    assert cfg.description == spec.description
    assert cfg.tags == spec.tags
    assert cfg.memory_mib == 256 and cfg.cpus == 2
    assert cfg.libosinfo == "http://ubuntu.com/ubuntu/22.04" and cfg.guest_os == "ubuntu-22.04"
    assert cfg.nics[0].network == text.replace("/", "_")[:50]
    assert xml.count("<memory") == 1  # nothing injected


def test_uefi_secure_boot_and_boot_order() -> None:
    spec = VMSpec(name="u", firmware="uefi", secure_boot=True, boot_order=["cdrom", "disk"], cdrom="/x.iso")
    cfg = parse_domain(to_string(build_domain(spec, domain_type="kvm", arch="x86_64", disks=[])))
    assert cfg.firmware is Firmware.UEFI
    assert cfg.boot_order == ("cdrom", "disk")


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_names_survive_on_the_test_driver(text: str) -> None:
    pytest.importorskip("libvirt")
    name = "vatest-" + text.replace("/", "_")[:60]
    with virtabstract.connect("test:///default") as hv:
        vm = hv.vms.create(
            VMSpec(name=name, description=text, tags=["x&<"], disks=[Disk(size=16)], nics=[Nic(network="default")])
        )
        try:
            info = vm.info()
            assert (info.name, info.description, info.tags) == (name, text, ("x&<",))
            assert hv.vms.get(name).id == vm.id
            vm.reconfigure(description=text + "!", tags=[text.replace(",", ";")[:60]])
            info = vm.info()
            assert info.description == text + "!" and info.tags == (text.replace(",", ";")[:60],)
        finally:
            vm.delete()
