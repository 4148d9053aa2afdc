"""A fake ``VBoxManage`` for the vbox backend's tests (run as a script).

State lives in the JSON file named by ``VBOX_FAKE_STATE`` (locked with ``fcntl`` so
parallel invocations serialise). The ``profile`` key selects VirtualBox 6.1, 7.0, 7.1 or
7.2 behaviour: ``--version`` text, ``aborted-saved`` (7.x only), ``createvm`` flags
(``--cipher``… from 7.0, ``--platform-architecture`` from 7.1), the
``guestproperty enumerate`` line format and version-dependent showvminfo keys. Every
version test is ordered (:func:`since`), so a profile inherits its predecessors'
behaviour: 7.2 changes nothing this fake models (VBoxManageInfo.cpp, VBoxManageModifyVM.cpp,
VBoxManageMisc.cpp and VBoxManageGuestProp.cpp of 7.2-era sources print and accept what
7.1's do), so it differs from 7.1 only in its version strings. The ``version`` key
overrides the ``--version`` text (a VirtualBox newer than the profiles: ``8.0.2r180000``).

Reproduced from VirtualBox's documented behaviour (not verified against a real
VirtualBox here): ``--machinereadable`` escaping (``\\"``, ``\\\\``, quoted keys,
unescaped snapshot names), the stderr triplet ``error:``/``Details: code …``/
``Context:`` with exit status 1 (2 for syntax errors), the machine state machine,
write-lock failures of ``modifyvm``/``storagectl``/``storageattach`` on a running VM,
snapshots, linked clones, guest properties and ``guestcontrol``.

From VBoxManageControlVM.cpp / VBoxManageModifyVM.cpp / MediumImpl.cpp / MachineImpl.cpp
(VirtualBox 7.0 sources):

* ``controlvm <vm> nic<N> null|nat|bridged <if>|hostonly <if>|intnet <net>|natnetwork <net>|
  generic <driver>`` and ``setlinkstate<N> on|off`` change a running VM's NIC live;
  ``controlvm`` of a VM without a VM process prints ``Machine '<vm>' is not currently
  running.``; a disabled NIC's attachment is not changed (an error line, exit status 0);
  ``bridged``/``hostonly`` warn about an unknown host interface; usage errors exit 1.
* ``modifyvm`` on a Saved VM: the NIC attachment, its network name and the cable change
  (``MutableOrSavedOrRunning`` setters; ``--nic<N>`` does not re-enable an enabled NIC);
  every other option fails with "The machine is not mutable (state is Saved)", and nothing
  is changed.
* Guest Additions after a boot (start from off, reset, reboot from inside): the first
  :data:`SYSTEM_POLLS` showvminfo reads report run level 1 (System: VBoxService not up, no
  guest properties, guest control refused), later reads 2 (Userland).
* Deleting a snapshot a linked clone was made from fails (E_FAIL "Hard disk '…' has more
  than one child hard disk (2)": the clone's disk is a second child, VirtualBox does not
  multi-merge).
* ``list hdds`` prints ``In use by VMs:`` (one VM per line, snapshots in brackets).
  Deleting a medium that has children is refused ("Cannot close medium '…' because it has
  N child media", VBOX_E_OBJECT_IN_USE): ``unregistervm --delete`` of a VM whose disk
  backs a linked clone unregisters it, deletes the media before that one, then fails,
  leaving the settings file -- half-deleted, as VirtualBox does.

Fault knobs in the state file: ``faults.hang`` (command name → sleeps an hour),
``faults.garbage`` (command name → prints nonsense and exits 0), ``vms[id].locked``
(a phantom session holds the lock), ``vms[id].guest.acpi`` (False: ACPI is ignored),
``vms[id].guest.additions`` (False: no Guest Additions), ``vms[id].guest.runlevel`` (a
fixed Additions run level), ``system_polls`` (System-phase reads after a boot), ``acpi_delay`` (seconds
before an ACPI shutdown completes). ``violations`` records secrets seen on a
command line.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any, NoReturn

VERSIONS = {"6.1": "6.1.50r161033", "7.0": "7.0.20r163906", "7.1": "7.1.4r165100", "7.2": "7.2.4r170995"}
"""``--version`` per profile (``%sr%u``: the release and its build revision, as Oracle's downloads name them)."""


def since(profile: str, version: str) -> bool:
    """Whether *profile* is *version* or later ("7.2" inherits what "7.1" introduced)."""

    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))

    return key(profile) >= key(version)


SYSTEM_POLLS = 2
"""showvminfo reads after a boot that still see the Additions at System (run level 1)."""
SYSTEM, USERLAND = 1, 2
_NIC_NETWORK_KEYS = ("bridgeadapter", "hostonlyadapter", "intnet", "nat-network", "genericdrv")
_NIC_SAVED_OK = frozenset({"nic", "cableconnected", "bridgeadapter", "hostonlyadapter", "intnet", "nat-network"})
"""modifyvm NIC options a Saved VM takes (INetworkAdapter's MutableOrSavedOrRunning setters)."""
_TERMINAL_ONLINE = ("running", "paused", "gurumeditation", "livesnapshotting", "onlinesnapshotting")


class Hang(Exception):
    """The command never finishes (fault ``faults.hang``): the process sleeps, in-process it times out."""


class Fail(Exception):
    def __init__(self, lines: list[str], code: str = "", rc: int = 1, context: str = "", usage: bool = False) -> None:
        super().__init__(lines[0] if lines else "")
        self.lines, self.code, self.rc, self.context = lines, code, rc, context
        self.usage = usage or rc == 2


CODES = {
    "VBOX_E_OBJECT_NOT_FOUND": "0x80bb0001",
    "VBOX_E_INVALID_VM_STATE": "0x80bb0002",
    "VBOX_E_FILE_ERROR": "0x80bb0004",
    "VBOX_E_IPRT_ERROR": "0x80bb0005",
    "VBOX_E_INVALID_OBJECT_STATE": "0x80bb0007",
    "VBOX_E_OBJECT_IN_USE": "0x80bb000c",
    "E_INVALIDARG": "0x80070057",
}


def fail(msg: str, code: str = "", context: str = "") -> NoReturn:
    raise Fail([msg], code, 1, context)


def syntax(msg: str) -> NoReturn:
    raise Fail([msg], "", 2)


def usage_error(msg: str) -> NoReturn:
    """``errorSyntax`` inside controlvm: the message and the usage, but exit status 1 (controlvm ignores the 2)."""
    raise Fail([msg], "", 1, usage=True)


def esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class Fake:
    def __init__(self, state: dict[str, Any]) -> None:
        self.s = state
        self.profile: str = state.setdefault("profile", "7.0")
        self.v7 = since(self.profile, "7.0")
        state.setdefault("vms", {})
        state.setdefault("media", {})
        state.setdefault("violations", [])
        state.setdefault("faults", {})
        self.out: list[str] = []
        self.err: list[str] = []
        self.raw_out = ""
        self.raw_err = ""
        self.now = time.time()
        for vm in state["vms"].values():
            pending = vm.get("pending")
            if pending and pending[1] <= self.now:
                vm["state"] = pending[0]
                vm.pop("pending")

    # -- helpers -------------------------------------------------------------------------

    def p(self, text: str = "") -> None:
        self.out.append(text)

    def vm(self, ref: str) -> dict[str, Any]:
        vms = self.s["vms"]
        if ref.lower() in vms:
            return vms[ref.lower()]  # type: ignore[no-any-return]
        for vm in vms.values():
            if vm["name"] == ref:
                return vm  # type: ignore[no-any-return]
        what = "with UUID" if len(ref) == 36 and ref.count("-") == 4 else "named"
        fail(
            f"Could not find a registered machine {what} '{ref}'",
            "VBOX_E_OBJECT_NOT_FOUND",
            'FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())" at line 2789 of file VBoxManageInfo.cpp',
        )

    def online(self, vm: dict[str, Any]) -> bool:
        return vm["state"] in _TERMINAL_ONLINE or vm.get("locked", False)

    def write_lock(self, vm: dict[str, Any]) -> None:
        """modifyvm/storagectl/storageattach take a write lock: fails when a session holds the VM."""
        if self.online(vm) or vm.get("locked"):
            fail(
                f"The machine '{vm['name']}' is already locked for a session (or being unlocked)",
                "VBOX_E_INVALID_OBJECT_STATE",
                '"LockMachine(a->session, LockType_Write)" at line 554 of file VBoxManageModifyVM.cpp',
            )

    def require_mutable(self, vm: dict[str, Any], option: str, value: str) -> None:
        """A modifyvm option's state dependency: a Saved VM takes NIC attachment and cable changes only."""
        if vm["state"] not in ("saved", "aborted-saved"):
            return
        name = option[2:].rstrip("0123456789")
        slot = option[2 + len(name) :]
        enabled = vm["nics"].get(slot, {}).get("mode", "none") != "none"
        if name in _NIC_SAVED_OK and not (name == "nic" and (value == "none" or not enabled)):
            return  # --nic<N> on an enabled NIC does not re-enable it (VBoxManageModifyVM.cpp)
        fail(f"The machine is not mutable (state is {state_api(vm['state'])})", "VBOX_E_INVALID_VM_STATE")

    def not_running(self, ref: str) -> NoReturn:
        fail(f"Machine '{ref}' is not currently running.")

    def opts(self, args: list[str], known: dict[str, bool]) -> tuple[dict[str, str], list[str]]:
        """Parse ``--opt value`` / ``--opt=value`` / flags; ``known`` maps option → takes a value."""
        parsed: dict[str, str] = {}
        rest: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg.startswith("--"):
                name, eq, val = arg.partition("=")
                if name not in known:
                    syntax(f"Unknown option: {name}")
                if known[name] and not eq:
                    i += 1
                    if i >= len(args):
                        syntax(f"Missing value for {name}")
                    val = args[i]
                parsed[name] = val if known[name] else "1"
            else:
                rest.append(arg)
            i += 1
        return parsed, rest

    # -- commands ------------------------------------------------------------------------

    def run(self, argv: list[str]) -> int:
        if not argv:
            syntax("No command given")
        cmd = argv[0]
        if cmd in self.s["faults"].get("hang", []):
            raise Hang(cmd)
        if cmd in self.s["faults"].get("garbage", []):
            self.p("\x00\x01 this is not VBoxManage output {{{")
            return 0
        if "--password" in argv:
            self.s["violations"].append(f"--password on the command line of {cmd}")
        handler = getattr(self, "cmd_" + cmd.lstrip("-").replace("-", "_"), None)
        if handler is None:
            syntax(f"Invalid command '{cmd}'")
        result = handler(argv[1:])
        return int(result or 0)

    def cmd_version(self, args: list[str]) -> None:
        self.p(self.s.get("version") or VERSIONS[self.profile])

    cmd_v = cmd_version

    def cmd_list(self, args: list[str]) -> None:
        what = [a for a in args if not a.startswith("-")]
        kind = what[0] if what else ""
        if kind in ("vms", "runningvms"):
            for vm in self.s["vms"].values():
                if kind == "vms" or vm["state"] in _TERMINAL_ONLINE:
                    name = "<inaccessible>" if vm.get("inaccessible") else vm["name"]
                    self.p(f'"{name}" {{{vm["uuid"]}}}')
        elif kind == "ostypes":
            for os_id, desc in sorted(ostypes(self.profile).items()):
                self.p(f"ID:          {os_id}")
                self.p(f"Description: {desc}")
                self.p("Family ID:   Linux")
                self.p("Family Desc: Linux")
                self.p("64 bit:      true")
                if since(self.profile, "7.1"):
                    self.p("Architecture: x86")
                self.p()
        elif kind == "hostinfo":
            self.p("Host Information:")
            self.p()
            self.p("Host time: 2024-05-01T10:00:00.000000000Z")
            self.p("Processor online count: 4")
            self.p("Processor count: 4")
            self.p("Processor online core count: 2")
            self.p("Processor core count: 2")
            self.p("Processor supports HW virtualization: yes")
            self.p("Processor#0 speed: 2000")
            self.p("Processor#0 description: Fake(R) CPU @ 2.00GHz")
            self.p("Memory size: 16000 MByte")
            self.p("Memory available: 9000 MByte")
            self.p("Operating system: Linux")
            self.p("Operating system version: 6.1.0-18-amd64")
        elif kind == "hostonlyifs":
            for name, ip in self.s.get("hostonlyifs", {"vboxnet0": "192.168.56.1"}).items():
                for line in (
                    f"Name:            {name}",
                    "GUID:            786f6276-656e-4074-8000-0a0027000000",
                    "DHCP:            Disabled",
                    f"IPAddress:       {ip}",
                    "NetworkMask:     255.255.255.0",
                    "IPV6Address:     fe80::800:27ff:fe00:0",
                    "IPV6NetworkMaskPrefixLength: 64",
                    "HardwareAddress: 0a:00:27:00:00:00",
                    "MediumType:      Ethernet",
                    "Wireless:        No",
                    "Status:          Up",
                    f"VBoxNetworkName: HostInterfaceNetworking-{name}",
                    "",
                ):
                    self.p(line)
        elif kind == "bridgedifs":
            for line in ("Name:            eth0", "GUID:            00000000-0000-0000-0000-000000000001",
                         "DHCP:            Disabled", "IPAddress:       10.0.0.5", "NetworkMask:     255.255.255.0",
                         "MediumType:      Ethernet", "Status:          Up",
                         "VBoxNetworkName: HostInterfaceNetworking-eth0", ""):  # fmt: skip
                self.p(line)
        elif kind == "natnetworks":
            nets = self.s.get("natnetworks", {"NatNetwork": "10.0.2.0/24"})
            if self.v7:
                self.p("NAT Networks:")
                self.p()
            for name, cidr in nets.items():
                if self.v7:
                    lines = [f"Name:         {name}", f"Network:      {cidr}", "Gateway:      10.0.2.1",
                             "DHCP Server:  Yes", "IPv6:         No", "Enabled:      Yes"]  # fmt: skip
                else:
                    lines = [f"NetworkName:    {name}", "IP:             10.0.2.1", f"Network:        {cidr}",
                             "IPv6 Enabled:   No", "IPv6 Prefix:    fd17:625c:f037:2::/64", "DHCP Enabled:   Yes",
                             "Enabled:        Yes"]  # fmt: skip
                for line in [*lines, "loopback mappings (ipv4)", "        127.0.0.1=2", ""]:
                    self.p(line)
            if self.v7:
                self.p(f"{len(nets)} network{'s' if len(nets) != 1 else ''} found")
        elif kind == "systemproperties":
            self.p(f"API version:                     {self.profile.replace('.', '_')}")
            self.p(f"Default machine folder:          {self.s['machine_folder']}")
        elif kind == "hdds":
            for med in self.s["media"].values():
                self.p(f"UUID:           {med['uuid']}")
                self.p(f"Parent UUID:    {med.get('parent') or 'base'}")
                self.p("State:          created")
                self.p("Type:           normal (base)")
                self.p(f"Location:       {med['path']}")
                self.p("Storage format: VDI")
                self.p(f"Capacity:       {med['size']} MBytes")
                self.p("Encryption:     disabled")
                for i, user in enumerate(self.medium_users(med)):  # showMediumInfo: one VM per line
                    self.p(f"{'In use by VMs:  ' if i == 0 else ' ' * 16}{user['name']} (UUID: {user['uuid']})")
                self.p()
        else:
            syntax(f"Invalid parameter '{kind}'")

    def showvminfo_lines(self, vm: dict[str, Any]) -> list[str]:
        lines = [
            f'name="{esc(vm["name"])}"',
            f'groups="{esc(",".join(vm.get("groups") or ["/"]))}"',
            f'ostype="{esc(ostypes(self.profile).get(vm["ostype"], vm["ostype"]))}"',
            f'UUID="{vm["uuid"]}"',
            f'CfgFile="{esc(vm["cfg"])}"',
            f'SnapFldr="{esc(str(Path(vm["cfg"]).parent / "Snapshots"))}"',
            f'LogFldr="{esc(str(Path(vm["cfg"]).parent / "Logs"))}"',
            f'hardwareuuid="{vm["uuid"]}"',
            f"memory={vm['memory']}",
            'pagefusion="off"' if not self.v7 else "vram=16",
            f"cpuexecutioncap={vm.get('cap', 100)}",
            'hpet="off"',
            'chipset="piix3"',
            f'firmware="{vm.get("firmware", "BIOS")}"',
            f"cpus={vm['cpus']}",
        ]
        if since(self.profile, "7.1"):  # VBoxManageInfo.cpp prints it after the groups
            lines.insert(2, 'platformArchitecture="x86"')
        for i in range(4):
            boot = vm.get("boot", ["floppy", "dvd", "disk", "none"])
            lines.append(f'boot{i + 1}="{boot[i] if i < len(boot) else "none"}"')
        lines.append(f'VMState="{vm["state"]}"')
        lines.append('VMStateChangeTime="2024-05-01T10:00:00.000000000"')
        for n, (ctl, c) in enumerate(vm.get("controllers", {}).items()):
            lines += [f'storagecontrollername{n}="{esc(ctl)}"', f'storagecontrollertype{n}="{c["type"]}"',
                      f"storagecontrollerinstance{n}=\"0\"", f'storagecontrollermaxportcount{n}="30"',
                      f'storagecontrollerportcount{n}="{c["ports"]}"', f'storagecontrollerbootable{n}="on"']  # fmt: skip  # noqa: E501  # noqa: E501
            for port in range(int(c["ports"])):
                for dev in range(2 if c["bus"] == "ide" else 1):
                    key = f"{ctl}-{port}-{dev}"
                    att = vm.get("attachments", {}).get(key)
                    if att is None:
                        lines.append(f'"{esc(key)}"="none"')
                        continue
                    lines.append(f'"{esc(key)}"="{esc(att["medium"])}"')
                    if att["type"] == "dvddrive":
                        lines.append(f'"{esc(ctl)}-IsEjected-{port}-{dev}"="off"')
                    else:
                        med = self.s["media"].get(att["medium"])
                        if med:
                            lines.append(f'"{esc(ctl)}-ImageUUID-{port}-{dev}"="{med["uuid"]}"')
                        if self.v7:
                            lines.append(f'"{esc(ctl)}-nonrotational-{port}-{dev}"="off"')
        for slot in range(1, 9):
            nic = vm.get("nics", {}).get(str(slot))
            if not nic or nic.get("mode", "none") == "none":
                lines.append(f'nic{slot}="none"')
                continue
            mode = nic["mode"]
            if mode == "nat":
                lines.append(f'natnet{slot}="nat"')
            lines.append(f'macaddress{slot}="{nic["mac"]}"')
            lines.append(f'cableconnected{slot}="{nic.get("cable", "on")}"')
            lines.append(f'nic{slot}="{mode}"')
            for opt in _NIC_NETWORK_KEYS:
                if opt in nic:
                    lines.append(f'{opt}{slot}="{esc(nic[opt])}"')
            lines.append(f'nictype{slot}="{nic.get("type", "82540EM")}"')
            lines.append(f'nicspeed{slot}="0"')
        lines.append(f'vrde="{vm.get("vrde", "off")}"')
        if vm.get("vrde") == "on":
            lines.append(f'vrdeports="{vm.get("vrdeports", "3389")}"')
            lines.append(f'vrdeaddress="{vm.get("vrdeaddress", "0.0.0.0")}"')
            lines.append(f'vrdeauthtype="{vm.get("vrdeauthtype", "null")}"')
            if vm["state"] in _TERMINAL_ONLINE:
                lines.append(f"vrdeport={5000 + list(self.s['vms']).index(vm['uuid'])}")
        if vm.get("description"):
            lines.append(f'description="{esc(vm["description"])}"')
        lines += self.snapshot_lines(vm)
        if vm["state"] in _TERMINAL_ONLINE and vm["guest"].get("additions", True):
            lines.append(f"GuestAdditionsRunLevel={self.additions_level(vm, poll=True)}")
            lines.append(f'GuestAdditionsVersion="{VERSIONS[self.profile].replace("r", " r")}"')
        return lines

    def snapshot_lines(self, vm: dict[str, Any]) -> list[str]:
        snaps = vm.get("snapshots", [])
        by_parent: dict[str | None, list[dict[str, Any]]] = {}
        for snap in snaps:
            by_parent.setdefault(snap["parent"], []).append(snap)
        lines: list[str] = []

        def emit(snap: dict[str, Any], suffix: str) -> None:
            # Names and descriptions are printed with %ls: NOT escaped.
            lines.append(f'SnapshotName{suffix}="{snap["name"]}"')
            lines.append(f'SnapshotUUID{suffix}="{snap["uuid"]}"')
            if snap.get("description"):
                lines.append(f'SnapshotDescription{suffix}="{snap["description"]}"')
            if snap["uuid"] == vm.get("current"):
                lines.append(f'CurrentSnapshotName="{snap["name"]}"')
                lines.append(f'CurrentSnapshotUUID="{snap["uuid"]}"')
                lines.append(f'CurrentSnapshotNode="SnapshotName{suffix}"')
            for i, child in enumerate(by_parent.get(snap["uuid"], []), 1):
                emit(child, f"{suffix}-{i}")

        for root in by_parent.get(None, []):
            emit(root, "")
        return lines

    def cmd_showvminfo(self, args: list[str]) -> None:
        opts, rest = self.opts(args, {"--machinereadable": False, "--details": False, "--log": True})
        if not rest:
            syntax("Missing VM name")
        vm = self.vm(rest[0])
        if "--machinereadable" not in opts:
            self.p(f"Name:            {vm['name']}")
            self.p(f"State:           {vm['state']}")
            return
        for line in self.showvminfo_lines(vm):
            self.p(line)

    def cmd_createvm(self, args: list[str]) -> None:
        known = {"--name": True, "--ostype": True, "--register": False, "--uuid": True, "--basefolder": True,
                 "--groups": True, "--default": False}  # fmt: skip
        if self.v7:
            known.update({"--cipher": True, "--password-id": True, "--password": True})
        if since(self.profile, "7.1"):
            known["--platform-architecture"] = True
        opts, _ = self.opts(args, known)
        name = opts.get("--name") or syntax("Missing --name")
        ostype = opts.get("--ostype", "Other")
        if ostype not in ostypes(self.profile):
            fail(f"Guest OS type '{ostype}' is invalid", "VBOX_E_OBJECT_NOT_FOUND")
        vm_uuid = (opts.get("--uuid") or str(uuidlib.uuid4())).lower()
        if vm_uuid in self.s["vms"]:
            fail(f"A machine with UUID {{{vm_uuid}}} is already registered", "VBOX_E_OBJECT_IN_USE")
        folder = Path(opts.get("--basefolder") or self.s["machine_folder"]) / name
        cfg = folder / f"{name}.vbox"
        if cfg.exists():
            fail(f"Machine settings file '{cfg}' already exists", "VBOX_E_FILE_ERROR",
                 '"CreateMachine(...)" at line 341 of file VBoxManageMisc.cpp')  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        cfg.write_text("<VirtualBox/>")
        self.s["vms"][vm_uuid] = {
            "uuid": vm_uuid, "name": name, "ostype": ostype, "cfg": str(cfg), "cpus": 1, "memory": 128,
            "state": "poweroff", "nics": {"1": {"mode": "nat", "mac": mac(), "type": "82540EM"}},
            "controllers": {}, "attachments": {}, "snapshots": [], "current": None, "extradata": {},
            "guest": {"additions": True, "acpi": True, "files": None, "props": {}},
        }  # fmt: skip
        self.p(f"Virtual machine '{name}' is created and registered.")
        self.p(f"UUID: {vm_uuid}")
        self.p(f"Settings file: '{cfg}'")

    def cmd_modifyvm(self, args: list[str]) -> None:
        if not args:
            syntax("Missing VM")
        vm = self.vm(args[0])
        known = {"--cpus": True, "--memory": True, "--cpuexecutioncap": True, "--description": True,
                 "--firmware": True, "--groups": True, "--ostype": True, "--vrde": True, "--vrdeport": True,
                 "--vrdeaddress": True, "--name": True, "--vrdeauthtype": True,
                 "--vrdeauthlibrary": True}  # fmt: skip
        for slot in range(1, 9):
            for opt in ("nic", "nictype", "macaddress", "cableconnected", "bridgeadapter", "hostonlyadapter",
                        "intnet", "nat-network"):  # fmt: skip
                known[f"--{opt}{slot}"] = True
        for i in range(1, 5):
            known[f"--boot{i}"] = True
        opts, _ = self.opts(args[1:], known)
        self.write_lock(vm)
        for key, val in opts.items():  # all checked first: modifyvm saves all or nothing
            self.require_mutable(vm, key, val)
        for key, val in opts.items():
            if key == "--cpus":
                vm["cpus"] = int(val)
            elif key == "--memory":
                vm["memory"] = int(val)
            elif key == "--cpuexecutioncap":
                if not 1 <= int(val) <= 100:
                    fail(f"Invalid CPU execution cap value: {val}", "E_INVALIDARG")
                vm["cap"] = int(val)
            elif key == "--description":
                vm["description"] = val
            elif key == "--firmware":
                vm["firmware"] = {"efi": "EFI", "bios": "BIOS"}[val]
            elif key == "--groups":
                vm["groups"] = val.split(",")
            elif key == "--vrde":
                vm["vrde"] = val
            elif key == "--vrdeport":
                vm["vrdeports"] = val
            elif key == "--vrdeaddress":
                vm["vrdeaddress"] = val
            elif key == "--vrdeauthtype":
                if val not in ("null", "external", "guest"):
                    fail(f"Invalid --vrdeauthtype argument '{val}'", "E_INVALIDARG")
                vm["vrdeauthtype"] = val
            elif key == "--vrdeauthlibrary":
                vm["vrdeauthlibrary"] = val
            elif key.startswith("--boot"):
                boot = vm.setdefault("boot", ["floppy", "dvd", "disk", "none"])
                boot[int(key[-1]) - 1] = val
            else:
                opt, slot = key[2:].rstrip("0123456789"), key[2:][len(key[2:].rstrip("0123456789")) :]
                nic = vm["nics"].setdefault(slot, {"mode": "none", "mac": mac(), "type": "82540EM"})
                if opt == "nic":
                    if val == "none":
                        vm["nics"][slot] = {"mode": "none", "mac": nic["mac"]}
                        continue
                    attach(nic, val)
                elif opt == "nictype":
                    nic["type"] = val
                elif opt == "macaddress":
                    nic["mac"] = val.upper()
                elif opt == "cableconnected":
                    nic["cable"] = val
                elif opt == "hostonlyadapter" and val not in self.s.get("hostonlyifs", {"vboxnet0": ""}):
                    fail(f"Could not find a host-only network interface named '{val}'", "E_INVALIDARG")
                else:
                    nic[opt] = val

    def cmd_storagectl(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        opts, _ = self.opts(args[1:], {"--name": True, "--add": True, "--controller": True, "--portcount": True,
                                       "--bootable": True, "--remove": False})  # fmt: skip
        self.write_lock(vm)
        name = opts["--name"]
        if "--remove" in opts:
            vm["controllers"].pop(name, None)
            return
        if name in vm["controllers"]:
            fail(f"Storage controller named '{name}' already exists", "VBOX_E_OBJECT_IN_USE")
        bus = opts.get("--add", "sata")
        vm["controllers"][name] = {"bus": bus, "type": opts.get("--controller", "IntelAhci"),
                                   "ports": int(opts.get("--portcount", "2" if bus == "ide" else "1"))}  # fmt: skip

    def cmd_storageattach(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        opts, _ = self.opts(args[1:], {"--storagectl": True, "--port": True, "--device": True, "--type": True,
                                       "--medium": True, "--mtype": True})  # fmt: skip
        self.write_lock(vm)
        ctl = vm["controllers"].get(opts["--storagectl"])
        if ctl is None:
            fail(f"Could not find a controller named '{opts['--storagectl']}'", "VBOX_E_OBJECT_NOT_FOUND")
        port = int(opts.get("--port", "0"))
        if port >= ctl["ports"]:
            ctl["ports"] = port + 1
        key = f"{opts['--storagectl']}-{port}-{opts.get('--device', '0')}"
        medium = opts.get("--medium", "none")
        if medium == "none":
            vm["attachments"].pop(key, None)
            return
        kind = opts.get("--type", "hdd")
        if kind == "hdd":
            if medium not in self.s["media"]:
                med = self.find_medium(medium)
                if med is None:
                    if not Path(medium).exists():
                        fail(f"Could not find file for the medium '{medium}' (VERR_FILE_NOT_FOUND)",
                             "VBOX_E_FILE_ERROR")  # fmt: skip
                    self.s["media"][medium] = {"uuid": str(uuidlib.uuid4()), "path": medium, "size": 1}
                else:
                    medium = med["path"]
            for other in self.s["vms"].values():
                for att in other["attachments"].values():
                    if att["medium"] == medium and other is not vm:
                        fail(f"Medium '{medium}' is already attached to machine '{other['name']}'",
                             "VBOX_E_OBJECT_IN_USE")  # fmt: skip
        vm["attachments"][key] = {"type": kind, "medium": medium}

    def medium_users(self, med: dict[str, Any]) -> list[dict[str, Any]]:
        """The VMs a medium is attached to (``IMedium.machineIds``)."""
        return [vm for vm in self.s["vms"].values()
                if any(a["medium"] == med["path"] for a in vm["attachments"].values())]  # fmt: skip

    def find_medium(self, ref: str) -> dict[str, Any] | None:
        for med in self.s["media"].values():
            if ref in (med["uuid"], med["path"]):
                return med  # type: ignore[no-any-return]
        return None

    def cmd_createmedium(self, args: list[str]) -> None:
        opts, _rest = self.opts(args, {"--filename": True, "--size": True, "--format": True, "--variant": True,
                                      "--diffparent": True})  # fmt: skip
        path = opts["--filename"]
        if Path(path).exists() or path in self.s["media"]:
            raise Fail(["Failed to create medium", f"Could not create the medium storage unit '{path}'.",
                        f"VDI: cannot create image '{path}' (VERR_ALREADY_EXISTS)"], "VBOX_E_FILE_ERROR")  # fmt: skip
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"<<< Oracle VM VirtualBox Disk Image >>>\n")
        med_uuid = str(uuidlib.uuid4())
        self.s["media"][path] = {"uuid": med_uuid, "path": path, "size": int(opts.get("--size", "1"))}
        self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
        self.p(f"Medium created. UUID: {med_uuid}")

    def cmd_closemedium(self, args: list[str]) -> None:
        opts, rest = self.opts(args, {"--delete": False})
        ref = rest[-1]
        med = self.find_medium(ref)
        if med is None:
            fail(f"Could not find file for the medium '{ref}' (VERR_FILE_NOT_FOUND)", "VBOX_E_FILE_ERROR")
        users = [vm for vm in self.s["vms"].values() if any(a["medium"] == med["path"]
                                                              for a in vm["attachments"].values())]  # fmt: skip
        if users:
            fail(f"Medium '{med['path']}' cannot be closed because it is still attached to {len(users)} virtual "
                 "machines", "VBOX_E_OBJECT_IN_USE")  # fmt: skip
        self.refuse_if_parent(med)
        self.s["media"].pop(med["path"])
        if "--delete" in opts:
            Path(med["path"]).unlink(missing_ok=True)

    def refuse_multi_merge(self, snap: dict[str, Any]) -> None:
        """Deleting a snapshot merges its disk with the one child the VM's current state uses; a linked clone
        made from the snapshot is a second child, and VirtualBox does not multi-merge (E_FAIL)."""
        clones = [m for m in self.s["media"].values() if m.get("snapshot") == snap["uuid"]]
        if clones:
            base = next((m["path"] for m in self.s["media"].values() if m["uuid"] == clones[0]["parent"]), "?")
            fail(f"Hard disk '{base}' has more than one child hard disk ({len(clones) + 1})", "E_FAIL")

    def refuse_if_parent(self, med: dict[str, Any], *before: str) -> None:
        """``Medium::i_canClose``: a medium with differencing children can be neither closed nor deleted."""
        children = [m for m in self.s["media"].values() if m.get("parent") == med["uuid"]]
        if children:
            raise Fail([*before, f"Cannot close medium '{med['path']}' because it has {len(children)} child media"],
                       "VBOX_E_OBJECT_IN_USE")  # fmt: skip

    def cmd_modifymedium(self, args: list[str]) -> None:
        opts, rest = self.opts(args, {"--resize": True, "--compact": False})
        med = self.find_medium(rest[-1])
        if med is None:
            fail(f"Could not find file for the medium '{rest[-1]}' (VERR_FILE_NOT_FOUND)", "VBOX_E_FILE_ERROR")
        if "--resize" in opts:
            size = int(opts["--resize"])
            if size < med["size"]:
                fail(f"Shrinking is not yet supported for medium '{med['path']}'", "VBOX_E_NOT_SUPPORTED")
            med["size"] = size

    def cmd_unregistervm(self, args: list[str]) -> None:
        opts, rest = self.opts(args, {"--delete": False, "--delete-all": False})
        vm = self.vm(rest[0])
        if self.online(vm):
            fail(f"Cannot unregister the machine '{vm['name']}' while it is locked", "VBOX_E_INVALID_OBJECT_STATE")
        self.s["vms"].pop(vm["uuid"])  # Unregister comes first: a failure below leaves the VM half-deleted
        if opts:
            self.p("0%...")
            for att in vm["attachments"].values():
                med = self.s["media"].get(att["medium"])
                if med:
                    self.refuse_if_parent(med, "Machine delete failed")
                    self.s["media"].pop(med["path"])
                    Path(med["path"]).unlink(missing_ok=True)
            for snap in vm["snapshots"]:
                for path in snap.get("diffs", []):
                    self.s["media"].pop(path, None)
            Path(vm["cfg"]).unlink(missing_ok=True)
            self.p("10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")

    def cmd_startvm(self, args: list[str]) -> None:
        _opts, rest = self.opts(args, {"--type": True, "--putenv": True})
        for ref in rest:
            vm = self.vm(ref)
            if self.online(vm) or vm["state"] not in ("poweroff", "aborted", "saved", "aborted-saved", "teleported"):
                fail(f"The machine '{vm['name']}' is already locked by a session (or being locked or unlocked)",
                     "VBOX_E_INVALID_OBJECT_STATE")  # fmt: skip
            if vm["state"] == "aborted-saved" and not self.v7:
                fail("Invalid machine state: aborted-saved")
            self.p(f'Waiting for VM "{vm["name"]}" to power on...')
            if vm["state"] != "saved":  # a restore resumes the running guest: no boot
                boot(vm)
            vm["state"] = "running"
            self.p(f'VM "{vm["name"]}" has been successfully started.')

    def cmd_controlvm(self, args: list[str]) -> None:
        if len(args) < 2:
            syntax("Not enough parameters")
        vm = self.vm(args[0])
        action = args[1]
        state = vm["state"]
        if state not in _TERMINAL_ONLINE:
            self.not_running(args[0])
        if action.startswith(("setlinkstate", "nic")) and not action.startswith(("nictrace", "nicprop", "nicpromisc")):
            self.controlvm_nic(vm, action, args[2:])
        elif action == "pause":
            if state != "running":
                fail(f"Invalid machine state: {state_api(state)}", "VBOX_E_INVALID_VM_STATE")
            vm["state"] = "paused"
        elif action == "resume":
            if state != "paused":
                fail(f"Invalid machine state: {state_api(state)} (must be Paused)", "VBOX_E_INVALID_VM_STATE")
            vm["state"] = "running"
        elif action == "reset":
            if state != "running":
                fail(f"Invalid machine state: {state_api(state)}", "VBOX_E_INVALID_VM_STATE")
            boot(vm)
        elif action == "poweroff":
            self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
            vm["state"] = "poweroff"
            vm.pop("pending", None)
        elif action == "savestate":
            if state not in ("running", "paused"):
                fail(f"Invalid machine state: {state_api(state)}", "VBOX_E_INVALID_VM_STATE")
            self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
            vm["state"] = "saved"
        elif action == "acpipowerbutton":
            if state != "running":
                fail(f"Invalid machine state: {state_api(state)}", "VBOX_E_INVALID_VM_STATE")
            if vm["guest"].get("acpi", True):
                vm["pending"] = ["poweroff", self.now + float(self.s.get("acpi_delay", 0.0))]
        elif action == "cpuexecutioncap":
            vm["cap"] = int(args[2])
        else:
            usage_error(f"Invalid parameter '{action}'.")

    def controlvm_nic(self, vm: dict[str, Any], action: str, rest: list[str]) -> None:
        """``nic<N> <type> [<name>]`` / ``setlinkstate<N> on|off`` on a running VM (VBoxManageControlVM.cpp)."""
        prefix = "setlinkstate" if action.startswith("setlinkstate") else "nic"
        slot = action[len(prefix) :]
        if not (slot.isdigit() and 1 <= int(slot) <= 8):
            fail(f"Invalid NIC number '{slot}'.")
        if not rest:
            usage_error(f"Missing argument to '{action}'.")
        nic = vm["nics"].setdefault(slot, {"mode": "none", "mac": mac(), "type": "82540EM"})
        if prefix == "setlinkstate":
            if rest[0] not in _BOOLS:
                usage_error(f"Invalid link state '{rest[0]}'.")
            nic["cable"] = "on" if _BOOLS[rest[0]] else "off"
            return
        if nic.get("mode", "none") == "none":  # RTMsgError only: VBoxManage still exits 0
            self.err.append(f"VBoxManage: error: The NIC {slot} is currently disabled and thus its attachment "
                            "type can't be changed.")  # fmt: skip
            return
        kind = "bridged" if rest[0] == "hostif" else rest[0]  # "hostif": the old name of bridged
        if kind not in _CONTROLVM_NIC_TYPES:
            usage_error(f"Invalid type '{rest[0]}' specfied for NIC {slot}.")  # sic: VirtualBox's spelling
        key = _CONTROLVM_NIC_TYPES[kind]
        if key and len(rest) < 2:
            usage_error(f"Missing argument to '{rest[0]}'.")
        if kind in ("bridged", "hostonly"):
            self.warn_host_interface(rest[1], kind)
        # "nat <name>" sets the (unused) NAT network name of a NAT attachment; showvminfo does not show it.
        attach(nic, kind, key, rest[1] if key else "")

    def warn_host_interface(self, name: str, kind: str) -> None:
        """``verifyHostNetworkInterfaceName``: a warning, not an error, for an unknown or other-type interface."""
        hostonly = set(self.s.get("hostonlyifs", {"vboxnet0": ""}))
        kinds = {**{n: "host-only" for n in hostonly}, "eth0": "bridged"}
        wanted = "host-only" if kind == "hostonly" else "bridged"
        if name not in kinds:
            self.err.append(f'VBoxManage: warning: Interface "{name}" doesn\'t seem to exist')
        elif kinds[name] != wanted:
            self.err.append(f'VBoxManage: warning: Interface "{name}" is of type {kinds[name]}')

    def cmd_discardstate(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        if vm["state"] not in ("saved", "aborted-saved"):
            fail(f"Machine '{vm['name']}' is not in the saved state", "VBOX_E_INVALID_VM_STATE")
        vm["state"] = "poweroff"

    def cmd_snapshot(self, args: list[str]) -> int:
        vm = self.vm(args[0])
        action = args[1] if len(args) > 1 else syntax("Missing snapshot action")
        snaps: list[dict[str, Any]] = vm["snapshots"]

        def find(ref: str) -> dict[str, Any]:
            for snap in snaps:
                if ref.lower() == snap["uuid"] or ref == snap["name"]:
                    return snap
            fail(f"Could not find a snapshot named '{ref}'", "VBOX_E_OBJECT_NOT_FOUND")

        if action == "take":
            opts, _rest = self.opts(args[3:], {"--description": True, "--live": False, "--uniquename": True})
            if vm.get("locked"):
                self.write_lock(vm)
            snap_uuid = str(uuidlib.uuid4())
            online = vm["state"] in _TERMINAL_ONLINE
            config = {k: vm.get(k) for k in ("cpus", "memory", "description", "cap", "firmware")}
            snaps.append({"uuid": snap_uuid, "name": args[2], "description": opts.get("--description", ""),
                          "parent": vm.get("current"), "online": online, "config": config,
                          "state": vm["state"]})  # fmt: skip
            vm["current"] = snap_uuid
            self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
            self.p(f"Snapshot taken. UUID: {snap_uuid}")
        elif action == "restore":
            snap = find(args[2])
            if vm["state"] in _TERMINAL_ONLINE or vm.get("locked"):
                fail(f"Cannot delete the current state of the running machine (machine state: "
                     f"{state_api(vm['state'])})", "VBOX_E_INVALID_VM_STATE")  # fmt: skip
            for key, value in snap["config"].items():
                if value is None:
                    vm.pop(key, None)
                else:
                    vm[key] = value
            vm["state"] = "saved" if snap["online"] else "poweroff"
            vm["current"] = snap["uuid"]
            self.p(f"Restoring snapshot '{snap['name']}' ({snap['uuid']})")
            self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
        elif action == "delete":
            snap = find(args[2])
            children = [s for s in snaps if s["parent"] == snap["uuid"]]
            if len(children) > 1:
                fail(f"Snapshot '{snap['name']}' of the machine '{vm['name']}' has more than one child snapshot "
                     f"({len(children)})", "VBOX_E_INVALID_OBJECT_STATE")  # fmt: skip
            self.refuse_multi_merge(snap)
            for child in children:
                child["parent"] = snap["parent"]
            if vm.get("current") == snap["uuid"]:
                vm["current"] = snap["parent"]
            snaps.remove(snap)
            self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
        elif action == "list":
            opts, _ = self.opts(args[2:], {"--machinereadable": False, "--details": False})
            if not snaps:
                self.p("This machine does not have any snapshots")
                return 1
            for line in self.snapshot_lines(vm):
                self.p(line)
        else:
            syntax(f"Invalid parameter '{action}'")
        return 0

    def cmd_clonevm(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        opts, _ = self.opts(args[1:], {"--name": True, "--register": False, "--uuid": True, "--mode": True,
                                       "--snapshot": True, "--options": True, "--basefolder": True,
                                       "--groups": True})  # fmt: skip
        linked = "link" in opts.get("--options", "").lower().split(",")
        snap = None
        if "--snapshot" in opts:
            snap = next((s for s in vm["snapshots"] if opts["--snapshot"].lower() in (s["uuid"], s["name"])), None)
            if snap is None:
                fail(f"Could not find a snapshot named '{opts['--snapshot']}'", "VBOX_E_OBJECT_NOT_FOUND")
        if linked and snap is None:
            fail("Linked clone can only be created from a snapshot", "E_INVALIDARG")
        name = opts["--name"]
        new_uuid = (opts.get("--uuid") or str(uuidlib.uuid4())).lower()
        folder = Path(self.s["machine_folder"]) / name
        cfg = folder / f"{name}.vbox"
        if cfg.exists():
            fail(f"Machine settings file '{cfg}' already exists", "VBOX_E_FILE_ERROR")
        folder.mkdir(parents=True, exist_ok=True)
        cfg.write_text("<VirtualBox/>")
        clone = json.loads(json.dumps(vm))
        if snap is not None:
            clone.update(snap["config"])
        clone.update(uuid=new_uuid, name=name, cfg=str(cfg), state="poweroff", snapshots=[], current=None,
                     extradata={})  # fmt: skip
        clone.pop("pending", None)
        clone.pop("locked", None)
        clone["guest"]["boots"] = 0
        for nic in clone["nics"].values():
            nic["mac"] = mac()
        for _key, att in list(clone["attachments"].items()):
            if att["type"] != "hdd":
                continue
            src = self.s["media"][att["medium"]]
            path = str(folder / f"{name}-{Path(att['medium']).stem.split('-')[-1]}.vdi")
            Path(path).write_bytes(b"<<< clone >>>\n")
            med = {"uuid": str(uuidlib.uuid4()), "path": path, "size": src["size"]}
            if linked:
                med["parent"] = src["uuid"]
                med["snapshot"] = snap["uuid"] if snap else None  # the snapshot whose disk state it grows from
            self.s["media"][path] = med
            att["medium"] = path
        self.s["vms"][new_uuid] = clone
        self.p("0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%")
        self.p(f'Machine has been successfully cloned as "{name}"')

    def cmd_setextradata(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        if len(args) > 2:
            vm["extradata"][args[1]] = args[2]
        else:
            vm["extradata"].pop(args[1], None)

    def cmd_getextradata(self, args: list[str]) -> None:
        vm = self.vm(args[0])
        if args[1] == "enumerate":
            for key, value in vm["extradata"].items():
                self.p(f"Key: {key}, Value: {value}")
        elif args[1] in vm["extradata"]:
            self.p(f"Value: {vm['extradata'][args[1]]}")
        else:
            self.p("No value set!")

    def additions_level(self, vm: dict[str, Any], *, poll: bool = False) -> int:
        """The Additions run level: System for a few *poll*s (showvminfo reads) after a boot, then Userland."""
        guest = vm["guest"]
        if "runlevel" in guest:
            return int(guest["runlevel"])
        polls = guest.get("polls")
        if polls is None:
            return USERLAND  # not booted by this fake (a test set the state): already up
        if poll and vm["state"] == "running":
            guest["polls"] = polls + 1
        return SYSTEM if polls < int(self.s.get("system_polls", SYSTEM_POLLS)) else USERLAND

    def guest_props(self, vm: dict[str, Any]) -> dict[str, str]:
        if not self.additions_up(vm):
            return {}
        version, revision = VERSIONS[self.profile].split("r")
        props = {
            "/VirtualBox/HostInfo/VBoxVer": version,
            "/VirtualBox/HostInfo/VBoxRev": revision,
            "/VirtualBox/GuestAdd/Version": version,
            "/VirtualBox/GuestAdd/Revision": revision,
            "/VirtualBox/GuestInfo/OS/LoggedInUsers": "0",
            "/VirtualBox/GuestInfo/OS/Product": "Linux",
            "/VirtualBox/GuestInfo/OS/Release": "6.1.0-18-amd64",
            "/VirtualBox/GuestInfo/OS/Version": "#1 SMP Debian 6.1.76-1",
        }
        nics = [n for _, n in sorted(vm["nics"].items()) if n.get("mode", "none") != "none"]
        props["/VirtualBox/GuestInfo/Net/Count"] = str(len(nics))
        for i, nic in enumerate(nics):
            props[f"/VirtualBox/GuestInfo/Net/{i}/V4/IP"] = f"10.0.{2 + i}.15"
            props[f"/VirtualBox/GuestInfo/Net/{i}/V4/Netmask"] = "255.255.255.0"
            props[f"/VirtualBox/GuestInfo/Net/{i}/MAC"] = nic["mac"]
            props[f"/VirtualBox/GuestInfo/Net/{i}/Status"] = "Up"
        props.update(vm["guest"].get("props", {}))
        return props

    def additions_up(self, vm: dict[str, Any]) -> bool:
        """VBoxService runs: guest properties are published and guest control answers (Userland)."""
        running = vm["state"] in _TERMINAL_ONLINE and vm["guest"].get("additions", True)
        return bool(running) and self.additions_level(vm) >= USERLAND

    def cmd_guestproperty(self, args: list[str]) -> None:
        action, vm = args[0], self.vm(args[1])
        props = self.guest_props(vm)
        if action == "enumerate":
            if self.v7:
                for line in enumerate_lines_7(props):
                    self.p(line)
            else:
                for key, value in props.items():
                    self.p(f"Name: {key}, value: {value}, timestamp: 1714557600000000000, flags: {prop_flags(key)}")
        elif action == "get":
            self.p(f"Value: {props[args[2]]}" if args[2] in props else "No value set!")
        elif action == "set":
            vm["guest"].setdefault("props", {})[args[2]] = args[3] if len(args) > 3 else ""
        else:
            syntax(f"Invalid parameter '{action}'")

    def cmd_guestcontrol(self, args: list[str]) -> int:
        vm = self.vm(args[0])
        action = args[1]
        known = {"--username": True, "--passwordfile": True, "--password": True, "--domain": True, "--exe": True,
                 "--timeout": True, "--wait-stdout": False, "--wait-stderr": False, "--putenv": True,
                 "--unquoted-args": False, "--ignore-orphaned-processes": False, "--profile": False,
                 "--target-directory": True, "--follow": False, "--recursive": False, "--verbose": False,
                 "--quiet": False, "-E": True}  # fmt: skip
        tail: list[str] = []
        if "--" in args:
            idx = args.index("--")
            args, tail = args[:idx], args[idx + 1 :]
        envs = [args[i + 1] for i, a in enumerate(args) if a == "--putenv"]
        opts, rest = self.opts(args[2:], known)
        if not self.additions_up(vm):
            fail("Guest Additions are not installed or not running in the guest", "VBOX_E_IPRT_ERROR")
        if "--username" not in opts:
            syntax("No user name specified!")
        password = ""
        if "--passwordfile" in opts:
            pw_path = Path(opts["--passwordfile"])
            mode = pw_path.stat().st_mode & 0o777
            if mode & 0o077:
                self.s["violations"].append(f"password file mode {oct(mode)}")
            password = pw_path.read_text().splitlines()[0] if pw_path.read_text() else ""
        expected = self.s.get("guest_password")
        if expected is not None and (opts["--username"] != self.s.get("guest_username") or password != expected):
            fail("The specified user was not able to logon on guest", "VBOX_E_IPRT_ERROR")
        fs = guest_fs(vm)
        if action == "run":
            argv = tail or rest
            if not argv:
                syntax("No program to run specified")
            name = os.path.basename(argv[0])
            if name in ("shutdown", "reboot", "shutdown.exe"):
                boot(vm)
                return 0
            timeout = int(opts.get("--timeout", "0")) / 1000.0 or 3600.0
            code, out, err = run_in_guest(vm, fs, argv, envs, timeout)
            save_fs(vm, fs)
            if code is None:
                fail(f"Waiting for guest process failed: VERR_TIMEOUT (after {timeout:g}s)", "VBOX_E_IPRT_ERROR")
            self.raw_out, self.raw_err = out, err
            return code
        if action == "copyto":
            src, dst = rest[0], rest[-1] if len(rest) > 1 else opts["--target-directory"]
            data = Path(src).read_bytes()
            if fs.is_dir(dst):
                dst = dst.rstrip("/") + "/" + os.path.basename(src)
            if not fs.is_dir(fs.parent(fs.key(dst))):
                fail(f'Copying "{src}" to "{dst}" failed: VERR_PATH_NOT_FOUND', "VBOX_E_IPRT_ERROR")
            fs.write(dst, data)
            save_fs(vm, fs)
            return 0
        if action == "copyfrom":
            src, dst = rest[0], rest[-1]
            if not fs.is_file(src):
                fail(f'Querying guest file information for "{src}" failed: VERR_FILE_NOT_FOUND', "VBOX_E_IPRT_ERROR")
            Path(dst).write_bytes(fs.read(src))
            return 0
        syntax(f"Invalid sub-command '{action}'")


_BOOLS = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}
_CONTROLVM_NIC_TYPES: dict[str, str | None] = {
    # controlvm nic<N> type -> the showvminfo key of the name it takes (None: takes none)
    "null": None,
    "nat": None,
    "bridged": "bridgeadapter",
    "hostonly": "hostonlyadapter",
    "intnet": "intnet",
    "natnetwork": "nat-network",
    "generic": "genericdrv",
}


def attach(nic: dict[str, Any], mode: str, key: str | None = None, name: str = "") -> None:
    """Attach *nic* as *mode* (to *name*, kept under *key*): showvminfo then shows that attachment's name only."""
    nic["mode"] = mode
    for stale in _NIC_NETWORK_KEYS:
        nic.pop(stale, None)
    if key:
        nic[key] = name


def boot(vm: dict[str, Any]) -> None:
    """The guest (re)boots: the Additions start over at System (see :meth:`Fake.additions_level`)."""
    vm["guest"]["boots"] = vm["guest"].get("boots", 0) + 1
    vm["guest"]["polls"] = 0


def state_api(cli: str) -> str:
    return {"poweroff": "PoweredOff", "running": "Running", "paused": "Paused", "saved": "Saved",
            "aborted": "Aborted", "aborted-saved": "AbortedSaved"}.get(cli, cli)  # fmt: skip


def prop_flags(name: str) -> str:
    """A guest property's flags as ``GuestPropWriteFlags`` spells them (``"TRANSIENT, RDONLYGUEST"``).

    The VM process sets ``/VirtualBox/HostInfo/*`` read-only for the guest; VBoxService writes
    the ``/VirtualBox/GuestInfo/`` tree TRANSRESET (which implies TRANSIENT). Which property
    carries which flags is a guess; that some do, and how they are printed, is not.
    """
    if name.startswith("/VirtualBox/HostInfo/"):
        return "TRANSIENT, RDONLYGUEST"
    if name.startswith(("/VirtualBox/GuestInfo/Net/", "/VirtualBox/GuestInfo/OS/LoggedInUsers")):
        return "TRANSIENT, TRANSRESET"
    return ""


def enumerate_lines_7(props: dict[str, str]) -> list[str]:
    """``guestproperty enumerate`` of 7.x: ``handleEnumGuestProperty`` in VBoxManageGuestProp.cpp.

    Sorted by name; ``%-*ls = '%ls'`` with the name column as wide as the longest name (at
    most 48), padding to name + value (at most 28) + 6 columns (at least one space), then
    ``@ <RTTimeToStringEx, 3 fraction digits>`` and, when set, one space and the bare flags.
    """
    names = sorted(props)
    name_width = min(max((len(n) for n in names), default=1), 48)
    value_width = min(max((len(props[n]) for n in names), default=1), 28)
    lines = []
    for name in names:
        line = f"{name:<{name_width}} = '{props[name]}'"
        width = name_width + value_width + 6
        line += " " * (width - len(line) if len(line) < width else 1) + "@ 2024-05-01T10:00:00.000Z"
        flags = prop_flags(name)
        lines.append(f"{line} {flags}" if flags else line)
    return lines


def mac() -> str:
    return "080027" + uuidlib.uuid4().hex[:6].upper()


def ostypes(profile: str) -> dict[str, str]:
    from virtabstract import all_guest_oses

    ids: dict[str, str] = {"Other": "Other/Unknown", "Other_64": "Other/Unknown (64-bit)"}
    for entry in all_guest_oses():
        ids[entry.virtualbox_fallback] = entry.name + " (fallback)"
        if since(profile, "7.0") and (since(profile, "7.1") or entry.virtualbox != "Windows2025_64"):
            ids[entry.virtualbox] = entry.name
    return ids


def guest_fs(vm: dict[str, Any]) -> Any:
    from virtabstract import OSFamily
    from virtabstract.backends.mock._guest import GuestFS, default_filesystem

    if vm["guest"].get("files") is None:
        files, dirs = default_filesystem(OSFamily.LINUX, vm["name"], "Debian GNU/Linux 12", "debian-12", "12")
        vm["guest"]["files"], vm["guest"]["dirs"] = files, dirs
    return GuestFS(vm["guest"]["files"], vm["guest"]["dirs"], windows=False)


def save_fs(vm: dict[str, Any], fs: Any) -> None:
    from virtabstract.backends.mock._guest import apply_journal

    apply_journal(vm["guest"], fs.journal)


def run_in_guest(
    vm: dict[str, Any], fs: Any, argv: list[str], envs: list[str], timeout: float
) -> tuple[int | None, str, str]:
    from virtabstract import OSFamily
    from virtabstract._wait import ManualClock
    from virtabstract.backends.mock._guest import GuestCommand, builtin_programs, run_program
    from virtabstract.errors import OperationTimeout

    env = {"PATH": "/usr/bin:/bin", "HOME": "/root"}
    env.update(e.split("=", 1) for e in envs if "=" in e)  # type: ignore[arg-type]
    cmd = GuestCommand(argv=list(argv), stdin=b"", env=env, files=fs, vm_id=vm["uuid"], vm_name=vm["name"],
                       hostname=vm["name"], os_family=OSFamily.LINUX, kernel="6.1.0-18-amd64",
                       clock=ManualClock(), timeout=timeout, programs=builtin_programs())  # fmt: skip
    try:
        result = run_program(cmd)
    except OperationTimeout:
        return None, "", ""
    return result.exit_code, result.stdout, result.stderr


def execute(state_path: str, argv: list[str]) -> tuple[int, str, str]:
    """Run one ``VBoxManage *argv`` against the JSON state at *state_path*: ``(exit status, stdout, stderr)``.

    This is the whole fake; the script entry point and :class:`InProcessRunner` only
    differ in how the streams reach the caller. Raises :class:`Hang` for a hung command.
    """
    with open(state_path + ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = json.loads(Path(state_path).read_text() or "{}")
        fake = Fake(state)
        try:
            rc = fake.run(argv)
        except Fail as exc:
            rc = exc.rc
            for line in exc.lines:
                fake.err.append(f"VBoxManage: error: {line}")
            if exc.code:
                fake.err.append(
                    f"VBoxManage: error: Details: code {exc.code} ({CODES.get(exc.code, '0x80004005')}), "
                    "component MachineWrap, interface IMachine, callee nsISupports"
                )
            if exc.context or exc.code:
                context = exc.context or '"Call()" at line 1 of file fake.cpp'
                fake.err.append(f"VBoxManage: error: Context: {context}")
            if exc.usage:
                fake.err.append("Usage: VBoxManage <command> [options]  (see VBoxManage --help)")
        tmp = state_path + ".tmp"
        Path(tmp).write_text(json.dumps(state))
        os.replace(tmp, state_path)
    out = fake.raw_out + ("\n".join(fake.out) + "\n" if fake.out else "")
    err = fake.raw_err + ("\n".join(fake.err) + "\n" if fake.err else "")
    return rc, out, err


class InProcessRunner:
    """The fake as a ``vboxmanage_runner`` (the transport's test seam): no child process per call.

    Same argv (the executable first, then the arguments), same exit status and
    streams, same JSON state file as the script; a hung command raises
    :class:`subprocess.TimeoutExpired` at once instead of sleeping.
    """

    def __init__(self, state_path: str | os.PathLike[str]) -> None:
        self.state_path = str(state_path)
        self.calls: list[list[str]] = []

    def __call__(self, argv: Any, timeout: float) -> tuple[int, str, str]:
        """Run ``argv[1:]`` against the state file."""
        args = list(argv)[1:]
        self.calls.append(args)
        try:
            return execute(self.state_path, args)
        except Hang as exc:
            raise subprocess.TimeoutExpired(list(argv), timeout) from exc


def main() -> int:
    """The script entry point: ``VBOX_FAKE_STATE=state.json fake_vboxmanage.py <VBoxManage arguments>``."""
    state_path = os.environ.get("VBOX_FAKE_STATE")
    if not state_path:
        sys.stderr.write("VBoxManage: error: VBOX_FAKE_STATE is not set (fake VBoxManage)\n")
        return 1
    try:
        rc, out, err = execute(state_path, sys.argv[1:])
    except Hang:
        time.sleep(3600)
        return 1
    sys.stdout.write(out)
    sys.stderr.write(err)
    return rc


if __name__ == "__main__":
    sys.exit(main())
