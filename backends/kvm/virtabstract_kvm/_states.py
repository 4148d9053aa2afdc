"""libvirt domain states (and their reasons) → :class:`~virtabstract.PowerState`, in one table.

libvirt reports a state as a ``(virDomainState, reason)`` pair of integers.
:data:`STATE_TABLE` covers every pair libvirt defines (the numbers are part of
libvirt's stable ABI; a test checks them against the installed module) and
gives each its normalised state and a native string such as
``"running:booted"`` or ``"shutoff:saved"``. Pairs a newer libvirt may add
fall back to the state's default (:data:`STATE_DEFAULTS`).

One rule cannot live in the pair: a shut-off domain with a *managed save*
image is :attr:`PowerState.SUSPENDED` (``start`` restores it), whatever its
reason. :func:`power_state` applies it.

Lifecycle events (``VIR_DOMAIN_EVENT_*`` with their detail) map through
:data:`EVENT_TABLE` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from virtabstract import PowerState

__all__ = [
    "EVENT_TABLE",
    "STATE_DEFAULTS",
    "STATE_NAMES",
    "STATE_TABLE",
    "WITHOUT_IMAGE",
    "event_state",
    "managed_save_possible",
    "power_state",
]

_R, _P, _ST, _SU = PowerState.RUNNING, PowerState.PAUSED, PowerState.STOPPED, PowerState.SUSPENDED
_STOPPING, _CRASHED, _UNKNOWN = PowerState.STOPPING, PowerState.CRASHED, PowerState.UNKNOWN

STATE_NAMES: Mapping[int, str] = {
    0: "nostate",
    1: "running",
    2: "blocked",
    3: "paused",
    4: "shutdown",
    5: "shutoff",
    6: "crashed",
    7: "pmsuspended",
}
"""``virDomainState`` values and the names used in native state strings."""

STATE_DEFAULTS: Mapping[int, PowerState] = {
    0: _UNKNOWN,
    1: _R,
    2: _R,  # blocked on a resource: the guest is running
    3: _P,
    4: _STOPPING,
    5: _ST,
    6: _CRASHED,
    7: _P,  # guest-initiated S3: process and RAM kept; resume() wakes it
}
"""Each state's normalised value, used for reasons this table does not know yet."""

_REASONS: dict[int, dict[int, tuple[str, PowerState]]] = {
    0: {0: ("unknown", _UNKNOWN)},
    1: {
        0: ("unknown", _R),
        1: ("booted", _R),
        2: ("migrated", _R),
        3: ("restored", _R),
        4: ("from_snapshot", _R),
        5: ("unpaused", _R),
        6: ("migration_canceled", _R),
        7: ("save_canceled", _R),
        8: ("wakeup", _R),
        9: ("crashed", _R),  # running again after a crash (e.g. the guest rebooted on panic)
        10: ("postcopy", _R),
        11: ("postcopy_failed", _R),
    },
    2: {0: ("unknown", _R)},
    3: {
        0: ("unknown", _P),
        1: ("user", _P),
        2: ("migration", _P),
        3: ("save", PowerState.SAVING),
        4: ("dump", _P),
        5: ("ioerror", _P),
        6: ("watchdog", _P),
        7: ("from_snapshot", _P),
        8: ("shutting_down", _STOPPING),
        9: ("snapshot", _P),
        10: ("crashed", _CRASHED),
        11: ("starting_up", PowerState.STARTING),
        12: ("postcopy", _P),
        13: ("postcopy_failed", _P),
        14: ("api_error", _P),
    },
    4: {0: ("unknown", _STOPPING), 1: ("user", _STOPPING)},
    5: {
        0: ("unknown", _ST),
        1: ("shutdown", _ST),
        2: ("destroyed", _ST),
        3: ("crashed", _CRASHED),
        4: ("migrated", _ST),
        5: ("saved", _ST),  # SUSPENDED only with a managed save image: see power_state()
        6: ("failed", _ST),  # failed to start: nothing ran, so nothing crashed
        7: ("from_snapshot", _ST),
        8: ("daemon", _ST),
    },
    6: {0: ("unknown", _CRASHED), 1: ("panicked", _CRASHED)},
    7: {0: ("unknown", _P)},
}

STATE_TABLE: Mapping[tuple[int, int], tuple[PowerState, str]] = {
    (state, reason): (power, f"{STATE_NAMES[state]}:{name}")
    for state, reasons in _REASONS.items()
    for reason, (name, power) in reasons.items()
}
"""``(virDomainState, reason)`` → ``(PowerState, "state:reason")`` for every pair libvirt defines."""


