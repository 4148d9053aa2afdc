"""Workload 1 (inventory) and 7 (scale curve): every VM's name, state, guest OS, CPUs, memory, UUID (and IP).

vSphere approaches (vcsim, https):

* ``virtabstract`` — ``hv.vms.list_summaries()`` on an open connection, the inventory API: id, name, state,
  guest OS, CPUs, memory and Tools' primary IP, the same fields as the raw approaches (its ContainerView is
  cached per session);
* ``raw PC 7 paths`` — the best raw pyVmomi approach: one ``RetrievePropertiesEx`` over a ContainerView with
  the 7 exact paths (view created and destroyed inside the timed region);
* ``raw PC va paths`` — the same with the 8 paths ``list_summaries`` asks for (``config.instanceUuid`` and
  ``runtime.connectionState`` instead of ``config.uuid``): the difference to ``virtabstract`` is the
  library's own cost, the difference to the 7 paths is the data;
* ``virtabstract list_info`` — the full :class:`VMInfo` records (devices, extraConfig…): what the
  inventory cost before ``list_summaries``, for comparison;
* ``raw naive walk`` — ``vm.name``, ``vm.runtime.powerState``… attribute by attribute (lazy fetches);
* ``libcloud`` — Apache Libcloud ``VSphereNodeDriver.list_nodes()``.

libvirt approaches (test driver in process, and inactive domains on qemu:///system through libvirtd):

* ``virtabstract`` — ``hv.vms.list_summaries()`` (VMSummary: name, UUID, state, vCPUs, memory, guest OS,
  tags, DHCP-leased IPs), warm: second and later listings on one connection. One ``getAllDomainStats`` plus
  ``listAllDomains(MANAGEDSAVE)`` when a domain is shut off (plus ``listAllNetworks`` and one lease call per
  network when a domain runs, on drivers with a lease API); guest OS and tags, and on the test driver
  vCPUs and memory (its stats lack them), come from the domain XML cached while events keep it fresh;
* ``virtabstract cold`` — the same on a new connection: every domain's XML is read and parsed once;
* ``raw listAll+info`` — ``listAllDomains()`` + ``info()`` per domain (name, UUID, state, vCPUs, memory);
* ``raw allDomainStats`` — one ``getAllDomainStats(STATE|VCPU|BALLOON)`` (complete only on the qemu
  driver: libvirt 9's test driver implements just the state group);
* ``raw stats+XMLDesc`` — the same record *plus the guest OS* (which only the XML has): state from
  ``getAllDomainStats`` and ``XMLDesc`` per domain parsed with ElementTree — the data virtabstract returns;
* ``libcloud`` — ``LibvirtNodeDriver(uri).list_nodes()``.
"""

from __future__ import annotations

import contextlib
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from ._common import (
    Approach,
    Check,
    Config,
    HttpCounter,
    LibvirtCounter,
    Row,
    Skip,
    WorkloadResult,
    importable,
    interleaved,
    require_backend,
    require_libvirtd,
)
from .fleets import qemu_fleet, smart_connect, test_node, va_url, vcsim_fleet

VSPHERE_PATHS = [
    "name",
    "runtime.powerState",
    "config.guestId",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.uuid",
    "guest.ipAddress",
]
LIBOSINFO_NS = "{http://libosinfo.org/xmlns/libvirt/domain/1.0}"
TARGET_RATIO = 1.25

VA = "virtabstract"
VA_COLD = "virtabstract cold"
VA_FULL = "virtabstract list_info"
RAW_PC = "raw PC 7 paths"
RAW_PC_VA = "raw PC va paths"
NAIVE = "raw naive walk"
LIBCLOUD = "libcloud"
RAW_INFO = "raw listAll+info"
RAW_STATS = "raw allDomainStats"
RAW_XML = "raw stats+XMLDesc"


# -- vSphere ------------------------------------------------------------------------------------------------


