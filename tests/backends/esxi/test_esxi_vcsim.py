"""The esxi backend against vcsim beyond the contract: TLS, sessions, raw pyVmomi cross-check, bulk start."""

from __future__ import annotations

import logging
import ssl
import threading
import warnings
from collections.abc import Iterator

import pytest
from esxi_support import sim_url

import virtabstract
from tests.infra.vcsim import VcsimInstance, make_test_ca, run_vcsim
from virtabstract import Hypervisor, PowerState, VMSpec
from virtabstract.errors import AuthenticationFailed, ConnectionFailed, InvalidURL, UnsupportedOperation, VMNotFound

pytestmark = pytest.mark.vcsim


@pytest.fixture
def esx(esx_sim: VcsimInstance) -> Iterator[Hypervisor]:
    with virtabstract.connect(sim_url(esx_sim, "esx")) as hv:
        yield hv


@pytest.fixture
def vpx(vpx_sim: VcsimInstance) -> Iterator[Hypervisor]:
    with virtabstract.connect(sim_url(vpx_sim, "vpx")) as hv:
        yield hv


def raw_connect(sim: VcsimInstance):
    from pyVim.connect import SmartConnect

    return SmartConnect(
        protocol=sim.protocol,
        host=sim.host,
        port=sim.port,
        user=sim.username,
        pwd=sim.password,
        sslContext=ssl.create_default_context(),
    )


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_sim(vcsim_ok: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VcsimInstance]:
    """https on 127.0.0.2 (pyVmomi exempts only localhost/127.0.0.1/::1 from verification)."""
    ca, cert, key = make_test_ca(tmp_path_factory.mktemp("pki"), host="127.0.0.2")
    with run_vcsim(model="esx", vms=1, tls=True, cert=cert, key=key, listen="127.0.0.2:0") as sim:
        sim.ca_cert = ca
        yield sim


def test_tls_verified_by_default(tls_sim: VcsimInstance) -> None:
    with pytest.raises(ConnectionFailed) as info:
        virtabstract.connect(sim_url(tls_sim, "esx"))
    message = str(info.value)
    assert "ca_file=" in message and "no_verify=1" in message, message
    assert tls_sim.password not in message
    assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


def test_tls_ca_file(tls_sim: VcsimInstance) -> None:
    with virtabstract.connect(sim_url(tls_sim, "esx", ca_file=str(tls_sim.ca_cert))) as hv:
        assert hv.host.hypervisor == "VMware ESXi"
        assert hv.backend.session.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_tls_no_verify_warns_once(tls_sim: VcsimInstance, caplog: pytest.LogCaptureFixture) -> None:
    from virtabstract_esxi import _session

    virtabstract._security._reset_insecure_warnings()  # once per process: start from a fresh state
    with warnings.catch_warnings(record=True) as seen, caplog.at_level(logging.WARNING, "virtabstract.esxi"):
        warnings.simplefilter("always")
        for _ in range(2):
            with virtabstract.connect(sim_url(tls_sim, "esx", no_verify="1")) as hv:
                assert hv.vms.list_info()
    ours = [w for w in seen if issubclass(w.category, _session.InsecureConnectionWarning)]
    assert len(ours) == 1, [str(w.message) for w in seen]
    assert sum("no_verify" in r.getMessage() for r in caplog.records) == 1


def test_tls_http_server_needs_explicit_protocol(esx_sim: VcsimInstance) -> None:
    url = f"esx://{esx_sim.username}:{esx_sim.password}@{esx_sim.host}:{esx_sim.port}/"
    with pytest.raises(ConnectionFailed) as info:
        virtabstract.connect(url)
    assert "protocol=http" in str(info.value)


def test_tls_contradicting_options(tls_sim: VcsimInstance) -> None:
    with pytest.raises(InvalidURL):
        virtabstract.connect(sim_url(tls_sim, "esx", no_verify="1", ca_file=str(tls_sim.ca_cert)))


def test_unknown_url_option(esx_sim: VcsimInstance) -> None:
    with pytest.raises(InvalidURL, match="verify_ssl"):
        virtabstract.connect(sim_url(esx_sim, "esx", verify_ssl="0"))


def test_wrong_password(esx_sim: VcsimInstance) -> None:
    url = f"esx://{esx_sim.username}:wrong-secret@{esx_sim.host}:{esx_sim.port}/?protocol=http"
    with pytest.raises(AuthenticationFailed) as info:
        virtabstract.connect(url)
    assert "wrong-secret" not in str(info.value)


