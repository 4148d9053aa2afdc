"""Tests of the guest-OS catalog (``virtabstract._catalog``)."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
import re
from collections import defaultdict

import pytest

from virtabstract._catalog import (
    _PREFERRED,
    NATIVE_KINDS,
    GuestOS,
    _norm,
    all_guest_oses,
    get_guest_os,
    guest_os_from_native,
    guest_os_ids,
    render_catalog_markdown,
)
from virtabstract._model import Firmware, OSFamily, to_dict
from virtabstract.errors import SpecError

ENTRIES = all_guest_oses()
BY_ID = {entry.id: entry for entry in ENTRIES}

# Every OS the catalog promises, with its family and the native ids checked by hand:
# (id, family, libosinfo, vSphere guestId, VirtualBox 7.x OSTypeId, VirtualBox 6.1 fallback).
_W, _L, _B, _O = OSFamily.WINDOWS, OSFamily.LINUX, OSFamily.BSD, OSFamily.OTHER
_MS = "http://microsoft.com/win/"
# fmt: off
REQUIRED = [
    ("windows-10", _W, _MS + "10", "windows9_64Guest", "Windows10_64", "Windows10_64"),
    ("windows-11", _W, _MS + "11", "windows11_64Guest", "Windows11_64", "Windows10_64"),
    ("windows-server-2012-r2", _W, _MS + "2k12r2", "windows8Server64Guest", "Windows2012_64",
     "Windows2012_64"),
    ("windows-server-2016", _W, _MS + "2k16", "windows9Server64Guest", "Windows2016_64", "Windows2016_64"),
    ("windows-server-2019", _W, _MS + "2k19", "windows2019srv_64Guest", "Windows2019_64", "Windows2019_64"),
    ("windows-server-2022", _W, _MS + "2k22", "windows2019srvNext_64Guest", "Windows2022_64",
     "Windows2019_64"),
    ("windows-server-2025", _W, _MS + "2k25", "windows2022srvNext_64Guest", "Windows2025_64",
     "Windows2019_64"),
    ("windows", _W, _MS + "10", "windows9_64Guest", "WindowsNT_64", "WindowsNT_64"),
    ("ubuntu-18.04", _L, "http://ubuntu.com/ubuntu/18.04", "ubuntu64Guest", "Ubuntu18_LTS_64", "Ubuntu_64"),
    ("ubuntu-20.04", _L, "http://ubuntu.com/ubuntu/20.04", "ubuntu64Guest", "Ubuntu20_LTS_64", "Ubuntu_64"),
    ("ubuntu-22.04", _L, "http://ubuntu.com/ubuntu/22.04", "ubuntu64Guest", "Ubuntu22_LTS_64", "Ubuntu_64"),
    ("ubuntu-24.04", _L, "http://ubuntu.com/ubuntu/24.04", "ubuntu64Guest", "Ubuntu24_LTS_64", "Ubuntu_64"),
    ("debian-10", _L, "http://debian.org/debian/10", "debian10_64Guest", "Debian10_64", "Debian_64"),
    ("debian-11", _L, "http://debian.org/debian/11", "debian11_64Guest", "Debian11_64", "Debian_64"),
    ("debian-12", _L, "http://debian.org/debian/12", "debian12_64Guest", "Debian12_64", "Debian_64"),
    ("debian-13", _L, "http://debian.org/debian/13", "debian13_64Guest", "Debian13_64", "Debian_64"),
    ("rhel-7", _L, "http://redhat.com/rhel/7.0", "rhel7_64Guest", "RedHat7_64", "RedHat_64"),
    ("rhel-8", _L, "http://redhat.com/rhel/8.0", "rhel8_64Guest", "RedHat8_64", "RedHat_64"),
    ("rhel-9", _L, "http://redhat.com/rhel/9.0", "rhel9_64Guest", "RedHat9_64", "RedHat_64"),
    ("rhel-10", _L, "http://redhat.com/rhel/10.0", "rhel10_64Guest", "RedHat10_64", "RedHat_64"),
    ("rocky-8", _L, "http://rockylinux.org/rocky/8", "rockylinux_64Guest", "RedHat8_64", "RedHat_64"),
    ("rocky-9", _L, "http://rockylinux.org/rocky/9", "rockylinux_64Guest", "RedHat9_64", "RedHat_64"),
    ("almalinux-8", _L, "http://almalinux.org/almalinux/8", "almalinux_64Guest", "RedHat8_64", "RedHat_64"),
    ("almalinux-9", _L, "http://almalinux.org/almalinux/9", "almalinux_64Guest", "RedHat9_64", "RedHat_64"),
    ("centos-7", _L, "http://centos.org/centos/7.0", "centos7_64Guest", "RedHat7_64", "RedHat_64"),
    ("centos-stream-9", _L, "http://centos.org/centos-stream/9", "centos9_64Guest", "RedHat9_64",
     "RedHat_64"),
    ("oracle-linux-8", _L, "http://oracle.com/ol/8.0", "oracleLinux8_64Guest", "Oracle8_64", "Oracle_64"),
    ("oracle-linux-9", _L, "http://oracle.com/ol/9.0", "oracleLinux9_64Guest", "Oracle9_64", "Oracle_64"),
    ("fedora-39", _L, "http://fedoraproject.org/fedora/39", "fedora64Guest", "Fedora_64", "Fedora_64"),
    ("fedora-40", _L, "http://fedoraproject.org/fedora/40", "fedora64Guest", "Fedora_64", "Fedora_64"),
    ("fedora-41", _L, "http://fedoraproject.org/fedora/41", "fedora64Guest", "Fedora_64", "Fedora_64"),
    ("sles-12", _L, "http://suse.com/sles/12", "sles12_64Guest", "SUSE_LE_64", "OpenSUSE_64"),
    ("sles-15", _L, "http://suse.com/sle/15", "sles15_64Guest", "SUSE_LE_64", "OpenSUSE_64"),
    ("opensuse-leap-15", _L, "http://opensuse.org/opensuse/15.6", "opensuse64Guest", "OpenSUSE_Leap_64",
     "OpenSUSE_64"),
    ("alpine-3.21", _L, "http://alpinelinux.org/alpinelinux/3.21", "other6xLinux64Guest", "Linux_64",
     "Linux26_64"),
    ("archlinux", _L, "http://archlinux.org/archlinux/rolling", "other6xLinux64Guest", "ArchLinux_64",
     "ArchLinux_64"),
    ("linux", _L, "http://libosinfo.org/linux/2022", "otherLinux64Guest", "Linux_64", "Linux26_64"),
    ("freebsd-13", _B, "http://freebsd.org/freebsd/13.0", "freebsd13_64Guest", "FreeBSD_64", "FreeBSD_64"),
    ("freebsd-14", _B, "http://freebsd.org/freebsd/14.0", "freebsd14_64Guest", "FreeBSD_64", "FreeBSD_64"),
    ("openbsd-7", _B, "http://openbsd.org/openbsd/7.0", "otherGuest64", "OpenBSD_64", "OpenBSD_64"),
    ("other", _O, "http://libosinfo.org/unknown", "otherGuest64", "Other_64", "Other_64"),
]
# fmt: on


def _native(entry: GuestOS, kind: str) -> tuple[str, ...]:
    if kind == "libosinfo":
        return (entry.libosinfo,)
    if kind == "vsphere":
        return (entry.vsphere,)
    return tuple(dict.fromkeys((entry.virtualbox, entry.virtualbox_fallback)))


def _holders() -> dict[tuple[str, str], list[str]]:
    holders: dict[tuple[str, str], list[str]] = defaultdict(list)
    for entry in ENTRIES:
        for kind in NATIVE_KINDS:
            for native in _native(entry, kind):
                holders[kind, native].append(entry.id)
    return holders


HOLDERS = _holders()
ROUND_TRIPS = [
    (entry.id, kind, native) for entry in ENTRIES for kind in NATIVE_KINDS for native in _native(entry, kind)
]
ROUND_TRIP_IDS = [f"{kind}:{native}->{os_id}" for os_id, kind, native in ROUND_TRIPS]
SHARED = sorted((kind, native, tuple(ids)) for (kind, native), ids in HOLDERS.items() if len(ids) > 1)


# --- the table itself ------------------------------------------------------------------------------------


def test_catalog_is_large_enough() -> None:
    assert len(ENTRIES) >= 40


@pytest.mark.parametrize(
    ("os_id", "family", "libosinfo", "vsphere", "virtualbox", "fallback"),
    REQUIRED,
    ids=[r[0] for r in REQUIRED],
)
def test_required_os_present_with_checked_native_ids(
    os_id: str, family: OSFamily, libosinfo: str, vsphere: str, virtualbox: str, fallback: str
) -> None:
    entry = get_guest_os(os_id)
    assert entry.id == os_id
    assert (entry.family, entry.libosinfo, entry.vsphere) == (family, libosinfo, vsphere)
    assert (entry.virtualbox, entry.virtualbox_fallback) == (virtualbox, fallback)


def test_ids_unique_and_sorted_listing() -> None:
    ids = [entry.id for entry in ENTRIES]
    assert len(ids) == len(set(ids))
    assert guest_os_ids() == tuple(sorted(ids))


def test_aliases_unique_and_never_an_id() -> None:
    # Compared the way the lookup compares them: case-folded, "_" and blanks as "-".
    seen: dict[str, str] = {_norm(entry.id): entry.id for entry in ENTRIES}
    assert len(seen) == len(ENTRIES)
    for entry in ENTRIES:
        for alias in entry.aliases:
            key = _norm(alias)
            assert key not in seen, f"alias {alias!r} of {entry.id} collides with {seen[key]}"
            seen[key] = entry.id


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_entry_is_complete(entry: GuestOS) -> None:
    assert re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", entry.id)
    assert entry.name
    assert isinstance(entry.family, OSFamily)
    assert entry.libosinfo.startswith("http://") and " " not in entry.libosinfo
    assert re.fullmatch(r"[A-Za-z0-9_]+Guest(64)?", entry.vsphere)
    assert re.fullmatch(r"[A-Za-z0-9_]+", entry.virtualbox)
    assert re.fullmatch(r"[A-Za-z0-9_]+", entry.virtualbox_fallback)
    assert entry.min_memory_mib >= 256 and entry.min_disk_mib >= 1024
    assert entry.firmware in (Firmware.BIOS, Firmware.UEFI)
    assert isinstance(entry.aliases, tuple) and all(entry.aliases)
    # Generic entries, and only they, have no version.
    assert (entry.version == "") == (entry.id in {"linux", "windows", "other"})


def test_entries_are_frozen() -> None:
    entry = get_guest_os("ubuntu-22.04")
    with pytest.raises(dataclasses.FrozenInstanceError):
        entry.vsphere = "otherGuest64"  # type: ignore[misc]


def test_record_behaves_like_a_frozen_dataclass() -> None:
    entry = get_guest_os("debian-12")
    assert dataclasses.is_dataclass(entry)
    assert [f.name for f in dataclasses.fields(entry)][:3] == ["id", "name", "family"]
    copy = dataclasses.replace(entry)
    assert copy == entry and copy is not entry and hash(copy) == hash(entry)
    changed = dataclasses.replace(entry, min_memory_mib=4096)
    assert changed != entry and changed.min_memory_mib == 4096
    assert entry != "debian-12"
    assert {entry, copy} == {entry}
    assert repr(entry) == "GuestOS(id='debian-12', name='Debian 12 (bookworm)', family='linux')"
    assert pickle.loads(pickle.dumps(entry)) == entry
    with pytest.raises(dataclasses.FrozenInstanceError):
        del entry.name
    plain = to_dict(entry)
    assert plain["id"] == "debian-12" and plain["family"] == "linux" and plain["firmware"] == "uefi"


def test_hand_written_methods_cover_every_field() -> None:
    # GuestOS writes __init__/__eq__ by hand (import time): they must follow the fields.
    names = [f.name for f in dataclasses.fields(GuestOS)]
    assert list(inspect.signature(GuestOS.__init__).parameters)[1:] == names
    entry = get_guest_os("rhel-9")
    assert entry._astuple() == tuple(getattr(entry, name) for name in names)


def test_windows_11_notes_uefi_and_tpm() -> None:
    entry = get_guest_os("windows-11")
    assert entry.firmware is Firmware.UEFI
    assert "TPM" in entry.notes


# --- get_guest_os ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ubuntu-22.04", "ubuntu-22.04"),
        ("Ubuntu-22.04", "ubuntu-22.04"),
        ("UBUNTU-22.04", "ubuntu-22.04"),
        ("  ubuntu-22.04 ", "ubuntu-22.04"),
        ("ubuntu 22.04", "ubuntu-22.04"),
        ("ubuntu22.04", "ubuntu-22.04"),
        ("ubuntu2204", "ubuntu-22.04"),
        ("jammy", "ubuntu-22.04"),
        ("Noble", "ubuntu-24.04"),
        ("win2022", "windows-server-2022"),
        ("WS2022", "windows-server-2022"),
        ("windows_server_2022", "windows-server-2022"),
        ("win2k12r2", "windows-server-2012-r2"),
        ("win11", "windows-11"),
        ("bookworm", "debian-12"),
        ("trixie", "debian-13"),
        ("rhel9", "rhel-9"),
        ("rocky8", "rocky-8"),
        ("c9s", "centos-stream-9"),
        ("ol9", "oracle-linux-9"),
        ("sles15", "sles-15"),
        ("leap15", "opensuse-leap-15"),
        ("arch", "archlinux"),
        ("Linux", "linux"),
        ("unknown", "other"),
    ],
)
def test_lookup_by_id_alias_and_case(name: str, expected: str) -> None:
    assert get_guest_os(name).id == expected


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_every_id_and_alias_resolves_to_its_entry(entry: GuestOS) -> None:
    for name in (entry.id, entry.id.upper(), *entry.aliases):
        assert get_guest_os(name) is entry


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("ubuntu-22.4", "ubuntu-22.04"),
        ("ubuntu-2204-lts", "ubuntu-22.04"),
        ("debian-21", "debian-12"),
        ("windows-server-2023", "windows-server-2022"),
        ("rhel-99", "rhel-9"),
        ("fedora-4", "fedora-43"),
        ("freebsd-15", "freebsd-14"),
        ("jamy", "ubuntu-22.04"),
    ],
)
def test_unknown_id_suggests_near_match(name: str, suggestion: str) -> None:
    with pytest.raises(SpecError) as info:
        get_guest_os(name)
    err = info.value
    assert err.field == "guest_os"
    assert err.got == name
    assert f"'{suggestion}'" in str(err)
    assert "guest_os_ids()" in str(err)


@pytest.mark.parametrize("name", ["", "   ", "zzzzzzzz-nothing-like-it", 42, None])
def test_unknown_id_without_near_match(name: object) -> None:
    with pytest.raises(SpecError) as info:
        get_guest_os(name)  # type: ignore[arg-type]
    assert info.value.field == "guest_os"
    assert "did you mean" not in str(info.value)
    assert "guest_os_ids()" in str(info.value)


def test_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="guest_os"):
        get_guest_os("nope-1.0")


# --- guest_os_from_native ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("os_id", "kind", "native"), ROUND_TRIPS, ids=ROUND_TRIP_IDS)
def test_native_round_trip(os_id: str, kind: str, native: str) -> None:
    found = guest_os_from_native(kind, native)
    assert found is not None
    if len(HOLDERS[kind, native]) == 1:
        assert found.id == os_id
    else:
        assert found.id == _PREFERRED[kind][native]
    # Native ids are compared case-insensitively.
    assert guest_os_from_native(kind, native.upper()) is found
    assert guest_os_from_native(kind, f" {native.lower()} ") is found


@pytest.mark.parametrize(("kind", "native", "holders"), SHARED, ids=[f"{k}:{n}" for k, n, _ in SHARED])
def test_every_shared_native_id_has_a_preference(kind: str, native: str, holders: tuple[str, ...]) -> None:
    preferred = _PREFERRED[kind].get(native)
    assert preferred is not None, f"{kind} id {native!r} is shared by {holders}: add it to _PREFERRED"
    # The winner is one of the entries carrying it, or the generic entry of their family
    # (for a native id that names no distribution).
    generic = {OSFamily.LINUX: "linux", OSFamily.WINDOWS: "windows", OSFamily.OTHER: "other"}
    families = {BY_ID[h].family for h in holders}
    assert preferred in holders or (len(families) == 1 and preferred == generic.get(families.pop()))


def test_preferences_name_real_shared_ids() -> None:
    for kind, table in _PREFERRED.items():
        assert kind in NATIVE_KINDS
        for native, os_id in table.items():
            assert len(HOLDERS[kind, native]) > 1, f"{kind} {native!r} is not shared: drop it from _PREFERRED"
            assert os_id in BY_ID


@pytest.mark.parametrize(
    ("kind", "native", "expected"),
    [
        ("vsphere", "ubuntu64Guest", "ubuntu-24.04"),
        ("vsphere", "windows9_64Guest", "windows-10"),
        ("vsphere", "windows2019srvNext_64Guest", "windows-server-2022"),
        ("vsphere", "windows2022srvNext_64Guest", "windows-server-2025"),
        ("vsphere", "rockylinux_64Guest", "rocky-9"),
        ("vsphere", "other6xLinux64Guest", "linux"),
        ("vsphere", "otherGuest64", "other"),
        ("virtualbox", "Windows2019_64", "windows-server-2019"),
        ("virtualbox", "Windows2022_64", "windows-server-2022"),
        ("virtualbox", "RedHat9_64", "rhel-9"),
        ("virtualbox", "RedHat_64", "rhel-10"),
        ("virtualbox", "Ubuntu_64", "ubuntu-24.04"),
        ("virtualbox", "Ubuntu22_LTS_64", "ubuntu-22.04"),
        ("virtualbox", "ubuntu22_lts_64", "ubuntu-22.04"),
        ("libosinfo", "http://microsoft.com/win/10", "windows-10"),
        ("libosinfo", "http://ubuntu.com/ubuntu/22.04", "ubuntu-22.04"),
    ],
)
def test_native_preference_rule(kind: str, native: str, expected: str) -> None:
    found = guest_os_from_native(kind, native)
    assert found is not None and found.id == expected


@pytest.mark.parametrize(
    ("kind", "native"),
    [
        ("vsphere", "solaris11_64Guest"),
        ("virtualbox", "OS2Warp4"),
        ("libosinfo", "http://example.com/x"),
        ("vsphere", ""),
    ],
)
def test_unknown_native_id_is_none(kind: str, native: str) -> None:
    assert guest_os_from_native(kind, native) is None


@pytest.mark.parametrize("kind", ["esxi", "VSPHERE", "", "kvm"])
def test_unknown_kind_raises_value_error_naming_allowed_kinds(kind: str) -> None:
    with pytest.raises(ValueError, match="libosinfo, virtualbox, vsphere"):
        guest_os_from_native(kind, "ubuntu64Guest")


# --- docs table --------------------------------------------------------------------------------------------


def test_render_catalog_markdown_has_a_row_per_entry() -> None:
    text = render_catalog_markdown()
    lines = text.splitlines()
    assert lines[0].startswith("| Id |")
    assert re.fullmatch(r"\|( --- \|)+", lines[1])
    assert len(lines) == 2 + len(ENTRIES)
    columns = lines[0].count("|")
    for entry, line in zip(ENTRIES, lines[2:], strict=True):
        assert line.startswith(f"| `{entry.id}` |")
        assert line.count("|") - line.count("\\|") == columns
        assert f"`{entry.vsphere}`" in line and f"`{entry.libosinfo}`" in line
    assert text.endswith("\n")
