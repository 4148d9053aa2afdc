"""The one table from vSphere's VM states to :class:`~virtabstract.PowerState`.

vSphere reports a VM's state in two properties:

* ``runtime.powerState`` (``VirtualMachinePowerState``): ``poweredOn``,
  ``poweredOff``, ``suspended``;
* ``runtime.connectionState`` (``VirtualMachineConnectionState``): ``connected``,
  ``disconnected``, ``orphaned``, ``inaccessible``, ``invalid``. When it is not
  ``connected`` the power state is stale (the host lost the VM, its files are
  unreachable, or its configuration is corrupt), so the VM is ``UNKNOWN``.

``runtime.paused`` (vSphere 6.0+) is true for a VM frozen from the host UI; vSphere has
no API to pause or resume, so virtabstract never *declares* PAUSE, but reports the
state truthfully when it sees it.

vSphere has no transient states observable through properties (a power-on in
progress is a running *task*, not a VM state), so STARTING/STOPPING never appear.
The native state string keeps every detail: ``"poweredOn"``, ``"poweredOn:paused"``,
``"poweredOff:orphaned"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from virtabstract import PowerState

__all__ = ["CONNECTION_STATES", "POWER_STATES", "map_state", "native_power_state"]

POWER_STATES: Mapping[str, PowerState] = MappingProxyType(
    {
        "poweredOn": PowerState.RUNNING,
        "poweredOff": PowerState.STOPPED,
        "suspended": PowerState.SUSPENDED,
    }
)
"""``VirtualMachinePowerState`` → PowerState, for a ``connected`` VM."""

CONNECTION_STATES: Mapping[str, PowerState | None] = MappingProxyType(
    {
        "connected": None,  # the power state is authoritative
        "disconnected": PowerState.UNKNOWN,  # the host is not reachable from vCenter
        "orphaned": PowerState.UNKNOWN,  # vCenter knows the VM, its host no longer does
        "inaccessible": PowerState.UNKNOWN,  # the configuration files cannot be read
        "invalid": PowerState.UNKNOWN,  # the configuration is corrupt
    }
)
"""``VirtualMachineConnectionState`` → override of the power state (``None``: none)."""


def map_state(power_state: str | None, connection_state: str | None = "connected", paused: bool = False) -> PowerState:
    """Normalise vSphere's state properties; unknown values give ``UNKNOWN``, never an exception."""
    override = CONNECTION_STATES.get(connection_state or "connected", PowerState.UNKNOWN)
    if override is not None:
        return override
    state = POWER_STATES.get(power_state or "", PowerState.UNKNOWN)
    if state is PowerState.RUNNING and paused:
        return PowerState.PAUSED
    return state


def native_power_state(
    power_state: str | None, connection_state: str | None = "connected", paused: bool = False
) -> str:
    """The native state string kept beside the normalised one (``"poweredOn:orphaned"``)."""
    text = power_state or "unknown"
    if connection_state and connection_state != "connected":
        text += f":{connection_state}"
    elif paused:
        text += ":paused"
    return text