# -- sessions ---------------------------------------------------------------------------------------


def test_relogin_after_terminate_session(esx: Hypervisor, esx_sim: VcsimInstance) -> None:
    before = esx.vms.list_info()
    session = esx.backend.session
    generation = session.generation
    admin = raw_connect(esx_sim)
    try:
        ours = session.content.sessionManager.currentSession.key
        admin.content.sessionManager.TerminateSession([ours])
    finally:
        from pyVim.connect import Disconnect

        Disconnect(admin)
    assert [v.id for v in esx.vms.list_info()] == [v.id for v in before]
    assert session.generation == generation + 1


def test_relogin_after_idle_timeout(vcsim_ok: None) -> None:
    import time

    with (
        run_vcsim(model="esx", vms=2, session_idle_timeout=1) as sim,
        virtabstract.connect(sim_url(sim, "esx")) as hv,
    ):
        vm = hv.vms.list()[0]
        generation = hv.backend.session.generation
        time.sleep(2.5)
        vm.power_off()  # state read, task, and task wait all go through the re-login wrapper
        assert vm.state is PowerState.STOPPED
        assert hv.backend.session.generation == generation + 1


def test_relogin_from_many_threads_logs_in_once(esx: Hypervisor, esx_sim: VcsimInstance) -> None:
    session = esx.backend.session
    generation = session.generation
    admin = raw_connect(esx_sim)
    try:
        admin.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
    finally:
        from pyVim.connect import Disconnect

        Disconnect(admin)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                assert esx.vms.list_info()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert session.generation == generation + 1


def test_close_logs_out(esx_sim: VcsimInstance) -> None:
    hv = virtabstract.connect(sim_url(esx_sim, "esx"))
    key = hv.backend.session.content.sessionManager.currentSession.key
    admin = raw_connect(esx_sim)
    try:
        hv.close()
        hv.close()  # idempotent
        active = {s.key for s in admin.content.sessionManager.sessionList}
        assert key not in active
    finally:
        from pyVim.connect import Disconnect

        Disconnect(admin)


# -- cross-check with raw pyVmomi -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["esx", "vpx"])
def test_cross_check_inventory_with_raw_pyvmomi(model: str, request: pytest.FixtureRequest) -> None:
    sim = request.getfixturevalue(f"{model}_sim")
    hv: Hypervisor = request.getfixturevalue(model)
    from pyVmomi import vim

    si = raw_connect(sim)
    try:
        view = si.content.viewManager.CreateContainerView(si.content.rootFolder, [vim.VirtualMachine], True)
        raw = {
            vm.config.instanceUuid: (vm.name, str(vm.runtime.powerState), vm.config.hardware.numCPU) for vm in view.view
        }
        view.DestroyView()
    finally:
        from pyVim.connect import Disconnect

        Disconnect(si)
    ours = {
        v.id: (v.name, {"running": "poweredOn", "stopped": "poweredOff", "suspended": "suspended"}[v.state], v.cpus)
        for v in hv.vms.list_info()
    }
    assert ours == raw


def test_cross_check_created_vm_with_raw_pyvmomi(vpx: Hypervisor, vpx_sim: VcsimInstance) -> None:
    from pyVmomi import vim

    vm = vpx.vms.create(
        VMSpec(
            name="va-xcheck",
            cpus=2,
            memory="256MiB",
            guest_os="debian-12",
            disks=[{"size": "64MiB"}],
            nics=[{"network": "VM Network", "model": "e1000e"}],
        )
    )
    try:
        si = raw_connect(vpx_sim)
        try:
            raw = si.content.searchIndex.FindByUuid(None, vm.id, True, True)
            assert raw is not None and raw.name == "va-xcheck"
            assert raw.config.guestId == "debian12_64Guest" or raw.config.guestId.startswith("debian")
            assert raw.config.hardware.numCPU == 2 and raw.config.hardware.memoryMB == 256
            devices = raw.config.hardware.device
            assert any(isinstance(d, vim.vm.device.VirtualE1000e) for d in devices)
            disk = next(d for d in devices if isinstance(d, vim.vm.device.VirtualDisk))
            assert disk.backing.thinProvisioned is True and disk.capacityInKB == 64 * 1024
            assert any(isinstance(d, vim.vm.device.ParaVirtualSCSIController) for d in devices)
            raw.PowerOnVM_Task()
        finally:
            from pyVim.connect import Disconnect

            Disconnect(si)
        assert vm.state is PowerState.RUNNING  # a change made outside is seen
    finally:
        if vm.state is not PowerState.STOPPED:
            vm.power_off()
        vm.delete()
    with pytest.raises(VMNotFound):
        vpx.vms.get(vm.id)


