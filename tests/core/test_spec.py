"""VMSpec, Disk, Nic: validation at the boundary, JSON Schema, files."""

import json

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtabstract import CdRom, Disk, Firmware, Nic, VMSpec, load_spec, spec_schema
from virtabstract.errors import SpecError

GOOD = {
    "name": "web1",
    "cpus": 2,
    "memory": "2GiB",
    "guest_os": "ubuntu-22.04",
    "disks": [{"size": "20GiB"}, {"path": "/var/lib/images/data.qcow2"}],
    "nics": [{"network": "default", "mac": "52:54:00:AA:bb:01"}],
    "firmware": "uefi",
    "secure_boot": True,
    "boot_order": ["cdrom", "disk"],
    "cdrom": "/isos/ubuntu.iso",
    "autostart": True,
    "description": 'a <web> & "server"',
    "tags": ["web", "prod", "web"],
}


def test_good_spec_normalises():
    spec = VMSpec.from_dict(GOOD)
    assert spec.memory == spec.memory_mib == 2048
    assert spec.disks[0].size == 20480 and spec.disks[1].size is None
    assert spec.nics[0].mac == "52:54:00:aa:bb:01"
    assert spec.firmware is Firmware.UEFI
    assert spec.cdrom == CdRom(iso="/isos/ubuntu.iso")
    assert spec.tags == ("prod", "web")
    assert spec.boot_order == ("cdrom", "disk")


def test_constructor_with_objects_matches_from_dict():
    spec = VMSpec(
        name="web1",
        cpus=2,
        memory="2GiB",
        guest_os="ubuntu-22.04",
        disks=[Disk(size="20GiB")],
        nics=[Nic(network="default")],
    )
    assert spec == VMSpec.from_dict({**spec.to_dict()})
    assert isinstance(spec.disks, tuple)
    hash(spec)  # frozen specs are hashable


def test_to_dict_round_trip_is_json():
    spec = VMSpec.from_dict(GOOD)
    data = json.loads(json.dumps(spec.to_dict()))
    assert VMSpec.from_dict(data) == spec


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "line\nbreak"}, "name"),
        ({"name": " padded"}, "name"),
        ({"name": "x" * 81}, "name"),
        ({"name": 5}, "name"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": True}, "cpus"),
        ({"cpus": "2"}, "cpus"),
        ({"cpus": 10_000}, "cpus"),
        ({"memory": "lots"}, "memory"),
        ({"memory": 2}, "memory"),
        ({"memory": "100TiB"}, "memory"),
        ({"guest_os": "ubuntu-22.4"}, "guest_os"),
        ({"guest_os": None}, "guest_os"),
        ({"disks": "20GiB"}, "disks"),
        ({"disks": [{"size": "20GiB"}, {"size": "abc"}]}, "disks[1].size"),
        ({"disks": [{}]}, "disks[0].size"),
        ({"disks": [{"size": 1, "bus": "usb"}]}, "disks[0].bus"),
        ({"disks": [{"size": 1, "thin": "yes"}]}, "disks[0].thin"),
        ({"disks": [{"size": 1, "sizee": 2}]}, "disks[0].sizee"),
        ({"disks": [5]}, "disks[0]"),
        ({"nics": [{"network": ""}]}, "nics[0].network"),
        ({"nics": [{"mac": "01:00:5e:00:00:01"}]}, "nics[0].mac"),
        ({"nics": [{"mac": "zz"}]}, "nics[0].mac"),
        ({"nics": [{"kind": "wifi"}]}, "nics[0].kind"),
        ({"nics": [{"model": "ne2000"}]}, "nics[0].model"),
        ({"firmware": "coreboot"}, "firmware"),
        ({"firmware": "bios", "secure_boot": True}, "secure_boot"),
        ({"boot_order": ["disk", "disk"]}, "boot_order"),
        ({"boot_order": ["floppy"]}, "boot_order[0]"),
        ({"boot_order": "disk"}, "boot_order"),
        ({"cdrom": ""}, "cdrom.iso"),
        ({"autostart": 1}, "autostart"),
        ({"description": 7}, "description"),
        ({"tags": "web"}, "tags"),
        ({"tags": ["a,b"]}, "tags[0]"),
        ({"tags": [""]}, "tags[0]"),
        ({"graphics": "rdp"}, "graphics"),
        ({"acceleration": "warp"}, "acceleration"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_field_names_its_path(patch, field):
    with pytest.raises(SpecError) as info:
        VMSpec.from_dict({**GOOD, **patch})
    assert info.value.field == field
    assert str(info.value).startswith(field)


def test_missing_name():
    with pytest.raises(SpecError) as info:
        VMSpec.from_dict({"cpus": 1})
    assert "name" in str(info.value)


def test_unknown_guest_os_suggests_near_match():
    with pytest.raises(SpecError, match=r"ubuntu-22\.04"):
        VMSpec(name="x", guest_os="ubuntu-22.4")


def test_schema_is_valid_and_matches_fields():
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    from dataclasses import fields

    assert set(schema["properties"]) == {f.name for f in fields(VMSpec)}
    assert set(schema["properties"]["disks"]["items"]["properties"]) == {f.name for f in fields(Disk)}
    assert set(schema["properties"]["nics"]["items"]["properties"]) == {f.name for f in fields(Nic)}
    jsonschema.validate(GOOD, schema)


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**7), st.text(max_size=12), st.floats(allow_nan=False, width=16)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(sorted(spec_schema()["properties"])),
    value=_values,
)
def test_hypothesis_bad_values_raise_spec_error_naming_the_field(field, value):
    data = {**GOOD, field: value}
    try:
        spec = VMSpec.from_dict(data)
    except SpecError as err:
        assert err.field.split(".")[0].split("[")[0] == field, (err.field, field)
        return
    # Accepted values must satisfy the published schema too: one set of rules.
    jsonschema.validate(spec.to_dict(), spec_schema())


