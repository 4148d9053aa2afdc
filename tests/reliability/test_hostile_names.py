"""Hostile names pushed through every available backend to the real component.

Quotes, ``<``, ``&``, ``;``, ``$(...)``, backticks, option-looking names, ``=``, Unicode (with the
Unicode line separators that Python's ``splitlines`` honours), newlines and 1,000 characters go into
VM names, descriptions and snapshot names. Each is either refused with SpecError before anything is
created, or stored and read back *exactly*, from the component itself:

* mock: the JSON file, a second connection, and the CLI in another process (``--json vm list``);
* vcsim: our API and raw pyVmomi (``vm.name``, ``config.annotation``, the snapshot tree);
* VirtualBox: the fake VBoxManage, whose recorder proves each value arrived as one argv item;
* libvirt (test driver, when the kvm backend is there): our API and the domain XML parsed back.

Nothing is ever interpreted: no shell ran, no XML/SOAP/argv was broken.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import virtabstract
from virtabstract import VM, Hypervisor, VMSpec
from virtabstract.errors import SpecError

from .conftest import sim_url
from .support import REPO, Tally

LONG = "x" * 1000
HOSTILE_NAMES = [
    'it\'s "quoted"',
    "<vm a='1'>&amp;&#60;]]>",
    "a; rm -rf ~; b",
    "$(touch pwned)`id`",
    "--version",
    "-rf",
    'key=value"=x',
    "%s%n%x{0}",
    "Ünïcødé 名前 🚀",
    "sep\u2028line\u0085next",
    "'; DROP TABLE vms; --",
    'q" {00000000-0000-0000-0000-000000000000}',
    "line\nbreak",
    "tab\there",
    LONG,
    " padded ",
]
"""VM names: the last five are refused by the core (control characters, length, blanks at the ends)."""

HOSTILE_TEXT = [*HOSTILE_NAMES[:12], "multi\nline\ndescription", "<![CDATA[ ]]> &lt; \\ back\\slash", LONG]
"""Descriptions: newlines and backslashes are fine in free text; 1,000 characters too."""

REFUSED = {"line\nbreak", "tab\there", LONG, " padded "}


def _probe(name: str) -> bool:
    """True when the core accepts *name* as a VM name (else it must raise SpecError)."""
    try:
        VMSpec(name=name)
    except SpecError as err:
        assert err.field == "name"
        return False
    return True


def test_the_core_refuses_exactly_the_expected_names(tally: Tally) -> None:
    for name in HOSTILE_NAMES:
        tally.add_inputs("hostile:core")
        assert _probe(name) is (name not in REFUSED), name


def _round_trip(hv: Hypervisor, name: str, description: str, snapshot: str | None = None, **spec: Any) -> VM | None:
    """Create a VM called *name*; None when refused (SpecError, checked to be expected)."""
    try:
        vm = hv.vms.create(VMSpec(name=name, memory=64, description=description, **spec))
    except SpecError as err:
        assert name in REFUSED, f"{name!r} refused: {err}"
        return None
    assert name not in REFUSED, f"{name!r} was accepted"
    info = vm.info()
    assert (info.name, info.description) == (name, description)
    assert hv.vms.get(name).id == vm.id
    assert name in [v.name for v in hv.vms.list_info()]
    if snapshot is not None:
        snap = vm.snapshots.create(snapshot, description=description)
        got = vm.snapshots.get(snap.id)
        assert (got.name, got.description) == (snapshot, description)
        assert vm.snapshots.get(snapshot).id == snap.id
    return vm


# -- mock: the JSON file, another connection, another process -----------------------------------------


def test_mock_file_store(tmp_path: Path, tally: Tally) -> None:
    store = tmp_path / "lab.json"
    url = f"mock://{store.as_posix()}"
    stored: dict[str, str] = {}
    with virtabstract.connect(url) as hv:
        for i, name in enumerate(HOSTILE_NAMES):
            tally.add_inputs("hostile:mock")
            text = HOSTILE_TEXT[i % len(HOSTILE_TEXT)]
            snap = name if _probe(name) else None
            vm = _round_trip(hv, name, text, snapshot=snap)
            if vm is not None:
                stored[vm.id] = name
    on_disk = json.loads(store.read_text(encoding="utf-8"))
    assert {vid: rec["name"] for vid, rec in on_disk["vms"].items()} == stored
    with virtabstract.connect(url) as again:
        assert {v.id: v.name for v in again.vms.list_info()} == stored
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("VIRTABSTRACT_")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run([sys.executable, "-m", "virtabstract", "--uri", url, "--json", "vm", "list"],
                         capture_output=True, env=env, timeout=60, check=True)  # fmt: skip
    listed = json.loads(out.stdout.decode("utf-8"))
    assert {row["id"]: row["name"] for row in listed} == stored
    assert not list(tmp_path.glob("pwned*")) and not (REPO / "pwned").exists()


# -- vcsim: our API and raw pyVmomi ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def vcsim_hv(vpx_sim: Any) -> Iterator[Hypervisor]:
    with virtabstract.connect(sim_url(vpx_sim, "vpx")) as hv:
        yield hv


@pytest.mark.vcsim
@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_vcsim(vcsim_hv: Hypervisor, vpx_sim: Any, name: str, tally: Tally) -> None:
    import ssl

    from pyVim.connect import Disconnect, SmartConnect

    tally.add_inputs("hostile:vcsim")
    description = HOSTILE_TEXT[HOSTILE_NAMES.index(name) % len(HOSTILE_TEXT)]
    vm = _round_trip(vcsim_hv, name, description, snapshot=name if _probe(name) else None)
    if vm is None:
        return
    try:
        si = SmartConnect(protocol=vpx_sim.protocol, host=vpx_sim.host, port=vpx_sim.port, user=vpx_sim.username,
                          pwd=vpx_sim.password, sslContext=ssl.create_default_context())  # fmt: skip
        try:
            native = si.content.searchIndex.FindByUuid(None, vm.id, True, True)
            assert native.name == name  # what the server stored, seen by a client we did not write
            assert native.config.annotation == description
            assert native.snapshot.rootSnapshotList[0].name == name
        finally:
            Disconnect(si)
    finally:
        vm.delete()


# -- VirtualBox: one argv item each -----------------------------------------------------------------------

VBOX_NAMES = [
    'it\'s "quoted" $(touch pwned)`id`; <&>',
    "--version",
    'key=value"=x',
    "sep\u2028line\u0085next",
    "line\nbreak",
    LONG,
]
"""Fewer than elsewhere (every VBoxManage call is a process): each packs several hostile characters."""


@pytest.fixture(scope="module")
def vbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hypervisor, Any]]:
    from .vbox_support import RecordedVBox, fake_available

    ok, why = fake_available()
    if not ok:
        pytest.skip(why)
    fake = RecordedVBox(tmp_path_factory.mktemp("vbox"), profile="7.1")
    with fake.connect(inprocess=True) as hv:
        yield hv, fake


@pytest.fixture(scope="module")
def vbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hypervisor, Any]]:
    """The same, through a real child process per VBoxManage call."""
    from .vbox_support import RecordedVBox, fake_available

    ok, why = fake_available()
    if not ok:
        pytest.skip(why)
    fake = RecordedVBox(tmp_path_factory.mktemp("vbox-process"), profile="7.1")
    with fake.connect(inprocess=False) as hv:
        yield hv, fake


def _single_argv_item(argvs: list[list[str]], value: str) -> None:
    """*value* reached VBoxManage as one whole argv item (``--opt=value`` counts), and was never cut up."""
    items = [item for argv in argvs for item in argv if value in item]
    assert any(item == value or item.endswith("=" + value) for item in items), f"{value!r} never reached VBoxManage"
    for item in items:  # anything else holding it is a file path built from it (the VM folder)
        assert item == value or item.endswith("=" + value) or value in item.split("/"), (value, item)


@pytest.mark.parametrize("name", VBOX_NAMES, ids=range(len(VBOX_NAMES)))
def test_vbox_argv(vbox: tuple[Hypervisor, Any], name: str, tally: Tally) -> None:
    _vbox_argv(vbox, name, tally)


def test_vbox_argv_through_a_child_process(vbox_process: tuple[Hypervisor, Any], tally: Tally) -> None:
    _vbox_argv(vbox_process, VBOX_NAMES[0], tally)


def _vbox_argv(vbox: tuple[Hypervisor, Any], name: str, tally: Tally) -> None:
    hv, fake = vbox
    tally.add_inputs("hostile:vbox")
    texts = list(HOSTILE_TEXT)
    description = "described: " + texts[len(name) % len(texts)]
    start = len(fake.argvs())
    vm = _round_trip(hv, name, description, snapshot=name if _probe(name) else None)
    if vm is None:
        assert len(fake.argvs()) == start or all(name not in " ".join(a) for a in fake.argvs()[start:])
        return
    try:
        argvs = fake.argvs()[start:]
        _single_argv_item(argvs, name)
        _single_argv_item(argvs, description)
        assert fake.read()["violations"] == []
    finally:
        vm.delete()


# -- libvirt's test driver (when the kvm backend is there) ---------------------------------------------------


@pytest.fixture(scope="module")
def kvm_hv(kvm_ok: None) -> Iterator[Hypervisor]:
    with virtabstract.connect("test:///default") as hv:
        yield hv


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_libvirt_test_driver(kvm_hv: Hypervisor, name: str, tally: Tally) -> None:
    tally.add_inputs("hostile:libvirt")
    description = HOSTILE_TEXT[HOSTILE_NAMES.index(name) % len(HOSTILE_TEXT)]
    vm = _round_trip(kvm_hv, name, description, snapshot=name if _probe(name) else None)
    if vm is None:
        return
    try:
        conn = kvm_hv.native
        dom = conn.lookupByUUIDString(vm.id)
        root = ET.fromstring(dom.XMLDesc(0))  # well-formed: nothing broke out of its element
        assert root.findtext("name") == name
        assert dom.name() == name
    finally:
        for snap in vm.snapshots.list():
            snap.delete()
        vm.delete()