def pc_inventory(si: Any, paths: list[str]) -> list[dict[str, Any]]:
    """The best raw approach: ContainerView + one RetrievePropertiesEx (+ Continue…) with explicit paths."""
    from pyVmomi import vim, vmodl

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        q = vmodl.query.PropertyCollector
        spec = q.FilterSpec(
            objectSet=[
                q.ObjectSpec(
                    obj=view,
                    skip=True,
                    selectSet=[q.TraversalSpec(name="v", path="view", skip=False, type=vim.view.ContainerView)],
                )
            ],
            propSet=[q.PropertySpec(type=vim.VirtualMachine, pathSet=paths, all=False)],
        )
        pc = content.propertyCollector
        result = pc.RetrievePropertiesEx([spec], q.RetrieveOptions(maxObjects=1000))
        out: list[dict[str, Any]] = []
        while result is not None:
            out.extend({p.name: p.val for p in obj.propSet or ()} for obj in result.objects or ())
            if not result.token:
                break
            result = pc.ContinueRetrievePropertiesEx(result.token)
        return out
    finally:
        view.DestroyView()


def naive_inventory(si: Any) -> list[tuple[Any, ...]]:
    """What a first pyVmomi script does: attribute access, one lazy fetch per dotted step."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
    try:
        return [
            (
                vm.name,
                vm.runtime.powerState,
                vm.config.guestId,
                vm.config.hardware.numCPU,
                vm.config.hardware.memoryMB,
                vm.config.uuid,
                vm.guest.ipAddress,
            )
            for vm in view.view
        ]
    finally:
        view.DestroyView()


def vcsim_inventory(
    ns: list[int],
    config: Config,
    *,
    workload: str,
    scenario: str,
    rounds: int,
    naive_max: int,
    libcloud_max: int,
    extra: bool = True,
) -> tuple[list[Row], list[str]]:
    """Measure the vSphere approaches on a simulator with N VMs for each N; return rows and skip notes."""
    require_backend("esxi")
    from virtabstract_esxi._inventory import SUMMARY_PROPERTIES

    import virtabstract

    libcloud_why = importable("libcloud.compute.drivers.vsphere")
    rows: list[Row] = []
    skipped: list[str] = []
    counter = HttpCounter()
    for n in ns:
        config.log(f"{scenario}: starting vcsim with {n} VMs")
        with vcsim_fleet(n) as sim, contextlib.ExitStack() as stack:
            hv = stack.enter_context(virtabstract.connect(va_url(sim), username=sim.username, password=sim.password))
            si = smart_connect(sim)
            stack.callback(lambda si=si: _quiet(lambda: si.content.sessionManager.Logout()))
            found = len(hv.vms.list_summaries())
            if found != n:
                raise Skip(f"vcsim has {found} VMs, expected {n}")
            approaches = [
                Approach(VA, hv.vms.list_summaries, count=counter, ref=RAW_PC),
                Approach(RAW_PC, lambda si=si: pc_inventory(si, VSPHERE_PATHS), count=counter),
            ]
            if extra:
                approaches.append(
                    Approach(
                        RAW_PC_VA, lambda si=si: pc_inventory(si, list(SUMMARY_PROPERTIES)), count=counter, ref=RAW_PC
                    )
                )
                approaches.append(Approach(VA_FULL, hv.vms.list_info, rounds=2, count=counter, ref=RAW_PC))
            if n <= naive_max:
                approaches.append(
                    Approach(
                        NAIVE, lambda si=si: naive_inventory(si), rounds=max(1, rounds // 3), count=counter, ref=RAW_PC
                    )
                )
            else:
                skipped.append(f"{scenario} {NAIVE} N={n}: above {naive_max} VMs (≈11 ms/VM; too slow for this run)")
            if libcloud_why:
                skipped.append(f"{scenario} {LIBCLOUD}: {libcloud_why}")
            elif n <= libcloud_max:
                from libcloud.compute.drivers.vsphere import VSphereNodeDriver

                driver = VSphereNodeDriver(
                    sim.host, sim.username, sim.password, port=sim.port, ca_cert=str(sim.ca_cert)
                )
                approaches.append(
                    Approach(LIBCLOUD, driver.list_nodes, rounds=max(1, rounds // 2), count=counter, ref=RAW_PC)
                )
            rows += interleaved(approaches, rounds, workload=workload, scenario=scenario, n=n, config=config)
    return rows, skipped


def _quiet(func: Any) -> None:
    with contextlib.suppress(Exception):
        func()


# -- libvirt ------------------------------------------------------------------------------------------------


def raw_info(conn: Any) -> list[tuple[Any, ...]]:
    """listAllDomains + info() per domain."""
    out = []
    for dom in conn.listAllDomains(0):
        state, max_mem, _mem, vcpus, _cpu = dom.info()
        out.append((dom.name(), dom.UUIDString(), state, vcpus, max_mem // 1024))
    return out


def raw_stats(conn: Any) -> list[tuple[Any, ...]]:
    """One getAllDomainStats with the state, vCPU and balloon groups."""
    import libvirt

    groups = libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_BALLOON
    return [
        (dom.name(), dom.UUIDString(), st.get("state.state"), st.get("vcpu.maximum"), st.get("balloon.maximum"))
        for dom, st in conn.getAllDomainStats(groups, 0)
    ]


def raw_xml(conn: Any) -> list[tuple[Any, ...]]:
    """State from getAllDomainStats, everything else (guest OS included) from each domain's XML."""
    import libvirt

    out = []
    for dom, st in conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0):
        root = ET.fromstring(dom.XMLDesc(0))
        os_el = root.find(f"metadata/{LIBOSINFO_NS}libosinfo/{LIBOSINFO_NS}os")
        out.append(
            (
                root.findtext("name"),
                root.findtext("uuid"),
                st.get("state.state"),
                int(root.findtext("vcpu") or 0),
                int(root.findtext("memory") or 0) // 1024,
                os_el.get("id") if os_el is not None else None,
            )
        )
    return out


