"""Helpers shared by the esxi backend tests (importable by basename: the test dir is on sys.path)."""

from __future__ import annotations

from tests.infra.vcsim import VcsimInstance


def sim_url(sim: VcsimInstance, scheme: str = "esx", path: str = "/", **query: str) -> str:
    """The virtabstract URL of a running simulator (http unless it serves https)."""
    options = dict(query)
    if sim.protocol == "http":
        options.setdefault("protocol", "http")
    text = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{scheme}://{sim.username}:{sim.password}@{sim.host}:{sim.port}{path}" + (f"?{text}" if text else "")
