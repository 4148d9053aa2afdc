"""Fixtures: a fake VBoxManage (tests/backends/vbox/fake_vboxmanage.py) per test, per version profile."""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import virtabstract

FAKE = Path(__file__).with_name("fake_vboxmanage.py")
PROFILES = ("6.1", "7.0", "7.1")
GUEST_USER = "vagrant"
GUEST_PASSWORD = "s3cret-pw"


class FakeVBox:
    """A fake VBoxManage install: the wrapper executable and its JSON state."""

    def __init__(self, root: Path, profile: str) -> None:
        self.root = root
        self.profile = profile
        self.state_path = root / "state.json"
        folder = root / "VirtualBox VMs"
        folder.mkdir()
        self.write(
            {
                "profile": profile,
                "machine_folder": str(folder),
                "guest_username": GUEST_USER,
                "guest_password": GUEST_PASSWORD,
            }
        )
        self.exe = root / "VBoxManage"
        self.exe.write_text(f"#!/bin/sh\nVBOX_FAKE_STATE='{self.state_path}' exec '{sys.executable}' '{FAKE}' \"$@\"\n")
        self.exe.chmod(self.exe.stat().st_mode | stat.S_IXUSR)

    def read(self) -> dict[str, Any]:
        return json.loads(self.state_path.read_text())  # type: ignore[no-any-return]

    def write(self, state: dict[str, Any]) -> None:
        self.state_path.write_text(json.dumps(state))

    def update(self, func: Any) -> None:
        state = self.read()
        func(state)
        self.write(state)


def _site_path() -> str:
    import virtabstract as va

    return str(Path(va.__file__).parent.parent)


@pytest.fixture(params=PROFILES)
def fake_vbox(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeVBox:
    """A fake VBoxManage of each version profile."""
    # -S skips site-packages: give the fake the core on PYTHONPATH instead (it reuses the mock's guest).
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([_site_path(), os.environ.get("PYTHONPATH", "")]))
    return FakeVBox(tmp_path, request.param)


@pytest.fixture
def vbox_hv(fake_vbox: FakeVBox) -> Iterator[virtabstract.Hypervisor]:
    with virtabstract.connect(
        "vbox:///session?transport=vboxmanage",
        vboxmanage=str(fake_vbox.exe),
        guest_username=GUEST_USER,
        guest_password=GUEST_PASSWORD,
    ) as hv:
        yield hv
