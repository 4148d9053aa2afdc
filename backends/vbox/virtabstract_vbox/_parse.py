r"""Parsers for VBoxManage's output formats (one module, table-tested).

Formats handled (VirtualBox 6.1 to 7.x):

* ``showvminfo --machinereadable`` / ``snapshot list --machinereadable``: ``key=value``
  lines. Keys are bare or quoted (``"SATA Controller-0-0"="/x.vdi"``); string values
  are quoted with ``\\"`` and ``\\\\`` escaped (VBoxManageInfo.cpp
  ``outputMachineReadableString``); numbers are bare. Snapshot names and
  descriptions are printed with ``%ls``, *not* escaped, and may span lines.
* ``list vms`` / ``list runningvms``: ``"name" {uuid}`` (names not escaped).
* ``list ostypes``, ``list hostonlyifs``, ``list natnetworks``, ``list hostinfo``:
  blank-line separated ``Key: value`` records.
* ``list hdds``: the same records; :func:`parse_media` also reads each medium's
  ``In use by VMs:`` line and its indented continuation lines (one VM per line:
  ``name (UUID: …)``, then `` [snapshot (UUID: …)]`` for each snapshot using it).
* ``guestproperty enumerate``: 6.1 ``Name: k, value: v, timestamp: n, flags: f``;
  7.x (``handleEnumGuestProperty`` in VBoxManageGuestProp.cpp): ``%-*ls = '%ls'`` (the name
  padded to the longest, at most 48), padding, ``@ 2024-05-01T10:00:00.000Z`` (three
  fraction digits), then the flags after one space, bare: ``TRANSIENT, RDONLYGUEST``;
  sorted by name, values not escaped. A bracketed ``[flags]`` suffix is read too.
* ``--version``: ``7.2.4r170995`` (``%sr%u``; distribution builds add a publisher:
  ``6.1.50_Ubuntur161033``, ``7.0.14_rpmfusionr161095``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = [
    "GuestProperty",
    "MediumRecord",
    "ParseError",
    "SnapshotNode",
    "VBoxVersion",
    "parse_blocks",
    "parse_guestproperties",
    "parse_list_vms",
    "parse_machinereadable",
    "parse_media",
    "parse_snapshots",
    "parse_version",
]


class ParseError(ValueError):
    """Output that does not have the documented format."""


_RAW_KEYS = re.compile(r"^(?:Current)?Snapshot(?:Name|Description)(?:-[\d-]+)?$")


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read a backslash-escaped quoted string starting at ``text[start] == '"'``; return (value, end)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '"\\':
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise ParseError("unterminated quoted string")


def _lines(text: str) -> list[str]:
    r"""Split VBoxManage output on its line ends only (``\n``, ``\r\n``).

    ``str.splitlines`` also splits on U+2028, U+0085 and friends, which may appear inside a
    VM name or description and must come back unchanged.
    """
    return text.replace("\r\n", "\n").split("\n")


def parse_machinereadable(text: str) -> dict[str, str]:
    """Parse ``--machinereadable`` output into an ordered ``{key: value}`` dict (values unquoted).

    Lines without ``=`` (warnings, progress) are ignored. A quoted value that does
    not close on its line continues on the next lines (unescaped descriptions).
    """
    result: dict[str, str] = {}
    lines = _lines(text)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or "=" not in line:
            continue
        if line.startswith('"'):
            try:
                key, pos = _read_quoted(line, 0)
            except ParseError:
                continue
            if pos >= len(line) or line[pos] != "=":
                continue
            rest = line[pos + 1 :]
        else:
            key, _, rest = line.partition("=")
            key = key.strip()
        if not rest.startswith('"'):
            result[key] = rest.strip()
            continue
        if _RAW_KEYS.match(key):
            # Printed with %ls: no escaping. The value ends at the last quote of a line.
            body = rest[1:]
            while not body.endswith('"') and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            result[key] = body[:-1] if body.endswith('"') else body
            continue
        try:
            value, end = _read_quoted(rest, 0)
            if rest[end:].strip():
                raise ParseError("text after the closing quote")
        except ParseError:
            # Unescaped or multi-line value: join lines until one ends with a quote.
            body = rest[1:]
            while not body.endswith('"') and i < len(lines):
                body += "\n" + lines[i]
                i += 1
            value = body[:-1] if body.endswith('"') else body
        result[key] = value
    return result


_VM_LINE = re.compile(r'^"(.*)" \{([0-9a-fA-F-]{36})\}\s*$')


def parse_list_vms(text: str) -> list[tuple[str, str]]:
    """Parse ``list vms`` / ``list runningvms`` into ``[(name, uuid)]``; inaccessible VMs keep their marker name."""
    found: list[tuple[str, str]] = []
    unexpected: list[str] = []
    for line in _lines(text):
        match = _VM_LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2).lower()))
        elif line.strip() and not line.startswith("WARNING"):
            unexpected.append(line)  # e.g. the second half of a name holding a line break
    if unexpected and not found:
        raise ParseError(f"no VM line in 'list vms' output: {unexpected[0][:80]!r}")
    return found


def parse_blocks(text: str) -> list[dict[str, str]]:
    """Parse blank-line separated ``Key: value`` records (``list ostypes``, ``list hostonlyifs`` …).

    The key is everything before the first ``:``; lines without one (sub-headers,
    indented mappings) are ignored. Keys keep their case and inner spaces.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in _lines(text):
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        if line[:1].isspace() or ":" not in line:
            continue
        key, _, value = line.partition(":")
        if not value.strip() and key.strip().endswith(("Information", "Networks")):
            continue  # section headers such as "Host Information:" or "NAT Networks:"
        current.setdefault(key.strip(), value.strip())
    if current:
        blocks.append(current)
    return blocks


