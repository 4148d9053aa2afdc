"""The version policy: known profiles, ordered behaviour, too-old refused, newer-than-known used with a warning."""

from __future__ import annotations

import logging
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from virtabstract_vbox import UntestedVersionWarning
from virtabstract_vbox._parse import VBoxVersion, parse_version
from virtabstract_vbox._states import state_from_number
from virtabstract_vbox._versions import (
    KNOWN_VERSIONS,
    NEWEST_KNOWN,
    _reset_version_warnings,
    behaviour_version,
    check_version,
    is_newer_than_known,
)

import virtabstract
from virtabstract import PowerState, VMSpec
from virtabstract.errors import BackendUnavailable

from . import fake_com as fake_com_pkg
from . import fake_vboxmanage
from .conftest import PROFILES, FakeVBox
from .fake_com import machine_states, make_vboxapi

FUTURE = "8.0.2r180000"


@pytest.fixture(autouse=True)
def _fresh_warnings() -> Iterator[None]:
    _reset_version_warnings()
    yield
    _reset_version_warnings()


# -- tables ------------------------------------------------------------------------------------------


def test_profiles_are_the_known_versions() -> None:
    """The fakes model exactly the versions the backend calls known, in order."""
    as_tuples = [tuple(int(p) for p in profile.split(".")) for profile in PROFILES]
    assert as_tuples == list(KNOWN_VERSIONS) == sorted(KNOWN_VERSIONS)
    assert tuple(fake_vboxmanage.VERSIONS) == tuple(fake_com_pkg.VERSIONS) == PROFILES
    assert tuple(fake_com_pkg.CREATE_MACHINE_ARITY) == PROFILES
    for profile, text in fake_vboxmanage.VERSIONS.items():
        version = parse_version(text)
        assert f"{version.major}.{version.minor}" == profile and version.revision
        assert (str(version), int(version.revision)) == fake_com_pkg.VERSIONS[profile]


@pytest.mark.parametrize(
    ("profile", "version", "expected"),
    [("7.2", "7.1", True), ("7.1", "7.1", True), ("7.0", "7.1", False), ("6.1", "7.0", False), ("7.10", "7.2", True)],
)
def test_fake_profiles_compare_in_order(profile: str, version: str, expected: bool) -> None:
    assert fake_vboxmanage.since(profile, version) is expected


@pytest.mark.parametrize(
    ("version", "behaves_as", "newer"),
    [
        ((6, 1), (6, 1), False),
        ((7, 0), (7, 0), False),
        ((7, 1), (7, 1), False),
        ((7, 2), (7, 2), False),
        ((7, 3), (7, 2), True),
        ((8, 0), (7, 2), True),
        (VBoxVersion(7, 2, 4, "170995"), (7, 2), False),
        (VBoxVersion(9, 1, 0), (7, 2), True),
    ],
)
def test_behaviour_version(version: Any, behaves_as: tuple[int, int], newer: bool) -> None:
    assert behaviour_version(version) == behaves_as
    assert is_newer_than_known(version) is newer
    assert NEWEST_KNOWN == (7, 2)


@pytest.mark.parametrize("text", ["5.2.44r139111", "6.0.24r139119", "4.3.40r117224"])
def test_too_old_is_refused(text: str) -> None:
    with pytest.raises(BackendUnavailable, match=r"too old: the vbox backend needs 6\.1 or later"):
        check_version(parse_version(text), "VBoxManage")


@pytest.mark.parametrize("profile", PROFILES)
def test_known_versions_do_not_warn(profile: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_version(parse_version(fake_vboxmanage.VERSIONS[profile]), "API") == tuple(
            int(p) for p in profile.split(".")
        )


def test_newer_version_warns_once_per_version(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="virtabstract.vbox"):
        with pytest.warns(UntestedVersionWarning, match=r"VirtualBox 8\.0\.2 is newer .* VirtualBox 7\.2's behaviour"):
            assert check_version(parse_version(FUTURE), "VBoxManage") == (7, 2)
        with warnings.catch_warnings(record=True) as again:
            warnings.simplefilter("always")
            check_version(parse_version("8.0.4r180400"), "API")  # same 8.0: silent
        assert not [w for w in again if issubclass(w.category, UntestedVersionWarning)]
        with pytest.warns(UntestedVersionWarning, match=r"7\.3\.0"):  # another version: warned once too
            check_version(parse_version("7.3.0_BETA1r175000"), "API")
    versions = [r.getMessage().split(" is newer")[0] for r in caplog.records]
    assert versions == ["VirtualBox 8.0.2", "VirtualBox 7.3.0"]


def test_newer_version_refused_when_the_warning_is_an_error() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntestedVersionWarning)
        for _ in range(2):  # refused every time, not only the first
            with pytest.raises(BackendUnavailable, match="UntestedVersionWarning is an error here"):
                check_version(parse_version(FUTURE), "VBoxManage")
    with pytest.warns(UntestedVersionWarning):  # the filter is gone: now it connects, with the warning
        check_version(parse_version(FUTURE), "VBoxManage")


# -- VBoxManage transport --------------------------------------------------------------------------


def _vbm_connect(fake: FakeVBox) -> virtabstract.Hypervisor:
    return virtabstract.connect("vbox:///session?transport=vboxmanage", vboxmanage_runner=fake.runner())


