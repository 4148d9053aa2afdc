"""When VirtualBox lets a NIC setting change: one table for both transports.

VirtualBox decides per ``INetworkAdapter`` setter (NetworkAdapterImpl.cpp): the
attachment (which network) and the cable take a *MutableOrSavedOrRunning* state
dependency, so they change while the VM is off, saved or running -- live on a
running VM, where VBoxManage offers them as ``controlvm nic<N>`` and
``controlvm setlinkstate<N>``; the adapter type, the MAC address and whether the
adapter is enabled (a NIC added or removed) take a *Mutable* one: VM off only, and
``controlvm`` has no subcommand for them.

:func:`nic_change_mode` answers with the core's reconfigure modes: ``offline`` (no VM
process: the settings change), ``live`` (the running VM takes it) or
``needs_power_off``; :func:`require_nic_change` refuses the latter with
:class:`~virtabstract.errors.InvalidState` before anything is changed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from virtabstract.errors import InvalidState

from ._states import machine_state, power_state

__all__ = ["NIC_CHANGE_STATES", "nic_change_mode", "require_nic_change"]

_OFF = frozenset({"PoweredOff", "Aborted", "Teleported"})
_SAVED = frozenset({"Saved", "AbortedSaved"})
_RUNNING = frozenset({"Running", "Paused"})

NIC_CHANGE_STATES: Mapping[str, frozenset[str]] = {
    # NIC setting -> the machine states (API names) in which VirtualBox lets it change
    "network": _OFF | _SAVED | _RUNNING,
    "connected": _OFF | _SAVED | _RUNNING,
    "model": _OFF,
    "mac": _OFF,
    "present": _OFF,  # adding or removing the NIC (INetworkAdapter.enabled)
}
"""Which NIC setting may change in which machine state (see the module docstring)."""


def nic_change_mode(setting: str, native_state: str) -> str:
    """``offline``, ``live`` or ``needs_power_off`` for changing *setting* in *native_state*.

    :param setting: a key of :data:`NIC_CHANGE_STATES`.
    :param native_state: the machine state as either transport names it (``"running"``, ``"Running"``).
    """
    state = machine_state(native_state)
    name = state.api_name if state is not None else native_state
    if name not in NIC_CHANGE_STATES[setting]:
        return "needs_power_off"
    return "live" if name in _RUNNING else "offline"


_WHAT = {
    "network": "move a NIC to another network",
    "connected": "plug or unplug a NIC's cable",
    "model": "change a NIC's adapter type",
    "mac": "change a NIC's MAC address",
    "present": "add or remove a NIC",
}


def require_nic_change(settings: Iterable[str], native_state: str, vm_name: str, operation: str) -> str:
    """The mode all *settings* change in now: ``live`` on a running VM, else ``offline``.

    :raises InvalidState: one of them cannot change in this state (nothing has been changed).
    """
    modes = {setting: nic_change_mode(setting, native_state) for setting in settings}
    blocked = [setting for setting, mode in modes.items() if mode == "needs_power_off"]
    if blocked:
        state = machine_state(native_state)
        shown = state.api_name if state is not None else native_state  # the same words on both transports
        allowed = sorted(frozenset.intersection(*(NIC_CHANGE_STATES[s] for s in blocked)))
        raise InvalidState(
            f"cannot {' or '.join(_WHAT[s] for s in blocked)} of VM {vm_name!r} while it is {shown}: "
            f"VirtualBox allows that only while the VM is {', '.join(allowed[:-1])} or {allowed[-1]}",
            state=power_state(native_state),
            operation=operation,
        )
    return "live" if "live" in modes.values() else "offline"
