"""The two VirtualBox transports agree: live NIC changes, "guest ready", the console address, deleting a
linked clone's source, the API hooks, options and variants.

Behaviour tests run once per transport (``rig``: the fake VBoxManage in-process, or the fake COM
layer; VirtualBox 7.0) with the same assertions; the fakes' own VirtualBox rules (controlvm
output and errors, modifyvm on a Saved VM, refusing to delete a medium with children) are
checked directly, so the fakes stay faithful.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from virtabstract_vbox._api_backend import VBoxApiBackend
from virtabstract_vbox._api_guest import ApiGuestMixin
from virtabstract_vbox._api_hooks import ApiHooks
from virtabstract_vbox._api_machine import ApiMachineMixin
from virtabstract_vbox._backend import VBoxBackend, linked_clone_names, vrde_console_info
from virtabstract_vbox._nic_rules import nic_change_mode
from virtabstract_vbox._parse import MediumRecord, parse_media
from virtabstract_vbox._states import AdditionsRunLevel, additions_ready

import virtabstract
from virtabstract import GuestInfo, Nic, PowerState, Secret, VMSpec
from virtabstract.errors import BackendError, GuestAgentUnavailable, InvalidState, VMNotFound

from .conftest import GUEST_PASSWORD, GUEST_USER, FakeVBox
from .fake_com import COMError, make_vboxapi
from .fake_vboxmanage import InProcessRunner

TRANSPORTS = ("vboxmanage", "api")


@dataclass
class Rig:
    """A connection on one transport and the fake behind it."""

    hv: virtabstract.Hypervisor
    transport: str
    vbox: FakeVBox | None = None
    runner: InProcessRunner | None = None
    com: Any = None

    def vbm(self, *args: str) -> tuple[int, str, str]:
        """Run the fake VBoxManage directly (VBoxManage transport only)."""
        assert self.runner is not None
        return self.runner(["VBoxManage", *args], 10)


@contextmanager
def _rig(transport: str, tmp_path: Path) -> Iterator[Rig]:
    creds = {"guest_username": GUEST_USER, "guest_password": GUEST_PASSWORD}
    if transport == "vboxmanage":
        fake = FakeVBox(tmp_path, "7.0")
        runner = fake.runner()
        with virtabstract.connect("vbox:///session?transport=vboxmanage", vboxmanage_runner=runner, **creds) as hv:
            yield Rig(hv, "vboxmanage", vbox=fake, runner=runner)
        return
    folder = tmp_path / "VirtualBox VMs"
    folder.mkdir()
    com = make_vboxapi("7.0", str(folder))
    with virtabstract.connect("vbox:///session?transport=api", vboxapi_module=com, **creds) as hv:
        yield Rig(hv, "api", com=com)
    assert com.server.locked_sessions() == [], "a session was left locked"


@pytest.fixture(params=TRANSPORTS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    """The same hypervisor on the VBoxManage transport or the API transport (fakes of VirtualBox 7.0)."""
    with _rig(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def vbm_rig(tmp_path: Path) -> Iterator[Rig]:
    """The VBoxManage transport only: for the fake VBoxManage's own rules."""
    with _rig("vboxmanage", tmp_path) as made:
        yield made


def _vm(rig: Rig, name: str = "p1", **fields: Any) -> virtabstract.VM:
    spec = {"name": name, "memory": "256MiB", "disks": [{"size": "64MiB"}], "nics": [{"network": "default"}]}
    spec.update(fields)
    return rig.hv.vms.create(VMSpec.from_dict(spec))


# -- 1. NIC changes: one table, the same answers on both transports ----------------------------

NIC_RULES = [
    ("network", "poweroff", "offline"),
    ("network", "Saved", "offline"),
    ("network", "aborted-saved", "offline"),
    ("network", "running", "live"),
    ("network", "Paused", "live"),
    ("network", "Starting", "needs_power_off"),
    ("connected", "running", "live"),
    ("connected", "saved", "offline"),
    ("model", "running", "needs_power_off"),
    ("model", "saved", "needs_power_off"),
    ("mac", "Running", "needs_power_off"),
    ("mac", "PoweredOff", "offline"),
    ("present", "running", "needs_power_off"),
    ("present", "saved", "needs_power_off"),
    ("present", "aborted", "offline"),
]