# -- bulk, ids, scopes, per-connection capabilities -------------------------------------------------


def test_start_many_issues_all_tasks_then_waits_once(vcsim_ok: None) -> None:
    with (
        run_vcsim(model="vpx", vms=4, autostart=False, method_delays_ms={"PowerOnVM_Task": 200}) as sim,
        virtabstract.connect(sim_url(sim, "vpx")) as hv,
    ):
        vms = hv.vms.list()
        progress: list[tuple[str, int]] = []
        hv.backend.progress = lambda task, pct: progress.append((task, pct))
        results = hv.start_many(vms)
        assert set(results) == {vm.id for vm in vms} and all(err is None for err in results.values())
        assert all(vm.state is PowerState.RUNNING for vm in vms)
        last = dict(progress)
        assert len(last) == len(vms) and all(p == 100 for p in last.values())
        again = hv.start_many(vms[:2])  # already running: per-VM InvalidState, not an exception
        assert all(type(err).__name__ == "InvalidState" for err in again.values())


def test_moref_ids_are_accepted(esx: Hypervisor) -> None:
    info = esx.vms.list_info()[0]
    moid = esx.backend.native_vm(info.id)._moId
    assert esx.vms.get(moid).id == info.id


def test_non_id_strings_cost_no_lookup(esx: Hypervisor) -> None:
    with pytest.raises(VMNotFound):
        esx.backend.get_vm("not-a-uuid")


def test_vpx_scope_path(vpx_sim: VcsimInstance) -> None:
    with virtabstract.connect(sim_url(vpx_sim, "vpx", path="/DC0/DC0_C0")) as hv:
        names = {v.name for v in hv.vms.list_info()}
        assert names and all(n.startswith("DC0_C0_") for n in names)
        topo = hv.backend.topology()
        assert topo.clusters == ("DC0_C0",) and len(topo.hosts) == 3
        created = hv.vms.create(VMSpec(name="va-scoped", memory=64))
        try:
            assert created.name in {v.name for v in hv.vms.list_info()}
        finally:
            created.delete()
    with pytest.raises(ConnectionFailed, match="NoSuchDC"):
        virtabstract.connect(sim_url(vpx_sim, "vpx", path="/NoSuchDC"))


def test_vsphere_alias(vpx_sim: VcsimInstance) -> None:
    with virtabstract.connect(sim_url(vpx_sim, "vsphere")) as hv:
        assert hv.host.hypervisor == "VMware vCenter Server"


def test_clone_on_esx_is_unsupported_with_reason(esx: Hypervisor) -> None:
    from virtabstract import Capability

    assert not esx.supports(Capability.CLONE)
    vm_id = esx.vms.list_info()[0].id
    with pytest.raises(UnsupportedOperation, match="needs vCenter"):
        esx.backend.clone_vm(vm_id, "x", linked=False, snapshot_id=None)


def test_guest_ip_addresses_from_guest_net(esx: Hypervisor) -> None:
    vm = esx.vms.list()[0]
    # vcsim's own hook: extraConfig SET.guest.ipAddress sets guest.net[0].ipAddress and guest.ipAddress.
    from pyVmomi import vim

    native = esx.backend.native_vm(vm.id)
    spec = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="SET.guest.ipAddress", value="10.0.0.7")])
    native.ReconfigVM_Task(spec)
    addresses = vm.guest.ip_addresses()
    assert "10.0.0.7" in [a.address for a in addresses]


def test_snapshot_tree_is_deep(vpx: Hypervisor) -> None:
    vm = vpx.vms.create(VMSpec(name="va-snaptree", memory=64))
    try:
        a = vm.snapshots.create("a")
        b = vm.snapshots.create("b")
        a.revert()
        c = vm.snapshots.create("c")  # second child of a
        d = vm.snapshots.create("d")
        tree = {s.id: s for s in vm.snapshots.list()}
        assert tree[a.id].info.children_ids == (b.id, c.id)
        assert tree[d.id].parent_id == c.id and tree[d.id].info.is_current
        c.delete(children=True)
        assert {s.id for s in vm.snapshots.list()} == {a.id, b.id}
        vpx.backend.delete_all_snapshots(vm.id)
        assert vm.snapshots.list() == []
    finally:
        vm.delete()


