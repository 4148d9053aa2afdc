"""list_vms() costs a constant number of libvirt calls once the XML cache is warm, whatever the VM count."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

import virtabstract
from virtabstract import Capability, PowerState, VMSpec

pytest.importorskip("libvirt")


class Counting:
    """Wraps a virConnect and counts the calls made through it."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._conn, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return call


def test_list_vms_constant_calls_when_warm() -> None:
    with virtabstract.connect("test:///default") as hv:
        assert hv.supports(Capability.EVENTS)
        created = [hv.vms.create(VMSpec(name=f"vatest-inv-{i}")) for i in range(20)]
        try:
            lc = hv.backend.lc  # type: ignore[attr-defined]
            first = hv.vms.list_info()
            counting = Counting(lc.conn)
            lc.conn = counting
            second = hv.vms.list_info()
            lc.conn = counting._conn
            assert [v.id for v in first] == [v.id for v in second]
            assert sum(counting.calls.values()) <= 3, counting.calls  # stats + autostart set + managed-save set
            states = {v.name: v.state for v in second}
            assert states["test"] is PowerState.RUNNING
            # a change through the backend drops that VM's cached XML
            created[0].reconfigure(description="changed")
            assert {v.name: v.description for v in hv.vms.list_info()}["vatest-inv-0"] == "changed"
        finally:
            for vm in created:
                vm.delete()


def test_duplicate_names_are_refused() -> None:
    with virtabstract.connect("test:///default") as hv:
        vm = hv.vms.create(VMSpec(name="vatest-dup"))
        try:
            with pytest.raises(virtabstract.errors.AlreadyExists):
                hv.vms.create(VMSpec(name="vatest-dup"))
        finally:
            vm.delete()


def test_events_are_delivered() -> None:
    import threading

    with virtabstract.connect("test:///default") as hv:
        vm = hv.vms.create(VMSpec(name="vatest-events"))
        seen: list[tuple[str, PowerState, str]] = []
        got = threading.Event()

        def callback(vm_id: str, state: PowerState, native: str) -> None:
            seen.append((vm_id, state, native))
            if native.startswith("stopped:"):
                got.set()

        unsubscribe = hv.backend.subscribe_events(callback)
        try:
            vm.start()
            vm.power_off()
            assert got.wait(10), seen
            assert (vm.id, PowerState.RUNNING, "started:booted") in seen
            assert (vm.id, PowerState.STOPPED, "stopped:destroyed") in seen
        finally:
            unsubscribe()
            vm.delete()


def test_wrong_password_is_authentication_failed(tmp_path: Any) -> None:
    node = tmp_path / "node.xml"
    node.write_text("<node><auth><user password='s3cret'>alice</user></auth></node>")
    with pytest.raises(virtabstract.errors.AuthenticationFailed) as info:
        virtabstract.connect(f"test://{node}", username="alice", password="Zq9-not-it")
    assert "Zq9-not-it" not in str(info.value)
    with virtabstract.connect(f"test://{node}", username="alice", password="s3cret") as hv:
        assert hv.host.hypervisor == "TEST"
    with pytest.raises(virtabstract.errors.AuthenticationFailed):
        virtabstract.connect(f"test://{node}")


def test_unreachable_host_is_connection_failed() -> None:
    with pytest.raises(virtabstract.errors.ConnectionFailed):
        virtabstract.connect("qemu+tcp://127.0.0.1:1/system", keepalive="0")