@dataclass(frozen=True)
class MediumRecord:
    """One hard disk as ``list hdds`` shows it (the API transport builds the same records)."""

    uuid: str
    parent: str
    """The parent medium's UUID; ``""`` for a base medium."""
    location: str
    users: tuple[tuple[str, str], ...] = ()
    """``(VM name, VM UUID)`` of every machine using the medium, in its current state or a snapshot."""


_MEDIUM_USER = re.compile(r"^\s*(.*?) \(UUID: ([0-9a-fA-F-]{36})\)")


def parse_media(text: str) -> list[MediumRecord]:
    """Parse ``list hdds`` into records, with every VM of the ``In use by VMs`` lines.

    :func:`parse_blocks` drops indented lines; here the continuation lines of ``In use by
    VMs`` (one more VM each) are read too. UUIDs come back lowercase.
    """
    records: list[MediumRecord] = []
    for block in _medium_blocks(text):
        fields = parse_blocks("\n".join(block))[0] if block else {}
        if "UUID" not in fields:
            continue
        users = [m.groups() for line in _user_lines(block) if (m := _MEDIUM_USER.match(line))]
        parent = fields.get("Parent UUID", "base")
        records.append(MediumRecord(
            uuid=fields["UUID"].lower(),
            parent="" if parent in ("", "base") else parent.lower(),
            location=fields.get("Location", ""),
            users=tuple((name, uuid.lower()) for name, uuid in users),
        ))  # fmt: skip
    return records


def _medium_blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = [[]]
    for line in _lines(text):
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return [b for b in blocks if b]


def _user_lines(block: list[str]) -> list[str]:
    """The ``In use by VMs:`` value and the indented lines continuing it."""
    found: list[str] = []
    for line in block:
        if line.startswith("In use by VMs:"):
            found.append(line[len("In use by VMs:") :])
        elif found and line[:1].isspace():
            found.append(line)
        elif found:
            break
    return found


@dataclass(frozen=True)
class VBoxVersion:
    """A VirtualBox version as printed by ``VBoxManage --version``."""

    major: int
    minor: int
    patch: int
    revision: str = ""
    suffix: str = ""

    @property
    def short(self) -> tuple[int, int]:
        """``(major, minor)``."""
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)(\S*?)(?:r(\d+))?\s*$")
"""``%sr%u`` of VBOX_VERSION_STRING (with any publisher suffix, which may itself hold an ``r``:
``_rpmfusion``) and the build revision (VBoxManage.cpp)."""


def parse_version(text: str) -> VBoxVersion:
    """Parse ``--version`` output; warning lines before the version are skipped."""
    for line in reversed(_lines(text.strip())):
        match = _VERSION.match(line.strip())
        if match:
            return VBoxVersion(
                int(match.group(1)), int(match.group(2)), int(match.group(3)), match.group(5) or "", match.group(4)
            )
    raise ParseError(f"not a VirtualBox version: {text.strip()[:80]!r}")


@dataclass(frozen=True)
class GuestProperty:
    """One guest property."""

    name: str
    value: str
    timestamp: str = ""
    flags: str = ""


_GP_61 = re.compile(r"^Name: (.*?), value: (.*), timestamp: (\d+), flags: ?(.*)$")
_GP_FLAGS = r"[A-Z][A-Z0-9_]*(?:, ?[A-Z][A-Z0-9_]*)*"
_GP_7 = re.compile(rf"^(/\S*)\s*=\s*'(.*)'(?:\s*@\s*(\S+))?(?:\s*\[(.*)\]|\s+({_GP_FLAGS}))?\s*$")


def parse_guestproperties(text: str) -> dict[str, GuestProperty]:
    """Parse ``guestproperty enumerate`` output of 6.1 or 7.x into ``{name: GuestProperty}``."""
    props: dict[str, GuestProperty] = {}
    for line in _lines(text):
        line = line.rstrip()
        match = _GP_61.match(line)
        if match:
            name, value, stamp, flags = match.groups()
        elif match := _GP_7.match(line):
            name, value, stamp, bracketed, bare = match.groups()
            flags = bracketed or bare
        else:
            continue
        props[name] = GuestProperty(name, value, stamp or "", (flags or "").strip())
    return props


@dataclass
class SnapshotNode:
    """A snapshot as read from the machine-readable keys."""

    name: str
    uuid: str
    path: str
    """The key suffix: ``""`` for the root, ``"-1"``, ``"-1-2"`` … for descendants."""
    description: str = ""
    parent_uuid: str | None = None
    children: list[str] = field(default_factory=list)
    is_current: bool = False


def parse_snapshots(info: dict[str, str]) -> list[SnapshotNode]:
    """Build the snapshot tree from ``SnapshotName[-i-j…]`` / ``SnapshotUUID…`` keys, parents first."""
    nodes: dict[str, SnapshotNode] = {}
    for key, value in info.items():
        if not key.startswith("SnapshotName"):
            continue
        suffix = key[len("SnapshotName") :]
        if suffix and not re.fullmatch(r"(?:-\d+)+", suffix):
            continue
        uuid = info.get("SnapshotUUID" + suffix, "").lower()
        if not uuid:
            continue
        nodes[suffix] = SnapshotNode(value, uuid, suffix, info.get("SnapshotDescription" + suffix, ""))
    current = info.get("CurrentSnapshotUUID", "").lower()
    ordered = sorted(nodes.values(), key=lambda n: (n.path.count("-"), [int(p) for p in n.path.split("-")[1:]]))
    for node in ordered:
        if node.path:
            parent = nodes.get(node.path.rsplit("-", 1)[0])
            if parent is not None:
                node.parent_uuid = parent.uuid
                parent.children.append(node.uuid)
        node.is_current = node.uuid == current
    return ordered
