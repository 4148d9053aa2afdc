"""The state table covers every virDomainState x reason libvirt defines; events likewise."""

from __future__ import annotations

import pytest

from virtabstract import PowerState

libvirt = pytest.importorskip("libvirt")

from virtabstract_kvm._states import (  # noqa: E402
    EVENT_TABLE,
    STATE_NAMES,
    STATE_TABLE,
    event_state,
    managed_save_possible,
    power_state,
)

_SHUTDOWN_FLAG_NAMES = {"DEFAULT", "ACPI_POWER_BTN", "GUEST_AGENT", "INITCTL", "SIGNAL", "PARAVIRT"}


def _reason_pairs() -> list[tuple[int, int, str]]:
    pairs = []
    for state, name in STATE_NAMES.items():
        prefix = f"VIR_DOMAIN_{name.upper()}_"
        assert getattr(libvirt, f"VIR_DOMAIN_{name.upper()}") == state
        for const in dir(libvirt):
            if not const.startswith(prefix) or const.endswith("_LAST"):
                continue
            reason = const[len(prefix) :]
            if name == "shutdown" and reason in _SHUTDOWN_FLAG_NAMES:
                continue  # virDomainShutdownFlagValues, not reasons
            pairs.append((state, getattr(libvirt, const), reason.lower()))
    return pairs


PAIRS = _reason_pairs()


def test_every_state_has_reasons() -> None:
    assert {p[0] for p in PAIRS} == set(STATE_NAMES)


@pytest.mark.parametrize(("state", "reason", "name"), PAIRS, ids=[f"{s}:{n}" for s, _, n in PAIRS])
def test_every_pair_is_in_the_table(state: int, reason: int, name: str) -> None:
    assert (state, reason) in STATE_TABLE
    power, native = STATE_TABLE[(state, reason)]
    assert isinstance(power, PowerState)
    assert native.startswith(STATE_NAMES[state] + ":")
    if name != "disk_unknown":  # PMSUSPENDED_DISK_UNKNOWN shares 0 with PMSUSPENDED_UNKNOWN
        assert native.endswith(":" + name)


EXPECTED = {
    (1, 1): (PowerState.RUNNING, "running:booted"),
    (2, 0): (PowerState.RUNNING, "blocked:unknown"),
    (3, 1): (PowerState.PAUSED, "paused:user"),
    (3, 3): (PowerState.SAVING, "paused:save"),
    (3, 8): (PowerState.STOPPING, "paused:shutting_down"),
    (3, 11): (PowerState.STARTING, "paused:starting_up"),
    (4, 1): (PowerState.STOPPING, "shutdown:user"),
    (5, 1): (PowerState.STOPPED, "shutoff:shutdown"),
    (5, 2): (PowerState.STOPPED, "shutoff:destroyed"),
    (5, 3): (PowerState.CRASHED, "shutoff:crashed"),
    (5, 5): (PowerState.STOPPED, "shutoff:saved"),
    (6, 1): (PowerState.CRASHED, "crashed:panicked"),
    (7, 0): (PowerState.PAUSED, "pmsuspended:unknown"),
    (0, 0): (PowerState.UNKNOWN, "nostate:unknown"),
}


@pytest.mark.parametrize(("pair", "expected"), EXPECTED.items())
def test_chosen_mappings(pair: tuple[int, int], expected: tuple[PowerState, str]) -> None:
    assert power_state(*pair) == expected


def test_managed_save_means_suspended() -> None:
    assert power_state(5, 5, managed_save=True) == (PowerState.SUSPENDED, "shutoff:saved+managedsave")
    assert power_state(1, 1, managed_save=True)[0] is PowerState.RUNNING


def test_unknown_reason_falls_back_to_the_state() -> None:
    assert power_state(1, 99) == (PowerState.RUNNING, "running:reason99")
    assert power_state(42, 0)[0] is PowerState.UNKNOWN


EVENT_NAMES = (
    "DEFINED",
    "UNDEFINED",
    "STARTED",
    "SUSPENDED",
    "RESUMED",
    "STOPPED",
    "SHUTDOWN",
    "PMSUSPENDED",
    "CRASHED",
)
EVENT_PAIRS = [
    (getattr(libvirt, f"VIR_DOMAIN_EVENT_{event}"), getattr(libvirt, const), const)
    for event in EVENT_NAMES
    for const in dir(libvirt)
    if const.startswith(f"VIR_DOMAIN_EVENT_{event}_") and not const.endswith("_LAST")
]


@pytest.mark.parametrize(("event", "detail", "const"), EVENT_PAIRS, ids=[p[2] for p in EVENT_PAIRS])
def test_every_lifecycle_event_is_mapped(event: int, detail: int, const: str) -> None:
    assert (event, detail) in EVENT_TABLE, const
    assert event_state(event, detail) == EVENT_TABLE[(event, detail)]


# (state, reason, can a managed save image exist): only a domain shut off after it really ran is sure to have none
MANAGED_SAVE_CASES = [
    (5, 0, True),  # unknown (e.g. after a daemon restart): ask
    (5, 1, False),  # shutdown: it ran, so the image was consumed or discarded at start
    (5, 2, False),  # destroyed
    (5, 3, False),  # crashed
    (5, 4, True),  # migrated
    (5, 5, True),  # saved: managedSave's own reason
    (5, 6, True),  # failed: a failed restore keeps the image
    (5, 7, True),  # from_snapshot
    (5, 8, True),  # daemon
    (5, 99, True),  # a reason a newer libvirt adds
    (1, 1, False),  # running
    (3, 1, False),  # paused
    (7, 0, False),  # pmsuspended
]


@pytest.mark.parametrize(("state", "reason", "possible"), MANAGED_SAVE_CASES)
def test_managed_save_possible(state: int, reason: int, possible: bool) -> None:
    assert managed_save_possible(state, reason) is possible


def test_without_image_is_the_state_table_minus_the_pairs_that_may_have_an_image() -> None:
    """The state query's one-lookup table agrees with the two rules it short-cuts, pair by pair."""
    from virtabstract_kvm._states import STATE_TABLE, WITHOUT_IMAGE

    for pair, found in STATE_TABLE.items():
        if managed_save_possible(*pair):
            assert pair not in WITHOUT_IMAGE, pair
        else:
            assert WITHOUT_IMAGE[pair] == found == power_state(*pair), pair
    assert (5, 2) in WITHOUT_IMAGE and (5, 0) not in WITHOUT_IMAGE  # destroyed: final; unknown: asked