@settings(max_examples=200)
@given(value=_values)
def test_hypothesis_bad_disks_name_the_disk(value):
    try:
        VMSpec.from_dict({"name": "x", "disks": [{"size": 1}, value]})
    except SpecError as err:
        assert err.field.startswith("disks")
    except Exception as exc:  # pragma: no cover - the failure we look for
        pytest.fail(f"non-SpecError {type(exc).__name__}: {exc}")


def test_load_spec_json_and_yaml(tmp_path):
    (tmp_path / "vm.json").write_text(json.dumps(GOOD))
    (tmp_path / "vm.yaml").write_text("name: web1\ncpus: 2\nmemory: 2GiB\ndisks:\n  - size: 20GiB\n")
    assert load_spec(tmp_path / "vm.json").name == "web1"
    assert VMSpec.from_file(tmp_path / "vm.yaml").disks[0].size == 20480
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(SpecError, match="YAML"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(SpecError, match="readable"):
        load_spec(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(SpecError, match="JSON"):
        load_spec(tmp_path / "bad.json")


def _name_rules_accept(value):
    """The documented name rules, written out once more for the test."""
    control = any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value)
    separator = "/" in value or "\\" in value
    return bool(value) and len(value) <= 255 and not control and not separator and value == value.strip()


@settings(max_examples=2000)
@given(st.text(alphabet=st.characters(), max_size=8))
def test_name_check_fast_path_agrees_with_the_rules(value):
    """``_check_name`` accepts exactly what its rules accept, whichever path (fast or regex) decides."""
    from virtabstract._spec import _check_name

    try:
        _check_name(value, "name", max_length=255)
        accepted = True
    except SpecError:
        accepted = False
    assert accepted is _name_rules_accept(value)


@pytest.mark.parametrize("value", ["a\u00a0b", "\u00e9t\u00e9", "x\u0085y", "a\u2028b", "snap-1", "a b"])
def test_names_outside_the_fast_path_still_follow_the_rules(value):
    from virtabstract._spec import _check_name

    assert _name_rules_accept(value)
    assert _check_name(value, "name") == value
