"""The VirtualBox backend on the API transport (``vbox:///session?transport=api``).

:class:`VBoxApiBackend` is what ``VBoxBackend(...)`` constructs when the API transport
is selected (``transport=api``, or ``auto`` with an importable ``vboxapi``). It talks to
the Main API through :class:`~virtabstract_vbox._api.VBoxApi` (version shim, lock
discipline, progress waits, error mapping) and follows the mutable-copy model: a
registered ``IMachine`` is read-only; changes go through ``session.machine`` and
``saveSettings()`` under a session lock.

Implemented: host, inventory, create (CPUs, memory, description, tags, BIOS or UEFI
firmware, disks on any bus, NICs on the default NAT, NAT networks, host-only, bridged and
internal networks) and delete/unregister, power (headless start, ACPI shutdown, power
off -- an AbortedSaved VM has its saved state discarded --, reset, pause/resume, save
state), cold reconfigure of CPUs, memory, description and tags, snapshots (tree, take
live/offline, restore, delete; ``ISnapshot.online`` says whether one has memory), and,
in :class:`~virtabstract_vbox._api_machine.ApiMachineMixin`, full and linked clones,
disk and NIC changes, the CPU limit and the network list, and, in
:class:`~virtabstract_vbox._api_guest.ApiGuestMixin`, the console (VRDE, set up at create
as on VBoxManage), Guest Additions (guest info and IP addresses from the guest properties,
exec, file read/write through guest sessions) and reboot (the guest's reboot command;
declared with guest credentials). The API transport now declares the VBoxManage transport's capabilities.
"""

from __future__ import annotations

import logging
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from virtabstract import (
    URL,
    Backend,
    Capability,
    Credentials,
    Disk,
    DiskInfo,
    Firmware,
    HostInfo,
    Nic,
    OSFamily,
    PowerState,
    ReconfigureChange,
    SnapshotInfo,
    StorageInfo,
    VMInfo,
    VMSpec,
    check_transition,
    guest_os_from_native,
    snapshot_deletion_order,
)
from virtabstract.errors import (
    BackendError,
    BackendUnavailable,
    InvalidState,
    SnapshotNotFound,
    SpecError,
    VMNotFound,
)

from ._api import LOCK_SHARED, LOCK_WRITE, VBoxApi, import_vboxapi
from ._api_guest import ApiGuestMixin
from ._api_machine import ApiMachineMixin
from ._backend import _UUID_RE, MAX_NICS, VBoxBackend, local_session_timeout
from ._parse import VBoxVersion
from ._states import is_online, power_state
from ._versions import check_version

__all__ = ["VBoxApiBackend"]

log = logging.getLogger("virtabstract.vbox")

_C = Capability
_BUS_NAMES = {1: "ide", 2: "sata", 3: "scsi", 7: "nvme", 8: "virtio"}
_HARD_DISK = 3


_MACHINE_CAPABILITIES = frozenset({
    _C.CLONE, _C.LINKED_CLONE, _C.DISKS, _C.DISK_RESIZE, _C.NICS, _C.RESOURCES,
})  # fmt: skip
"""What :class:`~virtabstract_vbox._api_machine.ApiMachineMixin` adds (the VBoxManage transport's set for these)."""

_GUEST_CAPABILITIES = frozenset({
    _C.CONSOLE, _C.GUEST_INFO, _C.GUEST_EXEC, _C.GUEST_FILES, _C.GUEST_NETWORK,
})  # fmt: skip
"""What :class:`~virtabstract_vbox._api_guest.ApiGuestMixin` adds (REBOOT: with guest credentials, as on VBoxManage)."""


