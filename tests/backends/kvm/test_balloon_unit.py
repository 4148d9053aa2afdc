"""Live memory changes are planned only when the guest's balloon driver answers (fakes, no libvirt daemon)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("libvirt", reason="libvirt-python is not installed")

from virtabstract_kvm import _devices

from virtabstract.errors import BackendError


class FakeLC:
    def __init__(self, *, is_test: bool = False) -> None:
        self.is_test = is_test

    def read(self, _what: str, func: Callable[[Any], Any]) -> Any:
        return func(None)


class FakeDom:
    def __init__(self, stats: dict[str, int] | Exception) -> None:
        self.stats = stats

    def memoryStats(self) -> dict[str, int]:
        if isinstance(self.stats, Exception):
            raise self.stats
        return self.stats


class FakeBackend:
    def __init__(self, *, is_test: bool = False) -> None:
        self.lc = FakeLC(is_test=is_test)


@pytest.mark.parametrize(
    ("stats", "active"),
    [
        ({"actual": 131072, "rss": 246360}, False),  # QEMU alone: no guest driver
        ({"actual": 131072, "last_update": 0, "rss": 246360}, False),  # stats polled, never answered
        ({"actual": 131072, "last_update": 1795679487, "rss": 1}, True),
        ({"actual": 131072, "unused": 50000, "available": 120000}, True),
        (BackendError("no statistics"), False),
    ],
)
def test_balloon_active(stats: dict[str, int] | Exception, active: bool) -> None:
    assert _devices.balloon_active(FakeBackend(), FakeDom(stats)) is active  # type: ignore[arg-type]


def test_balloon_active_on_test_driver() -> None:
    assert _devices.balloon_active(FakeBackend(is_test=True), FakeDom({})) is True  # type: ignore[arg-type]