def test_vboxmanage_newer_version_uses_the_newest_behaviour(tmp_path: Path) -> None:
    fake = FakeVBox(tmp_path, "7.2")  # a VirtualBox that prints 8.0 and behaves as the newest known one
    fake.update(lambda state: state.__setitem__("version", FUTURE))
    with pytest.warns(UntestedVersionWarning, match="VBoxManage transport"), _vbm_connect(fake) as hv:
        assert hv.host.version == "8.0.2" and hv.host.build == "180000"
        spec = VMSpec(name="future", memory="256MiB", disks=[{"size": "64MiB"}], nics=[{"network": "default"}])
        vm = hv.vms.create(spec)
        vm.start()
        assert vm.state is PowerState.RUNNING
        vm.power_off()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the second connection to the same version stays quiet
        with _vbm_connect(fake) as hv:
            assert hv.vms.get("future").state is PowerState.STOPPED


def test_vboxmanage_too_old_is_refused(tmp_path: Path) -> None:
    fake = FakeVBox(tmp_path, "6.1")
    fake.update(lambda state: state.__setitem__("version", "5.2.44r139111"))
    with pytest.raises(BackendUnavailable, match=r"VirtualBox 5\.2\.44 is too old"):
        _vbm_connect(fake)


# -- API transport ---------------------------------------------------------------------------------


def _future_com(tmp_path: Path, *, insert_state: str | None = None) -> Any:
    """The 7.2 fake reporting 8.0.2; *insert_state* adds a MachineState at 6 (renumbering the rest)."""
    folder = tmp_path / "VirtualBox VMs"
    folder.mkdir()
    com = make_vboxapi("7.2", str(folder))
    server = com.server
    server.vbox.version = server.vbox.versionNormalized = "8.0.2"
    server.vbox.revision = 180000
    server.vbox.APIVersion = "8_0"
    if insert_state:
        states = machine_states("7.2")
        states.insert(6, insert_state)
        server.state_number = states.index  # what IMachine.state reports
        numbers = {name: i for i, name in enumerate(states)}
        server.constants._enums["MachineState"] = numbers  # what the SDK's constants say
        for name, number in numbers.items():
            setattr(server.constants, f"MachineState_{name}", number)
    return com


def test_api_newer_version_uses_the_newest_calls(tmp_path: Path) -> None:
    com = _future_com(tmp_path)
    with pytest.warns(UntestedVersionWarning, match="API transport"):
        hv = virtabstract.connect("vbox:///session?transport=api", vboxapi_module=com)
    with hv:
        assert hv.backend.api.behaviour == (7, 2) and hv.host.version == "8.0.2"
        vm = hv.vms.create(VMSpec(name="future", memory="256MiB", disks=[{"size": "64MiB"}], firmware="uefi"))
        machine = com.server.vbox.findMachine(vm.id)
        assert machine.firmwareSettings.firmwareType == com.server.constants.FirmwareType_EFI  # 7.1+ place
        vm.start()
        assert vm.state is PowerState.RUNNING
        vm.power_off()
    assert com.server.locked_sessions() == []


def test_api_newer_version_decodes_states_with_its_sdk_constants(tmp_path: Path) -> None:
    """A renumbered MachineState (as 7.0's AbortedSaved did) is read right: the SDK says what numbers mean."""
    com = _future_com(tmp_path, insert_state="Hibernated")
    with pytest.warns(UntestedVersionWarning):
        hv = virtabstract.connect("vbox:///session?transport=api", vboxapi_module=com)
    with hv:
        api = hv.backend.api
        vm = hv.vms.create(VMSpec(name="renumbered", memory="256MiB", disks=[{"size": "64MiB"}]))
        vm.start()
        machine = com.server.vbox.findMachine(vm.id)
        assert machine.state == 7  # Running moved up by one ...
        assert state_from_number(7, NEWEST_KNOWN).api_name == "Paused"  # ... which 7.2's table would misread
        assert api.state_name(machine) == "Running"
        assert vm.state is PowerState.RUNNING
        assert api.state_name(types.SimpleNamespace(state=6)) == "Hibernated"  # a state this backend does not know
        assert api.state_name(types.SimpleNamespace(state=99)) == "MachineState 99"  # nor the SDK: no exception
        # An SDK without constants.all_values: the known names, one at a time.
        api.constants = types.SimpleNamespace(MachineState_Running=7, MachineState_Paused=8, MachineState_FirstOnline=7)
        api._sdk_states = None
        assert api.state_name(machine) == "Running"
        vm.power_off()


def test_api_known_version_decodes_with_the_table(tmp_path: Path) -> None:
    folder = tmp_path / "VirtualBox VMs"
    folder.mkdir()
    com = make_vboxapi("7.2", str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        hv = virtabstract.connect("vbox:///session?transport=api", vboxapi_module=com)
    with hv:
        api = hv.backend.api
        assert (api.behaviour, str(api.vbox.APIVersion)) == ((7, 2), "7_2")
        assert api.state_name(types.SimpleNamespace(state=5)) == "AbortedSaved"
        assert api.state_name(types.SimpleNamespace(state=99)) == "MachineState 99"
