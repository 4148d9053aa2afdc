"""Which VirtualBox versions the backend knows, and what it does with the others.

Every version-dependent decision of both transports is an *ordered* comparison of
``(major, minor)`` against the version that introduced the behaviour (``>= (7, 1)``),
never an equality test, so a version inherits everything its predecessors changed.
The versions whose behaviour was checked against VirtualBox's sources (SDK reference
change log, ``VirtualBox.xidl``, VBoxManage sources; see the backend's README) are
:data:`KNOWN_VERSIONS`.

Policy for the others, decided once here for both transports:

* older than :data:`OLDEST_SUPPORTED` (6.1): refused with
  :class:`~virtabstract.errors.BackendUnavailable` -- 6.0 and older have another Main
  API (no ``IGraphicsAdapter``, other guest-control calls) that nothing here handles;
* newer than :data:`NEWEST_KNOWN` (a 7.3, an 8.0): **used**, with the behaviour of the
  newest known version (:func:`behaviour_version`), and an
  :class:`UntestedVersionWarning` once per version and process (through :mod:`warnings`
  and the ``virtabstract.vbox`` logger). Refusing would break every user on the day
  VirtualBox ships a minor release that changes nothing this backend uses -- as 7.2 did
  not -- (the failure mode Vagrant's hard version check was known for); the warning
  says what is assumed, and ``warnings.simplefilter("error", UntestedVersionWarning)``
  turns it into a refusal where that is wanted (a CI run pinning versions). What can
  be read from the running VirtualBox itself is read there instead of assumed: the API
  transport decodes ``MachineState`` numbers of a newer version with the SDK's own
  constants (:meth:`~virtabstract_vbox._api.VBoxApi.state_name`), and VBoxManage
  prints states by name anyway.
"""

from __future__ import annotations

import logging
import threading
import warnings
from typing import Final

from virtabstract.errors import BackendUnavailable

from ._parse import VBoxVersion

__all__ = [
    "KNOWN_VERSIONS",
    "NEWEST_KNOWN",
    "OLDEST_SUPPORTED",
    "UntestedVersionWarning",
    "behaviour_version",
    "check_version",
    "is_newer_than_known",
]

log = logging.getLogger("virtabstract.vbox")

KNOWN_VERSIONS: Final[tuple[tuple[int, int], ...]] = ((6, 1), (7, 0), (7, 1), (7, 2))
"""The (major, minor) versions whose behaviour is modelled (a profile of each test fake)."""
OLDEST_SUPPORTED: Final[tuple[int, int]] = KNOWN_VERSIONS[0]
NEWEST_KNOWN: Final[tuple[int, int]] = KNOWN_VERSIONS[-1]

_warned: set[tuple[int, int]] = set()
_lock = threading.Lock()


class UntestedVersionWarning(UserWarning):
    """The running VirtualBox is newer than every version this backend knows."""


def _short(version: VBoxVersion | tuple[int, int]) -> tuple[int, int]:
    return version.short if isinstance(version, VBoxVersion) else (int(version[0]), int(version[1]))


def is_newer_than_known(version: VBoxVersion | tuple[int, int]) -> bool:
    """Whether *version* is newer than :data:`NEWEST_KNOWN` (its behaviour is assumed, not known)."""
    return _short(version) > NEWEST_KNOWN


def behaviour_version(version: VBoxVersion | tuple[int, int]) -> tuple[int, int]:
    """The ``(major, minor)`` whose behaviour the backend follows for *version*.

    The version itself up to :data:`NEWEST_KNOWN`; the newest known one beyond it
    (``8.0`` behaves as ``7.2``). Versions older than 6.1 are refused before this is asked.
    """
    short = _short(version)
    return NEWEST_KNOWN if short > NEWEST_KNOWN else short


def check_version(version: VBoxVersion, transport: str) -> tuple[int, int]:
    """Apply the version policy to a freshly connected VirtualBox; return its :func:`behaviour_version`.

    :raises BackendUnavailable: older than 6.1.
    """
    if version.short < OLDEST_SUPPORTED:
        raise BackendUnavailable(f"VirtualBox {version} is too old: the vbox backend needs 6.1 or later")
    if is_newer_than_known(version):
        _warn_once(version, transport)
    return behaviour_version(version)


def _warn_once(version: VBoxVersion, transport: str) -> None:
    with _lock:
        if version.short in _warned:
            return
    newest = ".".join(map(str, NEWEST_KNOWN))
    message = (
        f"VirtualBox {version} is newer than every version the vbox backend knows "
        f"(6.1 to {newest}); it is used with VirtualBox {newest}'s behaviour on the {transport} "
        "transport. Report what does not work; "
        "warnings.simplefilter('error', virtabstract_vbox.UntestedVersionWarning) refuses such versions instead."
    )
    try:
        warnings.warn(message, UntestedVersionWarning, stacklevel=4)
    except UntestedVersionWarning as exc:  # escalated to an error by a warnings filter: refuse, every time
        raise BackendUnavailable(f"refused (UntestedVersionWarning is an error here): {exc}") from exc
    with _lock:
        if version.short in _warned:
            return
        _warned.add(version.short)
    log.warning("%s", message)


def _reset_version_warnings() -> None:
    """Forget which versions were warned about (for tests that need a fresh process's state)."""
    with _lock:
        _warned.clear()