def power_state(state: int, reason: int, *, managed_save: bool = False) -> tuple[PowerState, str]:
    """Map a libvirt ``(state, reason)`` pair to ``(PowerState, native_state)``.

    :param managed_save: the domain has a managed save image (``hasManagedSaveImage``).
    """
    found = STATE_TABLE.get((state, reason))
    if found is None:
        name = STATE_NAMES.get(state, f"state{state}")
        found = (STATE_DEFAULTS.get(state, _UNKNOWN), f"{name}:reason{reason}")
    power, native = found
    if managed_save and state == 5:
        return _SU, native + "+managedsave"
    return power, native


_RAN_THEN_STOPPED = frozenset({1, 2, 3})
"""Shut-off reasons only a domain that really ran can have: shutdown, destroyed, crashed."""


def managed_save_possible(state: int, reason: int) -> bool:
    """Whether a domain in this ``(state, reason)`` can have a managed save image at all.

    Only a shut-off domain can. An image is made by ``managedSave`` (reason *saved*) and
    consumed by the next successful start: libvirt deletes it once the domain is restored,
    and ``start --force-boot`` discards it. So a domain shut off after it ran (shutdown,
    destroyed, crashed) has none, and its state needs no ``hasManagedSaveImage`` call. Every
    other reason (*saved*, *unknown* after a daemon restart, *failed* when a restore failed,
    reasons a newer libvirt adds) may have one and is asked.
    """
    return state == 5 and reason not in _RAN_THEN_STOPPED


_EVENTS: dict[int, tuple[str, PowerState, dict[int, tuple[str, PowerState]]]] = {
    0: (
        "defined",
        _ST,
        {0: ("added", _ST), 1: ("updated", _UNKNOWN), 2: ("renamed", _UNKNOWN), 3: ("from_snapshot", _UNKNOWN)},
    ),
    1: ("undefined", _UNKNOWN, {0: ("removed", _UNKNOWN), 1: ("renamed", _UNKNOWN)}),
    2: (
        "started",
        _R,
        {
            0: ("booted", _R),
            1: ("migrated", _R),
            2: ("restored", _R),
            3: ("from_snapshot", _R),
            4: ("wakeup", _R),
            5: ("recreated", _R),
        },
    ),
    3: (
        "suspended",
        _P,
        {
            0: ("paused", _P),
            1: ("migrated", _P),
            2: ("ioerror", _P),
            3: ("watchdog", _P),
            4: ("restored", _P),
            5: ("from_snapshot", _P),
            6: ("api_error", _P),
            7: ("postcopy", _P),
            8: ("postcopy_failed", _P),
        },
    ),
    4: (
        "resumed",
        _R,
        {
            0: ("unpaused", _R),
            1: ("migrated", _R),
            2: ("from_snapshot", _R),
            3: ("postcopy", _R),
            4: ("postcopy_failed", _R),
        },
    ),
    5: (
        "stopped",
        _ST,
        {
            0: ("shutdown", _ST),
            1: ("destroyed", _ST),
            2: ("crashed", _CRASHED),
            3: ("migrated", _ST),
            4: ("saved", _SU),
            5: ("failed", _ST),
            6: ("from_snapshot", _ST),
        },
    ),
    6: ("shutdown", _STOPPING, {0: ("finished", _STOPPING), 1: ("guest", _STOPPING), 2: ("host", _STOPPING)}),
    7: ("pmsuspended", _P, {0: ("memory", _P), 1: ("disk", _ST)}),
    8: ("crashed", _CRASHED, {0: ("panicked", _CRASHED), 1: ("crashloaded", _CRASHED)}),
}

EVENT_TABLE: Mapping[tuple[int, int], tuple[PowerState, str]] = {
    (event, detail): (power, f"{name}:{detail_name}")
    for event, (name, _default, details) in _EVENTS.items()
    for detail, (detail_name, power) in details.items()
}
"""``(VIR_DOMAIN_EVENT_*, detail)`` → ``(PowerState after the event, "event:detail")``."""


def event_state(event: int, detail: int) -> tuple[PowerState, str]:
    """Map a lifecycle event to the state the domain is in after it, and a native event string."""
    found = EVENT_TABLE.get((event, detail))
    if found is not None:
        return found
    name, default, _ = _EVENTS.get(event, (f"event{event}", _UNKNOWN, {}))
    return default, f"{name}:detail{detail}"


WITHOUT_IMAGE: Mapping[tuple[int, int], tuple[PowerState, str]] = {
    pair: found for pair, found in STATE_TABLE.items() if not managed_save_possible(*pair)
}
"""The :data:`STATE_TABLE` pairs that cannot have a managed save image: their state is final in one lookup
(the hot path of a state query; any other pair goes through :func:`managed_save_possible` and :func:`power_state`)."""