class VBoxApiBackend(ApiMachineMixin, ApiGuestMixin, VBoxBackend):
    """VirtualBox through the Main API (vboxapi). See the module docstring for what is implemented."""

    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        _C.CREATE, _C.DELETE, _C.UNREGISTER, _C.START, _C.SHUTDOWN, _C.POWER_OFF, _C.RESET, _C.PAUSE,
        _C.SUSPEND, _C.RECONFIGURE, _C.SNAPSHOTS, _C.SNAPSHOT_MEMORY, _C.NETWORKS, _C.STORAGE,
    }) | _MACHINE_CAPABILITIES | _GUEST_CAPABILITIES  # fmt: skip

    def __init__(self, url: URL, credentials: Credentials, options: Mapping[str, Any]) -> None:
        Backend.__init__(self, url, credentials, options)
        self._timeout = local_session_timeout(url, self.options)
        self.transport = "api"
        self._api: VBoxApi | None = None
        self.version = VBoxVersion(0, 0, 0)

    # -- connection -----------------------------------------------------------------

    def open(self) -> None:
        """Import vboxapi (or use the injected ``vboxapi_module``), connect, read the version."""
        module = self.options.get("vboxapi_module")
        if module is None:
            try:
                module = import_vboxapi()
            except Exception as exc:
                raise BackendUnavailable(
                    "the VirtualBox API transport needs the SDK's vboxapi (pip install 'virtabstract-vbox[api]' "
                    f"and VirtualBox's SDK; COM/pywin32 on Windows, XPCOM elsewhere): {exc}"
                ) from exc
        callback = self.options.get("progress_callback")
        self._api = VBoxApi(module, timeout=self._timeout, on_progress=callback)
        self.version = self._api.version
        check_version(self.version, "API")
        log.debug("VirtualBox %s via the Main API", self.version)

    def close(self) -> None:
        """Drop the API objects."""
        self._api = None

    @property
    def api(self) -> VBoxApi:
        """The API transport (raises when the connection is closed)."""
        if self._api is None:
            raise BackendError("the VirtualBox connection is closed")
        return self._api

    @property
    def native(self) -> Any:
        """The ``IVirtualBox`` object."""
        return self._api.vbox if self._api else None

    def native_vm(self, vm_id: str) -> Any:
        """The ``IMachine``."""
        return self._machine(vm_id)

    # -- helpers --------------------------------------------------------------------

    def _machine(self, vm_id: str) -> Any:
        ref = vm_id.strip("{}")
        if not _UUID_RE.fullmatch(ref):
            raise VMNotFound(f"{vm_id!r} is not a VirtualBox machine UUID")
        return self.api.call("IVirtualBox.findMachine", self.api.vbox.findMachine, ref)

    def _state(self, machine: Any) -> str:
        return self.api.state_name(machine)

    def _ostypes(self) -> dict[str, str]:
        if not hasattr(self, "_ostype_cache"):
            types = self.api.call("IVirtualBox.guestOSTypes", lambda: list(self.api.vbox.guestOSTypes))
            self._ostype_cache = {str(t.id): str(t.description) for t in types}
        return self._ostype_cache

    def _vminfo_api(self, machine: Any) -> VMInfo:
        api = self.api
        native = self._state(machine)
        ostype = str(machine.OSTypeId)
        entry = guest_os_from_native("virtualbox", ostype) if ostype else None
        groups = [g for g in machine.groups if g and g != "/"]
        buses = {str(c.name): _BUS_NAMES.get(int(c.bus), "sata") for c in machine.storageControllers}
        disks = []
        for att in machine.mediumAttachments:
            medium = att.medium
            if int(att.type) != _HARD_DISK or medium is None:
                continue
            parent = getattr(medium, "parent", None)
            disks.append(
                DiskInfo(
                    id=f"{att.controller}-{att.port}-{att.device}",
                    size_mib=int(medium.logicalSize) // 2**20,
                    path=str(medium.location),
                    storage="default",
                    bus=buses.get(str(att.controller), "sata"),
                    format=str(medium.format),
                    thin=not (int(medium.variant[0]) & api.constant("MediumVariant", "Fixed")),
                    backing=str(parent.location) if parent is not None else "",
                )
            )
        nics = self._nics_api(machine)
        return VMInfo(
            id=str(machine.id).lower(),
            name=str(machine.name),
            state=power_state(native),
            native_state=native,
            cpus=int(machine.CPUCount),
            memory_mib=int(machine.memorySize),
            guest_os=entry.id if entry else None,
            guest_os_native=ostype,
            disks=tuple(disks),
            nics=tuple(nics),
            description=str(machine.description),
            tags=tuple(g.lstrip("/") for g in groups),
            firmware=self._firmware_api(machine),
            autostart=False,
            boot_order=(),
            cdrom=None,
            backend=self.name,
        )

    def _require_off_api(self, machine: Any, operation: str) -> str:
        native = self._state(machine)
        if is_online(native):
            raise InvalidState(
                f"cannot {operation} VM {machine.name!r} while it is {power_state(native).value}",
                state=power_state(native),
                operation=operation,
            )
        return native

    def _check_api(self, vm_id: str, operation: str) -> Any:
        machine = self._machine(vm_id)
        check_transition(operation, power_state(self._state(machine)), str(machine.name))
        return machine

    # -- host and inventory ---------------------------------------------------------

    def host_info(self) -> HostInfo:
        """From ``IHost``."""
        host = self.api.vbox.host
        os_text = str(host.operatingSystem).lower()
        family = (
            OSFamily.WINDOWS if "windows" in os_text
            else OSFamily.MACOS if "darwin" in os_text or "mac" in os_text
            else OSFamily.LINUX if "linux" in os_text
            else OSFamily.OTHER
        )  # fmt: skip
        import socket

        return HostInfo(
            hostname=socket.gethostname(),
            os_family=family,
            cpu_count=int(host.processorOnlineCount or host.processorCount),
            memory_mib=int(host.memorySize),
            hypervisor="VirtualBox",
            version=str(self.version),
            backend=self.name,
            os_name=f"{host.operatingSystem} {host.OSVersion}".strip(),
            cpu_model=str(host.getProcessorDescription(0)),
            cpu_mhz=int(host.getProcessorSpeed(0)) or None,
            free_memory_mib=int(host.memoryAvailable) or None,
            api_version=str(self.api.vbox.APIVersion),
            build=self.version.revision,
        )

    def list_vms(self) -> list[VMInfo]:
        """Every accessible registered machine (one API round trip per attribute, no per-VM process)."""
        found = []
        for machine in self.api.call("IVirtualBox.machines", lambda: list(self.api.vbox.machines)):
            try:
                if machine.accessible:
                    found.append(self._vminfo_api(machine))
            except VMNotFound:
                continue
        return found

    def get_vm(self, vm_id: str) -> VMInfo:
        """One VM by UUID (names may be duplicated: they raise VMNotFound, see VBoxBackend.get_vm)."""
        return self._vminfo_api(self._machine(vm_id))

    def find_vms_by_name(self, name: str) -> list[VMInfo]:
        """VMs named exactly *name*."""
        machines = self.api.call("IVirtualBox.machines", lambda: list(self.api.vbox.machines))
        return [self._vminfo_api(m) for m in machines if m.accessible and str(m.name) == name]

    def get_state(self, vm_id: str) -> tuple[PowerState, str]:
        """``IMachine.state`` decoded by name."""
        native = self._state(self._machine(vm_id))
        return power_state(native), native

    def list_storage(self) -> list[StorageInfo]:
        """One pool, ``default``: the default machine folder."""
        import shutil

        folder = str(self.api.vbox.systemProperties.defaultMachineFolder)
        capacity = free = None
        try:
            usage = shutil.disk_usage(folder)
            capacity, free = usage.total // 2**20, usage.free // 2**20
        except OSError:
            pass
        return [StorageInfo(name="default", id="default", kind="directory", capacity_mib=capacity,
                            free_mib=free, path=folder)]  # fmt: skip

    # -- create / delete ------------------------------------------------------------

    def create_vm(self, spec: VMSpec) -> VMInfo:
        """CreateMachine (version shim) + registerMachine, then disks/NICs through ``session.machine``."""
        api = self.api
        ostype = self._ostype_for(spec.guest_os)
        if spec.secure_boot:
            raise SpecError("secure_boot", "false (the vbox backend does not set up Secure Boot keys)", True)
        if spec.autostart:
            raise SpecError("autostart", "false (the vbox backend does not manage the autostart service)", True)
        if len(spec.nics) > MAX_NICS:
            raise SpecError("nics", f"at most {MAX_NICS} NICs", len(spec.nics))
        disks = [d if isinstance(d, Disk) else Disk.from_dict(d) for d in spec.disks]
        nics = [n if isinstance(n, Nic) else Nic.from_dict(n) for n in spec.nics]
        for i, disk in enumerate(disks):
            self._check_storage(disk, f"disks[{i}]")
        resolved = self._resolve_nics(nics)
        vm_uuid = str(uuidlib.uuid4())
        groups = ["/" + t for t in spec.tags] or ["/"]
        machine = self._new_machine(spec.name, ostype, groups, vm_uuid)
        # Not registered yet: the new IMachine is mutable directly.
        machine.CPUCount = spec.cpus
        machine.memorySize = spec.memory_mib
        machine.description = spec.description or ""
        api.set_firmware_type(machine, "EFI" if spec.firmware is Firmware.UEFI else "BIOS")
        api.call("IVirtualBox.registerMachine", api.vbox.registerMachine, machine)
        created: list[Any] = []
        try:
            with api.session(machine, LOCK_WRITE) as session:
                mutable = session.machine
                self._configure_adapters(mutable, nics, resolved)
                self._attach_new_disks(mutable, machine, disks, created)
                self._setup_vrde(mutable, spec)
                api.call("saveSettings", mutable.saveSettings)
        except BaseException:
            log.warning("creating VM %r failed; rolling back", spec.name)
            self._delete(machine, True, extra_media=created)
            raise
        return self.get_vm(vm_uuid)

    def _delete(self, machine: Any, delete_disks: bool, extra_media: Sequence[Any] = ()) -> None:
        api = self.api
        mode = api.constant("CleanupMode", "DetachAllReturnHardDisksOnly")
        media = list(api.call("IMachine.unregister", machine.unregister, mode))
        for medium in extra_media:
            if medium not in media:
                media.append(medium)
        if delete_disks:
            api.wait(api.call("IMachine.deleteConfig", machine.deleteConfig, media), "delete VM files")
            return
        api.wait(api.call("IMachine.deleteConfig", machine.deleteConfig, []), "delete VM settings")
        for medium in media:
            try:
                medium.close()
            except Exception as exc:  # noqa: BLE001 - the file stays either way
                log.debug("closing medium failed: %s", exc)

    def delete_vm(self, vm_id: str, *, delete_disks: bool) -> None:
        """``unregister(DetachAllReturnHardDisksOnly)`` + ``deleteConfig`` (with the disks when asked).

        A VM whose disks back linked clones: see :meth:`VBoxBackend._only_unregister`.
        """
        machine = self._machine(vm_id)
        state = self._require_off_api(machine, "delete")
        clones = self._linked_clones_api(machine)
        if self._only_unregister(str(machine.name), state, clones, delete_disks=delete_disks):
            self._unregister(machine)
            return
        self._delete(machine, delete_disks)

    def unregister_vm(self, vm_id: str) -> None:
        """``unregister(DetachAllReturnNone)``: files stay on disk."""
        machine = self._machine(vm_id)
        self._require_off_api(machine, "unregister")
        self._unregister(machine)

    def _unregister(self, machine: Any) -> None:
        """``unregister(DetachAllReturnNone)``, as ``VBoxManage unregistervm`` (no ``--delete``)."""
        self.api.call(
            "IMachine.unregister", machine.unregister, self.api.constant("CleanupMode", "DetachAllReturnNone")
        )

    # -- power ----------------------------------------------------------------------

    def start(self, vm_id: str) -> None:
        """``launchVMProcess(session, "headless", [])``; the launching session is unlocked afterwards."""
        machine = self._check_api(vm_id, "start")
        api = self.api
        session = api.call("getSessionObject", api.manager.getSessionObject, api.vbox)
        try:
            progress = api.call("IMachine.launchVMProcess", machine.launchVMProcess, session, "headless", [])
            api.wait(progress, "start")
        finally:
            api.unlock(session)

    def _console(self, vm_id: str, operation: str, method: str) -> None:
        machine = self._check_api(vm_id, operation)
        with self.api.session(machine, LOCK_SHARED) as session:
            console = session.console
            if console is None:
                raise InvalidState(f"VM {machine.name!r} has no running VM process", operation=operation)
            result = self.api.call(f"IConsole.{method}", getattr(console, method))
            if result is not None and hasattr(result, "waitForCompletion"):
                self.api.wait(result, operation)

    def request_shutdown(self, vm_id: str) -> str:
        """``IConsole.powerButton`` (ACPI)."""
        self._console(vm_id, "shutdown", "powerButton")
        return "acpi"

    def power_off(self, vm_id: str) -> None:
        """``IConsole.powerDown`` (waited); an AbortedSaved VM has its saved state discarded instead."""
        machine = self._check_api(vm_id, "power_off")
        native = self._state(machine)
        if native == "AbortedSaved":  # no process to stop, but a broken saved state: VBoxManage's discardstate
            self._discard_saved_state(machine)
            return
        if native == "Aborted":
            log.info("VM %s is aborted: its process is already gone", vm_id)
            return
        self._console(vm_id, "power_off", "powerDown")

    def reset(self, vm_id: str) -> None:
        """``IConsole.reset`` (hard)."""
        self._console(vm_id, "reset", "reset")

    def pause(self, vm_id: str) -> None:
        """``IConsole.pause``."""
        self._console(vm_id, "pause", "pause")

    def resume(self, vm_id: str) -> None:
        """``IConsole.resume``."""
        self._console(vm_id, "resume", "resume")

    def suspend(self, vm_id: str) -> None:
        """``session.machine.saveState()`` (IMachine since 6.0); the VM process ends, unlocking our session."""
        machine = self._check_api(vm_id, "suspend")
        with self.api.session(machine, LOCK_SHARED) as session:
            self.api.wait(self.api.call("IMachine.saveState", session.machine.saveState), "save state")

    # -- configuration --------------------------------------------------------------

    def plan_reconfigure(self, vm_id: str, changes: Mapping[str, Any]) -> list[ReconfigureChange]:
        """Offline when the VM is off; ``needs_power_off`` otherwise."""
        info = self.get_vm(vm_id)
        offline = not is_online(info.native_state) and info.native_state not in ("Saved", "AbortedSaved")
        mode = "offline" if offline else "needs_power_off"
        return [ReconfigureChange(field, getattr(info, field), new, mode) for field, new in changes.items()]

    def apply_reconfigure(self, vm_id: str, changes: Sequence[ReconfigureChange]) -> None:
        """Write lock, set on ``session.machine``, ``saveSettings()``."""
        machine = self._machine(vm_id)
        with self.api.session(machine, LOCK_WRITE) as session:
            mutable = session.machine
            for change in changes:
                if change.mode != "offline":
                    raise InvalidState(
                        f"cannot apply {change.field} ({change.mode}) on VirtualBox", operation="reconfigure"
                    )
                if change.field == "cpus":
                    mutable.CPUCount = int(change.new)
                elif change.field == "memory_mib":
                    mutable.memorySize = int(change.new)
                elif change.field == "description":
                    mutable.description = str(change.new)
                elif change.field == "tags":
                    mutable.groups = ["/" + t for t in change.new] or ["/"]
            self.api.call("saveSettings", mutable.saveSettings)

    # -- snapshots ------------------------------------------------------------------

    def list_snapshots(self, vm_id: str) -> list[SnapshotInfo]:
        """Walk the tree from the root (``findSnapshot("")``), parents first."""
        machine = self._machine(vm_id)
        if not int(machine.snapshotCount):
            return []
        current = machine.currentSnapshot
        current_id = str(current.id).lower() if current is not None else ""
        found: list[SnapshotInfo] = []

        def walk(snap: Any) -> None:
            parent = snap.parent
            sid = str(snap.id).lower()
            found.append(
                SnapshotInfo(
                    id=sid,
                    name=str(snap.name),
                    vm_id=str(machine.id).lower(),
                    parent_id=str(parent.id).lower() if parent is not None else None,
                    description=str(snap.description),
                    vm_state=PowerState.RUNNING if snap.online else PowerState.STOPPED,
                    has_memory=bool(snap.online),
                    is_current=sid == current_id,
                    children_ids=tuple(str(c.id).lower() for c in snap.children),
                )
            )
            for child in snap.children:
                walk(child)

        walk(self.api.call("IMachine.findSnapshot", machine.findSnapshot, ""))
        return found

    def _snapshot(self, vm_id: str, snapshot_id: str) -> SnapshotInfo:
        for snap in self.list_snapshots(vm_id):
            if snap.id == snapshot_id.lower():
                return snap
        raise SnapshotNotFound(f"VM {vm_id} has no snapshot with id {snapshot_id!r}")

    def create_snapshot(self, vm_id: str, name: str, *, description: str, memory: bool, quiesce: bool) -> SnapshotInfo:
        """``session.machine.takeSnapshot`` under a shared lock (live when the VM runs: always with memory)."""
        if quiesce:
            self.unsupported("snapshot quiesce", "VirtualBox cannot quiesce guest file systems")
        machine = self._machine(vm_id)
        native = self._state(machine)
        if is_online(native) and not memory:
            raise InvalidState(
                "VirtualBox cannot take a disk-only snapshot of a running VM: pass memory=True or power it off",
                state=power_state(native),
                operation="snapshot_create",
            )
        with self.api.session(machine, LOCK_SHARED) as session:
            result = self.api.call("IMachine.takeSnapshot", session.machine.takeSnapshot, name, description, False)
            progress, snap_id = result
            self.api.wait(progress, "take snapshot")
        return self._snapshot(vm_id, str(snap_id))

    def revert_snapshot(self, vm_id: str, snapshot_id: str) -> None:
        """``restoreSnapshot`` under a write lock (VM off); a memory snapshot leaves it Saved, so it is started."""
        machine = self._machine(vm_id)
        self._require_off_api(machine, "revert")
        snap = self._snapshot(vm_id, snapshot_id)
        native = self.api.call("IMachine.findSnapshot", machine.findSnapshot, snap.id)
        with self.api.session(machine, LOCK_WRITE) as session:
            self.api.wait(self.api.call("restoreSnapshot", session.machine.restoreSnapshot, native), "restore snapshot")
        if snap.has_memory and self._state(machine) == "Saved":
            self.start(vm_id)

    def delete_snapshot(self, vm_id: str, snapshot_id: str, *, children: bool) -> None:
        """``deleteSnapshot`` (descendants first when *children*)."""
        order = snapshot_deletion_order(self.list_snapshots(vm_id), snapshot_id, children=children)
        machine = self._machine(vm_id)
        for sid in order:
            with self.api.session(machine, LOCK_SHARED) as session:
                self.api.wait(self.api.call("deleteSnapshot", session.machine.deleteSnapshot, sid), "delete snapshot")
