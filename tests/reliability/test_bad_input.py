"""Bad input, generated: VM specs, URLs, sizes, VM and snapshot names, guest paths (hypothesis).

The property is the same everywhere: an input is either accepted and then means exactly what it says
(it round-trips, or it is stored and read back unchanged), or it is refused with the typed error of
the library (SpecError / InvalidURL / UsageError / a ValueError from the size parser) — never another
exception, never a hang, never a silently different value. Over 10,000 cases run in CI time; every
case is counted in the reliability tally.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import virtabstract
from virtabstract import URL, Disk, Hypervisor, Nic, VMSpec, parse_size
from virtabstract.errors import GuestError, InvalidURL, SpecError, UsageError, VirtAbstractError

from .support import TALLY, SecretScanner

PROFILE = settings.get_profile("reliability")  # registered in conftest.py; not loaded globally


def examples(n: int) -> settings:
    return settings(PROFILE, max_examples=n)


N_SPEC = 2000
N_URL = 2000
N_URL_SECRET = 2000
N_SIZE = 2500
N_NAMES = 800
N_SNAPSHOT = 600
N_PATH = 600

# -- strategies -------------------------------------------------------------------------------------

_SPECIAL = list("\x00\n\r\t/\\\"'<>&;$`|*?%@:#[] ")
nasty_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)) | st.sampled_from(_SPECIAL), max_size=40)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), nasty_text,
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
_UNITS = ["", "M", "MiB", "MB", "m", "G", "GiB", "gb", "T", "TiB", "K", "KiB", "B", " bytes", "P", "X"]
size_text = st.builds(
    lambda n, space, unit: f"{n}{space}{unit}",
    st.one_of(st.integers(0, 10**7), st.decimals(0, 10**6, places=3, allow_nan=False, allow_infinity=False)),
    st.sampled_from(["", " "]),
    st.sampled_from(_UNITS),
)
size_value = st.one_of(size_text, st.integers(-10, 10**9), junk, nasty_text)


def _maybe_junk(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, junk)


disk_dict = st.fixed_dictionaries(
    {},
    optional={
        "size": size_value,
        "storage": _maybe_junk(nasty_text),
        "bus": st.sampled_from(["virtio", "scsi", "SATA", "floppy", "", None]),
        "thin": _maybe_junk(st.booleans()),
        "name": _maybe_junk(nasty_text),
        "path": st.one_of(nasty_text, st.none()),
    },
)
nic_dict = st.fixed_dictionaries(
    {},
    optional={
        "network": st.one_of(nasty_text, st.just("default")),
        "kind": st.sampled_from(["network", "bridge", "NAT", "tap", 3]),
        "model": st.sampled_from(["virtio", "e1000", "rtl", None]),
        "mac": st.one_of(st.none(), st.sampled_from(["52:54:00:aa:bb:cc", "01:00:5e:00:00:01"]), nasty_text),
        "connected": _maybe_junk(st.booleans()),
    },
)
_BOOT = ["disk", "cdrom", "network", "Disk", "usb", 1]
_GUEST_OS = ["ubuntu-22.04", "Ubuntu 22.04", "jammy", "windows-server-2022", "debian-12", "plan9", ""]
_CDROM = st.fixed_dictionaries({}, optional={"iso": nasty_text, "bus": st.sampled_from(["ide", "sata", "x"])})
spec_dict = st.fixed_dictionaries(
    {"name": st.one_of(nasty_text, st.text(string.ascii_letters, min_size=1, max_size=90), junk)},
    optional={
        "cpus": _maybe_junk(st.integers(-2, 1000)),
        "memory": size_value,
        "guest_os": _maybe_junk(st.sampled_from(_GUEST_OS)),
        "disks": _maybe_junk(st.lists(_maybe_junk(disk_dict), max_size=3)),
        "nics": _maybe_junk(st.lists(_maybe_junk(nic_dict), max_size=3)),
        "firmware": _maybe_junk(st.sampled_from(["bios", "UEFI", "efi", ""])),
        "secure_boot": _maybe_junk(st.booleans()),
        "boot_order": _maybe_junk(st.lists(st.sampled_from(_BOOT), max_size=4)),
        "cdrom": st.one_of(st.none(), nasty_text, _CDROM, junk),
        "autostart": _maybe_junk(st.booleans()),
        "description": _maybe_junk(nasty_text),
        "tags": _maybe_junk(st.lists(_maybe_junk(nasty_text), max_size=4)),
        "graphics": _maybe_junk(st.sampled_from(["vnc", "spice", "none", "SDL"])),
        "acceleration": _maybe_junk(st.sampled_from(["auto", "hardware", "software", "tcg"])),
        "bogus": junk,
    },
)


# -- VMSpec ----------------------------------------------------------------------------------------------


@examples(N_SPEC)
@given(data=spec_dict)
def test_vmspec_accepts_or_raises_spec_error(data: dict[str, Any]) -> None:
    TALLY.add_inputs("vmspec")
    try:
        spec = VMSpec.from_dict(data)
    except SpecError as err:
        assert err.field and isinstance(err.field, str)
        return
    assert VMSpec.from_dict(spec.to_dict()) == spec  # accepted specs mean exactly one thing
    assert 1 <= spec.cpus <= 768 and spec.memory_mib >= 1
    assert all(isinstance(d, Disk) for d in spec.disks) and all(isinstance(n, Nic) for n in spec.nics)


# -- URLs -----------------------------------------------------------------------------------------------

_SCHEMES = st.sampled_from(["mock", "qemu+ssh", "esx", "vpx", "9x", "a b", ""])
url_text = st.one_of(nasty_text, st.builds(lambda s, rest: f"{s}://{rest}", _SCHEMES, nasty_text))


@examples(N_URL)
@given(text=url_text)
def test_url_parses_or_raises_invalid_url_and_renders_stably(text: str) -> None:
    TALLY.add_inputs("url")
    try:
        url = URL.parse(text)
    except InvalidURL:
        return
    again = URL.parse(url.render(hide_password=False))
    assert again.render(hide_password=False) == url.render(hide_password=False)  # a fixed point after one round
    assert URL.parse(str(again)).password in (None, "***")


# '/', '?' and '#' end the authority, so a password must percent-encode them (RFC 3986); anything else goes.
_PW_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="/?#")
_URL_REST = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(["", "[", "[::1", "h:bad", "h:0/", "h:99999/", "h/p", "h?x=1", "@", " "]),
    st.text(max_size=16),
)


@examples(N_URL_SECRET)
@given(
    scheme=st.sampled_from(["mock", "esx", "qemu+ssh", "vpx", "bad scheme", ""]),
    user=st.text(string.ascii_letters + string.digits + "._-", max_size=8),
    secret=st.text(_PW_ALPHABET, min_size=1, max_size=20),
    rest=_URL_REST,
)
def test_a_url_password_never_shows(scheme: str, user: str, secret: str, rest: str) -> None:
    """Whether the URL parses or not, the password is in no message, str() or repr() (raw or encoded)."""
    TALLY.add_inputs("url-password")
    password = "Pw~" + secret
    scanner = SecretScanner((password,))
    assume(not any(form in user + rest for form in (password, secret)))
    text = f"{scheme}://{user}:{password}@{rest}"
    try:
        url = URL.parse(text)
    except InvalidURL as err:
        scanner.check(str(err), "url-error-hypothesis", text)
        return
    assert url.password == password.strip() or url.password is not None
    scanner.check(str(url) + repr(url) + str(url.set(port=None)), "url-repr-hypothesis", text)


# -- sizes ----------------------------------------------------------------------------------------------

_FACTOR = {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024, "k": Fraction(1, 1024), "p": 1024**3, "b": Fraction(1, 1024**2)}


@examples(N_SIZE)
@given(value=size_value)
def test_sizes_are_exact_or_refused(value: Any) -> None:
    TALLY.add_inputs("size")
    try:
        mib = parse_size(value)
    except ValueError:
        return
    assert isinstance(mib, int) and not isinstance(mib, bool) and mib > 0
    if isinstance(value, int):
        assert mib == value
        return
    text = value.strip().lower().replace(" ", "")
    number = "".join(ch for ch in text if ch.isdigit() or ch == ".")
    suffix = text[len(number) :]
    unit = "b" if suffix in ("b", "byte", "bytes") else suffix[:1]  # "MiB", "MB", "M" -> "m"
    expected = Fraction(number) * _FACTOR[unit]
    assert expected.denominator == 1 and mib == expected, (value, mib, expected)


# -- names and paths through the mock (a real store) ------------------------------------------------------


@pytest.fixture(scope="module")
def mock_hv() -> Iterator[Hypervisor]:
    with virtabstract.connect("mock://?clock=manual&agent_delay=0&ip_delay=0") as hv:
        yield hv


@pytest.fixture(scope="module")
def running(mock_hv: Hypervisor) -> Any:
    vm = mock_hv.vms.create(VMSpec(name="fuzz-target", memory=128))
    vm.start()
    return vm


@examples(N_NAMES)
@given(name=st.one_of(nasty_text, st.integers(75, 85).map(lambda n: "n" * n)))
def test_vm_names_are_refused_or_stored_exactly(mock_hv: Hypervisor, name: str) -> None:
    TALLY.add_inputs("vm-name")
    try:
        vm = mock_hv.vms.create(VMSpec(name=name, memory=64))
    except (SpecError, virtabstract.errors.AlreadyExists):
        return
    try:
        assert vm.info().name == name
        assert mock_hv.vms.get(name).id == vm.id
    finally:
        vm.delete()


@examples(N_SNAPSHOT)
@given(name=st.one_of(nasty_text, st.integers(250, 260).map(lambda n: "s" * n)), description=nasty_text)
def test_snapshot_names_are_refused_or_stored_exactly(running: Any, name: str, description: str) -> None:
    TALLY.add_inputs("snapshot-name")
    try:
        snap = running.snapshots.create(name, description=description)
    except SpecError:
        return
    try:
        assert (running.snapshots.get(snap.id).name, running.snapshots.get(snap.id).description) == (name, description)
    finally:
        snap.delete()


guest_path = st.one_of(
    nasty_text,
    st.builds(lambda parts: "/tmp/" + "/".join(parts), st.lists(nasty_text, min_size=1, max_size=3)),
    st.integers(4085, 4100).map(lambda n: "/tmp/" + "p" * n),
)


@examples(N_PATH)
@given(path=guest_path, data=st.binary(max_size=64))
def test_guest_paths_are_refused_or_round_trip(running: Any, path: str, data: bytes) -> None:
    TALLY.add_inputs("guest-path")
    try:
        running.guest.write_file(path, data)
    except (UsageError, GuestError):
        return
    except VirtAbstractError as err:  # pragma: no cover - a typed error nonetheless, but name it
        pytest.fail(f"unexpected {type(err).__name__} for {path!r}: {err}")
    assert running.guest.read_file(path) == data
