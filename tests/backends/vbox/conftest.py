"""Fixtures: a fake VBoxManage (tests/backends/vbox/fake_vboxmanage.py) per test, per version profile.

``vbox_hv`` runs the fake through its wrapper script (a real child process per call, the
production subprocess path); ``FakeVBox.runner()`` gives the same fake in-process for the
transport's ``vboxmanage_runner`` seam (same argv, streams, exit status and state file), which
the contract suite uses. ``fake_com`` / ``api_hv``: the fake vboxapi/COM layer and a connection
on the API transport over it.
"""

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
PROFILES = ("6.1", "7.0", "7.1", "7.2")
"""Every VirtualBox version both fakes model (``VERSIONS`` of each); every profile-parametrised test runs on each."""
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

    def runner(self) -> Any:
        """The same fake as a ``vboxmanage_runner`` (in-process: no child process per call)."""
        from .fake_vboxmanage import InProcessRunner

        return InProcessRunner(self.state_path)

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


@pytest.fixture(params=PROFILES)
def fake_com(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """A fake vboxapi module (tests/backends/vbox/fake_com) of each version profile; ``.server`` is its VBoxSVC."""
    from .fake_com import make_vboxapi

    folder = tmp_path / "VirtualBox VMs"
    folder.mkdir()
    return make_vboxapi(request.param, str(folder))


@pytest.fixture
def api_hv(fake_com: Any) -> Iterator[virtabstract.Hypervisor]:
    """A connection on the API transport over the fake COM layer."""
    with virtabstract.connect("vbox:///session?transport=api", vboxapi_module=fake_com) as hv:
        yield hv
    assert fake_com.server.locked_sessions() == [], "a session was left locked"