@pytest.mark.parametrize(("setting", "state", "mode"), NIC_RULES)
def test_nic_change_table(setting: str, state: str, mode: str) -> None:
    assert nic_change_mode(setting, state) == mode


def test_update_nic_live_on_a_running_vm(rig: Rig) -> None:
    vm = _vm(rig)
    nic = vm.info().nics[0]
    vm.start()
    first = len(rig.runner.calls) if rig.runner is not None else 0
    moved = vm.update_nic(nic.id, network="NatNetwork", connected=False)
    assert (moved.kind, moved.network, moved.connected, moved.mac) == ("nat", "NatNetwork", False, nic.mac)
    assert vm.state is PowerState.RUNNING
    back = vm.update_nic(nic.mac, network="default", connected=True)
    assert (back.network, back.connected) == ("default", True)
    if rig.runner is not None:  # live through controlvm, never modifyvm (which a running VM's lock refuses)
        changes = [" ".join(c[:1] + c[2:4]) for c in rig.runner.calls[first:] if c[0] in ("controlvm", "modifyvm")]
        assert changes == ["controlvm nic1 natnetwork", "controlvm setlinkstate1 off", "controlvm nic1 nat",
                           "controlvm setlinkstate1 on"]  # fmt: skip


def test_nic_rules_refuse_alike(rig: Rig) -> None:
    vm = _vm(rig)
    nic = vm.info().nics[0]
    vm.start()
    for call in (lambda: vm.add_nic(Nic()), lambda: vm.remove_nic(nic.id)):
        running = "NIC of VM 'p1' while it is Running: VirtualBox allows that only while the VM is Aborted, "
        with pytest.raises(InvalidState, match=running + "PoweredOff or Teleported") as err:
            call()
        assert err.value.state is PowerState.RUNNING
    vm.suspend()  # Saved: the attachment and the cable change in the settings, adding or removing does not
    with pytest.raises(InvalidState, match="cannot add or remove a NIC of VM 'p1' while it is Saved"):
        vm.add_nic(Nic())
    saved = vm.update_nic(nic.id, network="vboxnet0", connected=False)
    assert (saved.kind, saved.network, saved.connected) == ("hostonly", "vboxnet0", False)
    vm.start()  # restored with the changed NIC
    assert vm.info().nics[0].network == "vboxnet0"
    vm.power_off()
    assert vm.add_nic(Nic(network="eth0", kind="bridge")).id == "nic2"


def test_fake_controlvm_nic_is_vboxmanage(vbm_rig: Rig) -> None:
    rig = vbm_rig
    vm = _vm(rig)
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic1", "nat")
    assert (rc, err.splitlines()[0]) == (1, f"VBoxManage: error: Machine '{vm.id}' is not currently running.")
    vm.start()
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic1", "bogus")
    assert rc == 1 and "Invalid type 'bogus' specfied for NIC 1." in err and "Usage" in err
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic1", "bridged")
    assert rc == 1 and "Missing argument to 'bridged'." in err
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic9", "nat")
    assert rc == 1 and "Invalid NIC number '9'." in err
    rc, _out, err = rig.vbm("controlvm", vm.id, "setlinkstate1", "maybe")
    assert rc == 1 and "Invalid link state 'maybe'." in err
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic2", "nat")  # a disabled NIC: an error line, yet exit 0
    assert rc == 0 and "The NIC 2 is currently disabled and thus its attachment type can't be changed." in err
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic1", "bridged", "wlan9")  # unknown interface: a warning only
    assert rc == 0 and err == 'VBoxManage: warning: Interface "wlan9" doesn\'t seem to exist\n'
    rc, _out, err = rig.vbm("controlvm", vm.id, "nic1", "hostonly", "eth0")
    assert rc == 0 and 'Interface "eth0" is of type bridged' in err
    assert rig.vbm("controlvm", vm.id, "nic1", "null")[0] == 0
    assert 'nic1="null"' in rig.vbm("showvminfo", vm.id, "--machinereadable")[1]
    assert vm.info().nics == ()  # attached to nothing: no NIC, as for the API's Null attachment


