"""The one size parser of the library.

Memory and disk sizes are stored as whole MiB. Users may give an ``int``
(already MiB) or a string with a binary or decimal unit: ``"2GiB"``,
``"512 MiB"``, ``"1.5G"``, ``"20gb"``, ``"4096"`` (MiB). Decimal units
(``"GB"``) are treated as their binary counterparts, as every hypervisor UI does. Spelled-out
units as hypervisor tools print them (``"2048 MBytes"``) are accepted too.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["format_size", "parse_size"]

_FACTORS_MIB: dict[str, Fraction] = {
    "": Fraction(1),
    "b": Fraction(1, 1024 * 1024),
    "k": Fraction(1, 1024),
    "m": Fraction(1),
    "g": Fraction(1024),
    "t": Fraction(1024 * 1024),
    "p": Fraction(1024 * 1024 * 1024),
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])(?:i?bytes?|i?b?))?\s*$", re.IGNORECASE)
_BYTES_RE = re.compile(r"^\s*(\d+)\s*(b|bytes?)\s*$", re.IGNORECASE)


def parse_size(value: int | str, *, what: str = "size") -> int:
    """Return *value* in whole MiB.

    :param value: an ``int`` of MiB, or a string such as ``"2GiB"`` or ``"512MiB"``.
    :param what: how to name the value in the error message.
    :raises ValueError: the value is not a positive size or is not a whole number of MiB.
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} must be an int of MiB or a string like '2GiB', not a bool")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError(f"{what} must be positive, got {value}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} must be an int of MiB or a string like '2GiB'")
    byte_match = _BYTES_RE.match(value)
    match = None if byte_match else _SIZE_RE.match(value)
    if not byte_match and not match:
        raise ValueError(f"{what} {value!r} is not a size like '2GiB', '512MiB' or an int of MiB")
    # Exact arithmetic: a float would silently change large values (2**53 + 1 MiB) and overflow on long ones.
    if byte_match:
        mib = Fraction(int(byte_match.group(1)), 1024 * 1024)
    else:
        assert match is not None
        mib = Fraction(match.group(1)) * _FACTORS_MIB[(match.group(2) or "").lower()]
    if mib <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    if mib.denominator != 1:
        raise ValueError(f"{what} {value!r} is not a whole number of MiB")
    return int(mib)


def format_size(mib: int) -> str:
    """Render *mib* with the largest binary unit that keeps it whole (``2048`` → ``"2GiB"``)."""
    for unit, factor in (("TiB", 1024 * 1024), ("GiB", 1024)):
        if mib % factor == 0 and mib >= factor:
            return f"{mib // factor}{unit}"
    return f"{mib}MiB"
