"""The snapshot read-back's fast path: one regex over the head of libvirt's snapshot XML, else the parser.

Whatever the regex accepts must read exactly as the XML parser reads it; whatever it was not
written for must fall back to the parser.
"""

from __future__ import annotations

from typing import Any

import pytest
from virtabstract_kvm._snapshots import _fields, _info, _parsed_fields

from virtabstract import PowerState

DOMAIN = "<domain type='kvm'>\n    <name>vm</name>\n    <description>a &lt;domain&gt;</description>\n  </domain>\n"


def _xml(head: str, tail: str = DOMAIN) -> str:
    return f"<domainsnapshot>\n  {head}\n  {tail}</domainsnapshot>\n"


# (libvirt's snapshot XML, whether the fast path takes it)
CASES = [
    pytest.param(
        _xml(
            "<name>s1</name>\n  <state>shutoff</state>\n  <creationTime>1700000000</creationTime>\n"
            "  <memory snapshot='no'/>"
        ),
        True,
        id="root-disk-only",
    ),
    pytest.param(
        _xml(
            "<name>s2</name>\n  <description>two\nlines\tand tab</description>\n  <state>running</state>\n"
            "  <parent>\n    <name>s1</name>\n  </parent>\n  <creationTime>1700000001</creationTime>\n"
            "  <memory snapshot='internal'/>\n  <disks>\n    <disk name='vda' snapshot='internal'/>\n  </disks>"
        ),
        True,
        id="child-with-memory-and-disks",
    ),
    pytest.param(
        _xml(
            "<name>a &amp; &lt;b&gt; &apos;c&apos; &quot;d&quot; é</name>\n"
            "  <description>&amp;lt; stays text</description>\n  <state>paused</state>\n"
            "  <parent>\n    <name>p&amp;q</name>\n  </parent>\n  <creationTime>1700000002</creationTime>\n"
            "  <memory snapshot='external' file='/var/lib/x&apos;y.mem'/>"
        ),
        True,
        id="escaped-text",
    ),
    pytest.param(
        _xml("<name>old</name>\n  <state>running</state>\n  <creationTime>1</creationTime>"),
        True,
        id="older-libvirt-no-memory-element",
    ),
    pytest.param(_xml("<name>bare</name>", tail=""), True, id="no-domain-no-state"),
    pytest.param(
        _xml("<name>ws</name>\n  <description>  </description>\n  <state>shutoff</state>"), True, id="blank-description"
    ),
    pytest.param(
        _xml("<name>cr</name>\n  <description>a\r\nb</description>\n  <state>shutoff</state>"),
        False,
        id="carriage-return-normalised-by-a-parser",
    ),
    pytest.param(_xml("<name>ref &#233;</name>\n  <state>shutoff</state>"), False, id="character-reference"),
    pytest.param(
        _xml("<name>x</name>\n  <state>shutoff</state>\n  <future>1</future>\n  <creationTime>5</creationTime>"),
        False,
        id="unknown-element",
    ),
    pytest.param(_xml("<name>x</name>\n  <memory snapshot='no' extra='1'/>"), False, id="unknown-attribute"),
    pytest.param(
        _xml("<name>x</name>\n  <creationTime>5</creationTime>\n  <state>shutoff</state>"), False, id="other-order"
    ),
    pytest.param("<?xml version='1.0'?>\n" + _xml("<name>x</name>"), False, id="xml-declaration"),
]


@pytest.mark.parametrize(("xml", "fast"), CASES)
def test_fast_path_reads_what_the_parser_reads(xml: str, fast: bool) -> None:
    found = _fields(xml)
    assert (found is not None) is fast
    if found is not None:
        assert found == _parsed_fields(xml)


def test_the_record() -> None:
    xml = CASES[2].values[0]
    info = _info("vm-id", xml, "a & <b> 'c' \"d\" é")
    assert info.name == info.id == "a & <b> 'c' \"d\" é"
    assert info.parent_id == "p&q"
    assert info.description == "&lt; stays text"
    assert info.vm_state is PowerState.PAUSED
    assert info.has_memory
    assert info.is_current
    assert info.created is not None and int(info.created.timestamp()) == 1700000002
    old = _info("vm-id", CASES[3].values[0], None)
    assert old.has_memory and old.vm_state is PowerState.RUNNING and not old.is_current  # active state: memory
    bare = _info("vm-id", CASES[4].values[0], None)
    assert (bare.vm_state, bare.has_memory, bare.created, bare.parent_id) == (PowerState.STOPPED, False, None, None)


NAMES = ["plain", "a & <b> 'c' \"d\"", "ünïcødé ✓", " spaced ", "tab\there"]
DESCRIPTIONS = ["", "line 1\nline 2", "<b>&amp;</b> 'q' \"d\"", "  "]


def test_real_libvirt_output_reads_the_same() -> None:
    libvirt = pytest.importorskip("libvirt")
    from xml.sax.saxutils import escape

    conn = libvirt.open("test:///default")
    try:
        dom = conn.lookupByName("test")
        made: list[Any] = []
        try:
            for index, name in enumerate(NAMES):
                description = DESCRIPTIONS[index % len(DESCRIPTIONS)]
                xml = f"<domainsnapshot><name>{escape(name)}</name><description>{escape(description)}</description>"
                made.append(dom.snapshotCreateXML(xml + "</domainsnapshot>", 0))
                text = made[-1].getXMLDesc(0)
                assert _fields(text) is not None, text
                assert _fields(text) == _parsed_fields(text)
                assert _fields(text)[:2] == (name, description)  # type: ignore[index]
        finally:
            for snap in reversed(made):
                snap.delete(0)
    finally:
        conn.close()