def test_fake_modifyvm_on_a_saved_vm_is_vboxmanage(vbm_rig: Rig) -> None:
    rig = vbm_rig  # the fake COM layer's INetworkAdapter setters are test_api_machine's
    vm = _vm(rig)
    vm.start()
    vm.suspend()
    assert rig.vbm("modifyvm", vm.id, "--nic1", "intnet", "--intnet1", "lab", "--cableconnected1", "off")[0] == 0
    for refused in (["--nictype1", "virtio"], ["--nic1", "none"], ["--nic2", "nat"], ["--cpus", "2"],
                    ["--intnet1", "other", "--macaddress1", "080027000001"]):  # fmt: skip
        rc, _out, err = rig.vbm("modifyvm", vm.id, *refused)
        assert rc == 1 and "The machine is not mutable (state is Saved)" in err, refused
    assert (vm.info().nics[0].network, vm.info().cpus) == ("lab", 1)  # all or nothing: "other" was not set


# -- 2. "ready" means Userland on both transports ----------------------------------------------


@pytest.mark.parametrize(
    ("level", "ready"), [(0, False), (AdditionsRunLevel.SYSTEM, False), (2, True), (AdditionsRunLevel.DESKTOP, True)]
)
def test_additions_ready_means_userland(level: int, ready: bool) -> None:
    assert additions_ready(level) is ready