@contextlib.contextmanager
def _libvirt_target(kind: str, n: int) -> Iterator[str]:
    if kind == "test":
        with test_node(n) as uri:
            yield uri
    else:
        uri = require_libvirtd()
        with qemu_fleet(uri, n) as fleet_uri:
            yield fleet_uri


def libvirt_inventory(
    kind: str,
    ns: list[int],
    config: Config,
    *,
    workload: str,
    scenario: str,
    rounds: int,
    libcloud_max: int,
    extra: bool = True,
) -> tuple[list[Row], list[str]]:
    """Measure the libvirt approaches on the test driver (``kind="test"``) or qemu:///system (``"qemu"``)."""
    require_backend("kvm")
    import libvirt

    import virtabstract

    libcloud_why = importable("libcloud.compute.drivers.libvirt_driver")
    rows: list[Row] = []
    skipped: list[str] = []
    counter = LibvirtCounter()
    for n in ns:
        config.log(f"{scenario}: {n} domains")
        with _libvirt_target(kind, n) as uri, contextlib.ExitStack() as stack:
            hv = stack.enter_context(virtabstract.connect(uri))
            conn = libvirt.open(uri)
            stack.callback(conn.close)
            prefix_count = sum(1 for i in hv.vms.list_summaries() if i.name.startswith("vabench-"))
            if prefix_count != n:
                raise Skip(f"{uri} shows {prefix_count} benchmark domains, expected {n}")
            cold: dict[str, Any] = {}

            def open_cold(uri: str = uri, cold: dict[str, Any] = cold) -> None:
                cold["hv"] = virtabstract.connect(uri)

            def close_cold(cold: dict[str, Any] = cold) -> None:
                cold.pop("hv").close()

            stats_complete = kind != "test"
            approaches = [
                Approach(
                    VA,
                    hv.vms.list_summaries,
                    count=counter,
                    ref="best raw",
                    note="" if stats_complete else "vCPUs, memory, guest OS from the event-kept XML cache",
                ),
                Approach(RAW_INFO, lambda c=conn: raw_info(c), count=counter),
                Approach(
                    RAW_STATS,
                    lambda c=conn: raw_stats(c),
                    count=counter,
                    note="" if stats_complete else "state only on the test driver: not a complete record",
                ),
            ]
            if extra:
                approaches += [
                    Approach(
                        VA_COLD,
                        lambda cold=cold: cold["hv"].vms.list_summaries(),
                        prepare=open_cold,
                        cleanup=close_cold,
                        count=counter,
                        ref=RAW_XML,
                    ),
                    Approach(RAW_XML, lambda c=conn: raw_xml(c), count=counter),
                ]
            if libcloud_why:
                skipped.append(f"{scenario} {LIBCLOUD}: {libcloud_why}")
            elif n <= libcloud_max:
                from libcloud.compute.drivers.libvirt_driver import LibvirtNodeDriver

                driver = LibvirtNodeDriver(uri)
                approaches.append(
                    Approach(LIBCLOUD, driver.list_nodes, rounds=max(1, rounds // 3), count=counter, ref="best raw")
                )
            else:
                skipped.append(f"{scenario} {LIBCLOUD} N={n}: above {libcloud_max} domains (≈1 ms/domain)")
            measured = interleaved(approaches, rounds, workload=workload, scenario=scenario, n=n, config=config)
            best = _best_raw(measured, stats_complete)
            for row in measured:
                if row.ref == "best raw":
                    row.ref = best
            rows += measured
    return rows, skipped


def _best_raw(rows: list[Row], stats_complete: bool) -> str:
    """The fastest raw approach that returns a complete record (name, UUID, state, vCPUs, memory)."""
    candidates = [r for r in rows if r.approach == RAW_INFO or (r.approach == RAW_STATS and stats_complete)]
    return min(candidates, key=lambda r: r.median).approach


# -- the workload -----------------------------------------------------------------------------------------


def ratio_checks(result: WorkloadResult, approach: str, target: float, label: str) -> None:
    """One ≤ target check per (scenario, N) row of *approach* against its ref row."""
    for row in result.rows:
        if row.approach != approach or row.ref is None:
            continue
        ref = result.find(row.scenario, row.ref, row.n)
        if ref is None:
            continue
        ratio = result.ratio(row, ref)
        result.checks.append(
            Check(
                f"{label}: {row.scenario} N={row.n} {approach} vs {ref.approach}",
                f"{ratio:.2f}×",
                f"≤ {target}×",
                ratio <= target,
            )
        )


def run(config: Config) -> WorkloadResult:
    """Workload 1: inventory on vcsim (500/2000), the test driver and libvirtd (1000/5000)."""
    result = WorkloadResult("inventory")
    vs_ns = [200] if config.quick else [500, 2000]
    lv_ns = [300] if config.quick else [1000, 5000]
    parts = [
        (
            "vcsim",
            lambda: vcsim_inventory(
                vs_ns,
                config,
                workload="inventory",
                scenario="vcsim",
                rounds=config.reps(5, 2),
                naive_max=500 if config.quick else 2000,
                libcloud_max=2000,
            ),
        ),
        (
            "libvirt test",
            lambda: libvirt_inventory(
                "test",
                lv_ns,
                config,
                workload="inventory",
                scenario="libvirt test (in process)",
                rounds=config.reps(7, 2),
                libcloud_max=5000,
            ),
        ),
        (
            "libvirtd",
            lambda: libvirt_inventory(
                "qemu",
                lv_ns,
                config,
                workload="inventory",
                scenario="libvirtd qemu:///system",
                rounds=config.reps(5, 2),
                libcloud_max=5000,
            ),
        ),
    ]
    for name, part in parts:
        try:
            rows, skipped = part()
        except Skip as exc:
            result.skipped.append(f"{name}: {exc}")
            continue
        except Exception as exc:  # one broken scenario must not lose the others' rows
            traceback.print_exc()
            result.skipped.append(f"{name}: crashed: {type(exc).__name__}: {exc}")
            continue
        result.rows += rows
        result.skipped += skipped
    ratio_checks(result, VA, TARGET_RATIO, "inventory")
    for row in result.rows:
        if row.approach == VA and row.round_trips is not None:
            result.extra.setdefault("va_round_trips", {})[f"{row.scenario} N={row.n}"] = row.round_trips
    # Round trips independent of N: compare the smallest and largest N of each scenario.
    for scenario in sorted({r.scenario for r in result.rows}):
        va_rows = sorted(
            (r for r in result.rows if r.scenario == scenario and r.approach == VA), key=lambda r: r.n or 0
        )
        if len(va_rows) >= 2 and va_rows[0].round_trips is not None:
            first, last = va_rows[0], va_rows[-1]
            result.checks.append(
                Check(
                    f"inventory: {scenario} round trips independent of N",
                    f"{first.round_trips} @ {first.n} → {last.round_trips} @ {last.n}",
                    "equal",
                    first.round_trips == last.round_trips,
                )
            )
    return result