# -- round trips of the hot paths (issue 8) ---------------------------------------------------------


class _RoundTrips:
    """Counts HTTP requests (every pyVmomi SOAP call is one) while active."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import http.client

        self.count = 0
        self._lock = threading.Lock()
        original = http.client.HTTPConnection.request

        def request(conn: http.client.HTTPConnection, *args: object, **kwargs: object) -> object:
            with self._lock:
                self.count += 1
            return original(conn, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(http.client.HTTPConnection, "request", request)

    def take(self) -> int:
        with self._lock:
            count, self.count = self.count, 0
        return count


def test_hot_paths_round_trips(vcsim_ok: None, monkeypatch: pytest.MonkeyPatch) -> None:
    with (
        run_vcsim(model="vpx", vms=3, autostart=False) as sim,
        virtabstract.connect(sim_url(sim, "vpx")) as hv,
    ):
        infos = {i.id: i for i in hv.vms.list_info()}
        rts = _RoundTrips(monkeypatch)
        summaries = hv.vms.list_summaries()
        assert rts.take() == 1
        assert {s.id for s in summaries} == set(infos)
        for s in summaries:
            info = infos[s.id]
            assert (s.name, s.state, s.native_state, s.cpus, s.memory_mib, s.guest_os, s.guest_os_native) == (
                info.name,
                info.state,
                info.native_state,
                info.cpus,
                info.memory_mib,
                info.guest_os,
                info.guest_os_native,
            )
            assert s.tags == ()  # not in vSphere summaries (see SUMMARY_PROPERTIES)
        vms = [hv.vms.get(s.id) for s in summaries]
        vm = vms[0]
        rts.take()
        vm.start()
        assert rts.take() == 2  # PowerOnVM_Task + one look at the task (no state read first)
        with pytest.raises(virtabstract.errors.InvalidState) as excinfo:
            vm.start()
        assert excinfo.value.state is PowerState.RUNNING
        rts.take()
        snap = vm.snapshots.create("s1")
        assert rts.take() == 3  # the core's duplicate-name list + the task + one look (task and tree together)
        assert snap.name == "s1" and snap.info.is_current and snap.info.parent_id is None
        vm.power_off()
        assert rts.take() == 3  # state read (a suspended VM must not be powered off) + task + one look
        results = hv.start_many(vms)
        assert all(err is None for err in results.values())
        assert rts.take() == len(vms) + 1  # N PowerOnVM_Task + one look at every task
        again = hv.start_many(vms[:2])
        assert all(isinstance(e, virtabstract.errors.InvalidState) for e in again.values())
        assert all(
            e.state is PowerState.RUNNING for e in again.values() if isinstance(e, virtabstract.errors.InvalidState)
        )


def test_summaries_lean_reader_matches_pyvmomi_and_falls_back(esx: Hypervisor, monkeypatch: pytest.MonkeyPatch) -> None:
    from virtabstract_esxi import _inventory
    from virtabstract_esxi._lean import retrieve_scalars

    lean = esx.vms.list_summaries()
    # pyVmomi's path (the fallback) gives the very same summaries
    monkeypatch.setattr(_inventory, "retrieve_scalars", lambda *args: None)
    assert esx.vms.list_summaries() == lean
    monkeypatch.undo()
    # a non-scalar value (a device list) is not for the lean reader: it says so instead of guessing
    inventory = esx.backend._inventory
    session = esx.backend.session
    specs = inventory.view_specs("VirtualMachine", ["config.hardware.device"])()
    assert retrieve_scalars(session.stub, session.content.propertyCollector, specs, 100) is None
    specs = inventory.view_specs("VirtualMachine", ["name"])()
    names = retrieve_scalars(session.stub, session.content.propertyCollector, specs, 100)
    assert names is not None and sorted(p["name"] for _, p in names) == sorted(s.name for s in lean)


def test_summaries_after_terminate_session(esx: Hypervisor, esx_sim: VcsimInstance) -> None:
    before = esx.vms.list_summaries()
    session = esx.backend.session
    admin = raw_connect(esx_sim)
    try:
        admin.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
    finally:
        from pyVim.connect import Disconnect

        Disconnect(admin)
    assert esx.vms.list_summaries() == before