def test_wait_ready_does_not_return_during_the_system_phase(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = _vm(rig)
    seen: list[GuestInfo | None] = []
    probe = rig.hv.backend.guest_info

    def recording(vm_id: str) -> GuestInfo:
        try:
            info = probe(vm_id)
        except GuestAgentUnavailable:
            seen.append(None)
            raise
        seen.append(info)
        return info

    monkeypatch.setattr(rig.hv.backend, "guest_info", recording)
    vm.start()
    info = vm.guest.wait_ready(timeout=20)
    system = [i for i in seen if i is not None and not i.ready]
    assert system, f"the Additions never reported System before Userland: {seen}"
    assert all(not i.ready for i in system) and system[0].agent_version  # the driver reports its version
    assert info.ready and seen[-1] == info and [i for i in seen if i is not None and i.ready] == [info]


def test_guest_control_refused_until_userland(rig: Rig) -> None:
    vm = _vm(rig)
    vm.start()
    vm.guest.wait_ready(timeout=20)
    vm.reset()  # the guest boots again: the Additions start over
    refusals = []
    for _ in range(10):
        try:
            result = vm.guest.exec(["echo", "up"])
            break
        except GuestAgentUnavailable as exc:
            refusals.append(str(exc))
    else:
        pytest.fail(f"guest control never came back: {refusals}")
    assert result.stdout == "up\n"
    assert any("run level System: guest control needs Userland" in r for r in refusals), refusals


# -- 3. the console address ----------------------------------------------------------------------

CONSOLE_TABLE = [
    ("0.0.0.0", 5000, "127.0.0.1", "rdp://127.0.0.1:5000"),
    ("", 5000, "127.0.0.1", "rdp://127.0.0.1:5000"),
    ("192.168.56.10", 5001, "192.168.56.10", "rdp://192.168.56.10:5001"),
    ("::", 5000, "::1", "rdp://[::1]:5000"),
    ("fd00::5", 3389, "fd00::5", "rdp://[fd00::5]:3389"),
    ("vbox-host.example", 3389, "vbox-host.example", "rdp://vbox-host.example:3389"),
    ("0.0.0.0", None, "127.0.0.1", ""),
]


@pytest.mark.parametrize(("address", "port", "host", "url"), CONSOLE_TABLE)
def test_vrde_console_info(address: str, port: int | None, host: str, url: str) -> None:
    info = vrde_console_info(address, port, Secret("pw"))
    assert (info.protocol, info.host, info.port, info.url, info.username) == ("rdp", host, port, url, "virtabstract")
    assert vrde_console_info(address, port, None).username == ""


def _set_vrde_address(rig: Rig, vm: virtabstract.VM, address: str) -> None:
    if rig.runner is not None:
        assert rig.vbm("modifyvm", vm.id, "--vrdeaddress", address)[0] == 0
        return
    api = rig.hv.backend.api
    with api.session(api.vbox.findMachine(vm.id)) as session:
        session.machine.VRDEServer.setVRDEProperty("TCP/Address", address)
        session.machine.saveSettings()


WILDCARDS = [("0.0.0.0", "127.0.0.1", "127.0.0.1"), ("::", "::1", "[::1]")]


@pytest.mark.parametrize(("address", "host", "url_host"), WILDCARDS)
def test_console_maps_a_wildcard_address_on_both_transports(rig: Rig, address: str, host: str, url_host: str) -> None:
    vm = _vm(rig)
    _set_vrde_address(rig, vm, address)
    vm.start()
    console = vm.console()
    assert (console.host, console.url) == (host, f"rdp://{url_host}:{console.port}")


# -- 4. deleting the source of linked clones ------------------------------------------------------


def _linked(rig: Rig) -> tuple[virtabstract.VM, virtabstract.VM]:
    source = _vm(rig, "src")
    snap = source.snapshots.create("base")
    return source, source.clone("lc", linked=True, snapshot=snap)


def test_delete_of_a_linked_clone_source_is_refused_and_changes_nothing(rig: Rig) -> None:
    source, clone = _linked(rig)
    before, disks = source.info(), [Path(d.path) for d in source.info().disks]
    with pytest.raises(InvalidState, match=r"linked clones 'lc' are built on them") as err:
        source.delete(disks=True)
    assert err.value.operation == "delete"
    assert source.info() == before and [s.name for s in source.snapshots.list()] == ["base"]
    assert all(p.exists() for p in disks)
    clone.start()  # the clone still works
    clone.power_off()
    clone.delete()
    source.delete()  # without clones the source deletes, disks included
    assert not any(p.exists() for p in disks)


def test_delete_keeping_disks_of_a_linked_clone_source_unregisters_it(rig: Rig) -> None:
    source, clone = _linked(rig)
    disks = [Path(d.path) for d in source.info().disks]
    source.delete(disks=False)
    with pytest.raises(VMNotFound):
        rig.hv.backend.get_vm(source.id)
    assert all(p.exists() for p in disks)
    clone.start()
    assert clone.state is PowerState.RUNNING


def test_the_snapshot_a_linked_clone_grows_from_cannot_be_deleted(rig: Rig) -> None:
    """Why keeping the disks cannot merge the source's snapshots: VirtualBox does not multi-merge."""
    source, _clone = _linked(rig)
    with pytest.raises(BackendError, match=r"has more than one child hard disk \(2\)"):
        source.snapshots.list()[0].delete()
    assert [s.name for s in source.snapshots.list()] == ["base"]


def test_unregister_of_a_linked_clone_source_keeps_everything(rig: Rig) -> None:
    source, clone = _linked(rig)
    disks = [Path(d.path) for d in source.info().disks]
    source.unregister()
    assert [vm.name for vm in rig.hv.vms.list()] == ["lc"] and all(p.exists() for p in disks)
    assert clone.info().disks[0].size_mib == 64


def test_fakes_refuse_to_delete_a_medium_with_children(rig: Rig) -> None:
    """Without the backend's check, VirtualBox leaves the source half-deleted: unregistered, settings file kept."""
    source, clone = _linked(rig)
    base = source.info().disks[0].path
    if rig.vbox is not None:
        cfg = Path(rig.vbox.read()["vms"][source.id]["cfg"])
        rc, _out, err = rig.vbm("unregistervm", source.id, "--delete")
        assert rc == 1 and f"Cannot close medium '{base}' because it has 1 child media" in err
        assert "Machine delete failed" in err and "VBOX_E_OBJECT_IN_USE" in err
        assert source.id not in rig.vbox.read()["vms"] and Path(base).exists() and cfg.exists()  # half-deleted
        rc, _out, err = rig.vbm("closemedium", "disk", base, "--delete")
        assert rc == 1 and "because it has 1 child media" in err
        return
    server = rig.com.server
    machine = server.vbox.findMachine(source.id)
    medium = server.vbox.openMedium(base, 3, 2, False)
    with pytest.raises(COMError, match="is still attached to the following 1 virtual machine"):
        medium.deleteStorage()
    media = machine.unregister(server.constants.CleanupMode_DetachAllReturnHardDisksOnly)
    with pytest.raises(COMError, match="because it has 1 child media"):
        medium.deleteStorage()
    progress = machine.deleteConfig(media)
    progress.waitForCompletion(-1)
    assert progress.resultCode == COMError("VBOX_E_OBJECT_IN_USE", "").errno
    assert "because it has 1 child media" in progress.errorInfo.text
    assert Path(base).exists() and Path(machine.settingsFilePath).exists()  # half-deleted
    assert clone.info().disks[0].backing == base


MEDIA = """UUID:           11111111-1111-1111-1111-111111111111
Parent UUID:    base
State:          created
Type:           normal (base)
Location:       /vms/src/src.vdi
Storage format: VDI
Capacity:       64 MBytes
Encryption:     disabled
In use by VMs:  src (UUID: aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa) [base (UUID: 99999999-9999-9999-9999-999999999999)]

UUID:           22222222-2222-2222-2222-222222222222
Parent UUID:    11111111-1111-1111-1111-111111111111
State:          created
Type:           normal (differencing)
Location:       /vms/src/Snapshots/{22222222-2222-2222-2222-222222222222}.vdi
Storage format: VDI
Capacity:       64 MBytes
Encryption:     disabled
In use by VMs:  src (UUID: aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa)

UUID:           33333333-3333-3333-3333-333333333333
Parent UUID:    11111111-1111-1111-1111-111111111111
State:          created
Type:           normal (differencing)
Location:       /vms/lc/Snapshots/{33333333-3333-3333-3333-333333333333}.vdi
Storage format: VDI
Capacity:       64 MBytes
Encryption:     disabled
In use by VMs:  lc (UUID: bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb)
                lc 2 (UUID: cccccccc-cccc-cccc-cccc-cccccccccccc)

UUID:           44444444-4444-4444-4444-444444444444
Parent UUID:    11111111-1111-1111-1111-111111111111
State:          created
Type:           normal (differencing)
Location:       /vms/orphan.vdi
Storage format: VDI
Capacity:       64 MBytes
Encryption:     disabled
"""


def test_parse_media_and_linked_clone_names() -> None:
    media = parse_media(MEDIA)
    assert [(m.uuid[:1], m.parent[:1]) for m in media] == [("1", ""), ("2", "1"), ("3", "1"), ("4", "1")]
    assert media[0].users == (("src", "a" * 8 + "-aaaa-aaaa-aaaa-" + "a" * 12),)
    assert [name for name, _ in media[2].users] == ["lc", "lc 2"]  # the continuation line counts too
    src = "AAAAAAAA-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
    assert linked_clone_names(src, media) == ["lc", "lc 2", "/vms/orphan.vdi"]
    assert linked_clone_names("bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb", media) == []
    assert linked_clone_names(src, [MediumRecord("1", "", "/a.vdi", (("src", src.lower()),))]) == []


# -- 5-7. API hooks, options, variants -------------------------------------------------------------


def test_api_mixins_declare_their_hooks_once_as_abstract_methods() -> None:
    hooks = {"api", "_machine", "_state", "_require_off_api", "_delete"}
    assert ApiHooks.__abstractmethods__ == frozenset(hooks)
    assert issubclass(ApiGuestMixin, ApiHooks) and issubclass(ApiMachineMixin, ApiHooks)
    assert not VBoxApiBackend.__abstractmethods__
    for mixin in (ApiGuestMixin, ApiMachineMixin):
        assert not hooks & set(vars(mixin)), f"{mixin.__name__} redeclares a hook"
        assert "TYPE_CHECKING" not in inspect.getsource(inspect.getmodule(mixin))  # type: ignore[arg-type]


def test_guest_credential_options_are_transport_neutral() -> None:
    options = VBoxBackend.accepted_options
    assert "VBoxManage" in options["guest_password"] and "API" in options["guest_password"]
    assert "VBoxManage" not in options["guest_username"]


def test_variants_are_the_two_transports() -> None:
    assert VBoxBackend.variants() == {"vboxmanage": VBoxBackend, "api": VBoxApiBackend}
    assert VBoxApiBackend.variants() == VBoxBackend.variants()
