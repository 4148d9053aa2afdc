"""VirtualBox machine states: one table, by *name*, for every version.

VirtualBox 7.0 inserted ``MachineState.AbortedSaved`` as 5, so every later
number shifted by one (Running is 5 in 6.1 and 6 in 7.x). Code must therefore
compare states by name, never by number. VBoxManage prints short lowercase
names (``machineStateToName(state, fShort=true)`` in VBoxManageInfo.cpp); the
API has CamelCase names. :data:`MACHINE_STATES` lists every state of 6.1 and
7.x with both names and the :class:`~virtabstract.PowerState` it maps to.

Mapping decisions (the native name always travels in ``VMInfo.native_state``):

* ``Saved`` is :attr:`PowerState.SUSPENDED` (memory on disk; ``start`` restores it).
* ``Aborted`` (VM process died), ``AbortedSaved`` (7.x: died while a saved state
  was being restored) and ``Stuck`` (Guru Meditation) are :attr:`PowerState.CRASHED`.
* ``Teleported`` (the VM moved to another host; nothing runs here) is ``STOPPED``.
* Online transient states where the guest keeps executing (live snapshot, online
  snapshot deletion, teleporting) are ``RUNNING``; their paused variants ``PAUSED``.
* Offline transient states (``SettingUp``, ``Snapshotting``, ``RestoringSnapshot``,
  ``DeletingSnapshot``) are ``STOPPED``: no VM process exists.

The Guest Additions report a run level of their own (``AdditionsRunLevelType``, the same
numbers in the API's ``IGuest.additionsRunLevel`` and showvminfo's ``GuestAdditionsRunLevel``):
:class:`AdditionsRunLevel` and :func:`additions_ready` say when a guest counts as ready.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from virtabstract import PowerState

__all__ = [
    "MACHINE_STATES",
    "AdditionsRunLevel",
    "MachineState",
    "additions_ready",
    "api_names",
    "is_online",
    "machine_state",
    "power_state",
    "state_from_number",
    "state_number",
]


@dataclass(frozen=True)
class MachineState:
    """One VirtualBox machine state."""

    api_name: str
    """The ``MachineState`` enum name of the Main API, e.g. ``"PoweredOff"``."""
    cli_name: str
    """What ``VBoxManage showvminfo --machinereadable`` prints as ``VMState``, e.g. ``"poweroff"``."""
    power_state: PowerState
    """The normalised state."""
    online: bool
    """True between ``FirstOnline`` and ``LastOnline`` (a VM process exists)."""
    since: tuple[int, int] = (0, 0)
    """First VirtualBox version (major, minor) that has the state."""


_P = PowerState
# Order is the enum order of VirtualBox 7.x; 6.1 lacks AbortedSaved.
MACHINE_STATES: tuple[MachineState, ...] = (
    MachineState("Null", "null", _P.UNKNOWN, False),
    MachineState("PoweredOff", "poweroff", _P.STOPPED, False),
    MachineState("Saved", "saved", _P.SUSPENDED, False),
    MachineState("Teleported", "teleported", _P.STOPPED, False),
    MachineState("Aborted", "aborted", _P.CRASHED, False),
    MachineState("AbortedSaved", "aborted-saved", _P.CRASHED, False, (7, 0)),
    MachineState("Running", "running", _P.RUNNING, True),
    MachineState("Paused", "paused", _P.PAUSED, True),
    MachineState("Stuck", "gurumeditation", _P.CRASHED, True),
    MachineState("Teleporting", "teleporting", _P.RUNNING, True),
    MachineState("LiveSnapshotting", "livesnapshotting", _P.RUNNING, True),
    MachineState("Starting", "starting", _P.STARTING, True),
    MachineState("Stopping", "stopping", _P.STOPPING, True),
    MachineState("Saving", "saving", _P.SAVING, True),
    MachineState("Restoring", "restoring", _P.RESTORING, True),
    MachineState("TeleportingPausedVM", "teleportingpausedvm", _P.PAUSED, True),
    MachineState("TeleportingIn", "teleportingin", _P.STARTING, True),
    MachineState("DeletingSnapshotOnline", "deletingsnapshotlive", _P.RUNNING, True),
    MachineState("DeletingSnapshotPaused", "deletingsnapshotlivepaused", _P.PAUSED, True),
    MachineState("OnlineSnapshotting", "onlinesnapshotting", _P.RUNNING, True),
    MachineState("RestoringSnapshot", "restoringsnapshot", _P.STOPPED, False),
    MachineState("DeletingSnapshot", "deletingsnapshot", _P.STOPPED, False),
    MachineState("SettingUp", "settingup", _P.STOPPED, False),
    MachineState("Snapshotting", "snapshotting", _P.STOPPED, False),
)
"""Every MachineState of VirtualBox 6.1 and 7.x, in 7.x enum order."""

_BY_NAME: dict[str, MachineState] = {}
for _s in MACHINE_STATES:
    _BY_NAME[_s.api_name.lower()] = _s
    _BY_NAME[_s.cli_name] = _s
# Aliases seen in the wild: the long human-readable names of `showvminfo` without
# --machinereadable, and "stuck" for the Guru Meditation state.
_ALIASES = {
    "powered off": "poweroff",
    "stuck": "gurumeditation",
    "guru meditation": "gurumeditation",
    "abortedsaved": "aborted-saved",
    "aborted_saved": "aborted-saved",
    "deletingsnapshotonline": "deletingsnapshotlive",
    "setting up": "settingup",
}
for _alias, _target in _ALIASES.items():
    _BY_NAME.setdefault(_alias, _BY_NAME[_target])


def machine_state(name: str) -> MachineState | None:
    """Look up a state by its API name or VBoxManage name (case-insensitive); ``None`` if unknown."""
    return _BY_NAME.get(name.strip().lower())


def power_state(name: str) -> PowerState:
    """Map a native state name (``"poweroff"``, ``"PoweredOff"``, …) to a :class:`PowerState`.

    Unknown names (a future VirtualBox) give :attr:`PowerState.UNKNOWN`, never an exception.
    """
    state = machine_state(name)
    return state.power_state if state is not None else PowerState.UNKNOWN


def is_online(name: str) -> bool:
    """True when a VM in this state has a running VM process."""
    state = machine_state(name)
    return bool(state and state.online)


def api_names(version: tuple[int, int]) -> tuple[str, ...]:
    """The MachineState enum of VirtualBox *version*, in numeric order (index == value)."""
    return tuple(s.api_name for s in MACHINE_STATES if s.since <= version)


def state_from_number(value: int, version: tuple[int, int]) -> MachineState:
    """Translate a numeric MachineState of VirtualBox *version* (6.1 and 7.x differ) to the state."""
    names = api_names(version)
    if not 0 <= value < len(names):
        raise ValueError(f"MachineState {value} does not exist in VirtualBox {version[0]}.{version[1]}")
    found = machine_state(names[value])
    assert found is not None
    return found


def state_number(name: str, version: tuple[int, int]) -> int:
    """The numeric MachineState value of *name* in VirtualBox *version*."""
    state = machine_state(name)
    names = api_names(version)
    if state is None or state.api_name not in names:
        raise ValueError(f"VirtualBox {version[0]}.{version[1]} has no machine state {name!r}")
    return names.index(state.api_name)


class AdditionsRunLevel(IntEnum):
    """``AdditionsRunLevelType``: how far the Guest Additions have come up in the guest."""

    NONE = 0
    """No Additions report (not installed, or the guest has not loaded them yet)."""
    SYSTEM = 1
    """The kernel driver runs; VBoxService does not yet: no guest properties, no guest control."""
    USERLAND = 2
    """VBoxService runs: guest properties are published and guest sessions start (exec, files)."""
    DESKTOP = 3
    """A user is logged in to the desktop with VBoxClient running."""


def additions_ready(run_level: int) -> bool:
    """Whether Additions at *run_level* serve guest control, the bar for "the guest is ready".

    ``System`` is reached early in a boot, before VBoxService starts; a guest session
    started then fails or never starts, so both transports wait for ``Userland``.
    """
    return run_level >= AdditionsRunLevel.USERLAND
