"""The one size parser of the library.

Memory and disk sizes are stored as whole MiB. Users may give an ``int``
(already MiB) or a string with a binary or decimal unit: ``"2GiB"``,
``"512 MiB"``, ``"1.5G"``, ``"20gb"``, ``"4096"`` (MiB). Decimal units
(``"GB"``) are treated as their binary counterparts, as every hypervisor UI does.
"""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

_FACTORS_MIB: dict[str, float] = {
    "": 1,
    "b": 1 / (1024 * 1024),
    "k": 1 / 1024,
    "m": 1,
    "g": 1024,
    "t": 1024 * 1024,
    "p": 1024 * 1024 * 1024,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgtp])i?b?)?\s*$", re.IGNORECASE)
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
    if byte_match:
        mib = int(byte_match.group(1)) / (1024 * 1024)
    else:
        match = _SIZE_RE.match(value)
        if not match:
            raise ValueError(f"{what} {value!r} is not a size like '2GiB', '512MiB' or an int of MiB")
        number, prefix = float(match.group(1)), (match.group(2) or "").lower()
        mib = number * _FACTORS_MIB[prefix]
    if mib <= 0:
        raise ValueError(f"{what} must be positive, got {value!r}")
    if abs(mib - round(mib)) > 1e-9:
        raise ValueError(f"{what} {value!r} is not a whole number of MiB")
    return round(mib)


def format_size(mib: int) -> str:
    """Render *mib* with the largest binary unit that keeps it whole (``2048`` → ``"2GiB"``)."""
    for unit, factor in (("TiB", 1024 * 1024), ("GiB", 1024)):
        if mib % factor == 0 and mib >= factor:
            return f"{mib // factor}{unit}"
    return f"{mib}MiB"
