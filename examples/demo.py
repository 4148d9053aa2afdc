"""The main job, end to end: create, start, snapshot, guest exec, list, revert, delete.

Runs on the embedded mock hypervisor by default; pass any URL to run it elsewhere::

    python examples/demo.py                   # mock://
    python examples/demo.py test:///default   # libvirt's test driver (needs virtabstract[kvm])
"""

from __future__ import annotations

import logging
import sys

import virtabstract
from virtabstract import Capability, Disk, Nic, PowerState, VMSpec
from virtabstract.errors import VirtAbstractError


def main(url: str) -> int:
    with virtabstract.connect(url) as hv:
        host = hv.host
        say(f"connected to {hv.url}: {host.hypervisor} {host.version} on {host.hostname} ({host.os_family})")
        spec = VMSpec(
            name="demo-web1",
            cpus=2,
            memory="2GiB",
            guest_os="ubuntu-22.04",
            disks=[Disk(size="20GiB")],
            nics=[Nic(network="default")],
            tags=["demo", "web"],
        )
        vm = hv.vms.create(spec)
        say(f"created {vm.name} id={vm.id}")
        try:
            vm.start()
            assert vm.state is PowerState.RUNNING
            say(f"started: {vm.state}")
            with_memory = hv.supports(Capability.SNAPSHOT_MEMORY)
            snap = vm.snapshots.create("clean", description="right after first boot", memory=with_memory)
            say(f"snapshot {snap.name!r} id={snap.id}")
            if hv.supports(Capability.GUEST_EXEC):
                guest = vm.guest.wait_ready(timeout=120)
                say(f"guest agent ready: {guest.agent} on {guest.os_name or guest.os_family}")
                result = vm.guest.exec(["uname", "-a"], timeout=30)
                say(f"guest exec uname -a -> exit {result.exit_code}: {result.stdout.strip()}")
                say(f"guest IP: {vm.wait_for_ip(timeout=120)}")
            plan = vm.reconfigure(cpus=4, dry_run=True)
            changes = ", ".join(f"{c.field} {c.old}->{c.new} ({c.mode})" for c in plan.changes)
            say(f"reconfigure cpus=4 would be: {changes}")
            say("inventory:")
            for info in hv.vms.list_info():
                say(f"  {info.name:<12} {info.state.value:<9} cpus={info.cpus} memory={info.memory_mib}MiB")
            snap.revert()
            say(f"reverted to {snap.name!r}: {vm.state}")
            result_of_stop = vm.shutdown(timeout=60, force=True)
            say(f"shut down ({result_of_stop.stage})")
        finally:
            if vm.state is not PowerState.STOPPED:
                vm.power_off()
            vm.delete(disks=True)
            say(f"deleted {spec.name}; {len(hv.vms)} VM(s) left")
    return 0


def say(message: str) -> None:
    sys.stdout.write(message + "\n")


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    try:
        sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "mock://"))
    except VirtAbstractError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(1)
