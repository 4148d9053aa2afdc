"""Secrets: a canary password given through the URL, connect options, the environment and the CLI's
configuration file never shows up anywhere a user or a log collector could read it.

Captured and scanned (``SecretScanner``: raw, URL-encoded, escaped and base64 forms) for every
channel: ``repr``/``str`` of every object the user gets (and of the backend's attributes), logs at
DEBUG (caplog *and* a logging.FileHandler on the root logger, so third-party loggers are included),
warnings, exception messages, ``args``, attributes and whole chained tracebacks of every error raised
in failing connects and failing operations, hook contexts seen by a plugin, the argv VBoxManage
received, and the CLI's stdout/stderr (``--debug`` too). Every scan is counted.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import virtabstract
from virtabstract import Hypervisor, PluginManager, VMSpec, hookimpl
from virtabstract.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    InvalidURL,
    VirtAbstractError,
)

from .conftest import sim_url
from .support import CANARY, REPO, SecretScanner, SoapProxy

Q = quote(CANARY, safe="")


# -- capture ------------------------------------------------------------------------------------------


class Capture:
    """DEBUG logs of every logger (caplog + a file handler on the root logger) and warnings."""

    def __init__(self, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
        self.caplog = caplog
        self.path = tmp_path / "debug.log"
        self.handler = logging.FileHandler(self.path, encoding="utf-8")
        self.handler.setLevel(logging.DEBUG)
        self.handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        self.warnings: list[warnings.WarningMessage] = []

    def texts(self) -> list[tuple[str, str]]:
        self.handler.flush()
        return [("caplog", self.caplog.text), ("log-file", self.path.read_text(encoding="utf-8"))]


@pytest.fixture
def capture(tmp_path: Path, caplog: pytest.LogCaptureFixture, scanner: SecretScanner) -> Iterator[Capture]:
    root = logging.getLogger()
    cap = Capture(tmp_path, caplog)
    old_level = root.level
    root.addHandler(cap.handler)
    root.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield cap
        cap.warnings = list(seen)
    root.removeHandler(cap.handler)
    root.setLevel(old_level)
    cap.handler.close()
    texts = cap.texts()
    assert any(text for _, text in texts), "nothing was logged at DEBUG: the capture is broken"
    scanner.check_all(texts, "debug-log")
    scanner.check("\n".join(str(w.message) for w in cap.warnings), "warnings")


class Audit:
    """A plugin that keeps every OperationContext it is shown."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def virtabstract_before_operation(self, context: Any) -> None:
        self.seen.append(repr(context))

    @hookimpl
    def virtabstract_after_operation(self, context: Any, result: Any, error: BaseException | None) -> None:
        self.seen.append(repr(context) + repr(result)[:2000] + repr(error))


def audited() -> tuple[PluginManager, Audit]:
    manager = PluginManager()
    audit = Audit()
    manager.register(audit, "reliability-audit")
    return manager, audit


def expect_error(scanner: SecretScanner, func: Callable[[], Any], error: type[BaseException], where: str) -> Any:
    with pytest.raises(error) as info:
        func()
    scanner.check_exception(info.value, where)
    return info.value


def scan_objects(scanner: SecretScanner, hv: Hypervisor) -> None:
    backend = hv.backend
    objects: list[Any] = [hv, hv.url, backend, backend.url, backend.credentials, hv.host, *hv.vms.list()]
    for obj in objects:
        scanner.check(repr(obj), "repr", type(obj).__name__)
        scanner.check(str(obj), "str", type(obj).__name__)
    for name, value in sorted(vars(backend).items()):
        scanner.check(f"{name}={value!r}", "repr", f"backend.{name}")
        inner = getattr(value, "__dict__", None)
        if isinstance(inner, dict):
            scanner.check(repr(inner), "repr", f"backend.{name}.__dict__")


def failing_operations(scanner: SecretScanner, hv: Hypervisor) -> None:
    expect_error(scanner, lambda: hv.vms.get("no-such-vm-anywhere"), virtabstract.errors.VMNotFound, "get")
    vm = hv.vms.list()[0]
    expect_error(scanner, lambda: vm.snapshots.get("no-such-snapshot"), virtabstract.errors.SnapshotNotFound, "snap")
    expect_error(scanner, lambda: hv.vms.create(VMSpec(name=vm.name)), virtabstract.errors.AlreadyExists, "exists")
    expect_error(scanner, lambda: vm.reconfigure(cpus=10**6), virtabstract.errors.SpecError, "spec")


# -- the mock --------------------------------------------------------------------------------------------


def _mock_session(hv: Hypervisor, scanner: SecretScanner) -> None:
    vm = hv.vms.create(VMSpec(name="secretive", memory=64))
    vm.start()
    vm.snapshots.create("s")
    hv.backend.faults.fail("power_off", error=virtabstract.errors.ConnectionLost)
    expect_error(scanner, vm.power_off, virtabstract.errors.ConnectionLost, "injected")
    hv.backend.faults.expire_session()
    vm.power_off()  # re-login path
    scan_objects(scanner, hv)
    failing_operations(scanner, hv)


@pytest.mark.parametrize("via", ["url", "option", "environment"])
def test_mock(via: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: Capture,
              scanner: SecretScanner) -> None:  # fmt: skip
    store = (tmp_path / "lab.json").as_posix()
    url, kwargs = f"mock://{store}", {}
    if via == "url":
        url = f"mock://admin:{Q}@{store}"
    elif via == "option":
        kwargs = {"username": "admin", "password": CANARY}
    else:
        monkeypatch.setenv("VIRTABSTRACT_USERNAME", "admin")
        monkeypatch.setenv("VIRTABSTRACT_PASSWORD", CANARY)
    manager, audit = audited()
    with virtabstract.connect(url, plugin_manager=manager, **kwargs) as hv:
        assert hv.backend.credentials.password is not None
        assert hv.backend.credentials.password.reveal() == CANARY  # it did arrive, masked
        _mock_session(hv, scanner)
    scanner.check_all([(f"hook-{i}", text) for i, text in enumerate(audit.seen)], "hook-context")
    bad = f"mock://admin:{Q}@{tmp_path.as_posix()}/no/such/dir/lab.json"
    expect_error(scanner, lambda: virtabstract.connect(bad, **kwargs), ConnectionFailed, "connect-missing-dir")
    expect_error(scanner, lambda: virtabstract.connect(f"mock://admin:{Q}@somehost/x.json"), InvalidURL, "host")
    expect_error(scanner, lambda: virtabstract.connect(url, bogus=1, **kwargs), InvalidURL, "unknown-option")
    expect_error(scanner, lambda: virtabstract.connect(f"mock://admin:{CANARY} x@[bad"), InvalidURL, "unparseable")


# -- ESXi on a simulator whose password *is* the canary -----------------------------------------------------


@pytest.fixture(scope="module")
def secret_sim(vcsim_ok: None) -> Iterator[Any]:
    from tests.infra.vcsim import run_vcsim

    with run_vcsim(model="vpx", vms=1, password=CANARY) as sim:
        yield sim


def _esxi_session(hv: Hypervisor, sim: Any, scanner: SecretScanner, name: str) -> None:
    from pyVim.connect import Disconnect, SmartConnect

    vm = hv.vms.create(VMSpec(name=name, memory=64))
    try:
        vm.start()
        session = hv.backend.session
        admin = SmartConnect(protocol="http", host=sim.host, port=sim.port, user=sim.username, pwd=sim.password)
        try:  # terminated session: the re-login sends the password again
            admin.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
        finally:
            Disconnect(admin)
        vm.power_off()
        expect_error(scanner, lambda: vm.guest.exec(["true"]), VirtAbstractError, "guest-exec")
        scan_objects(scanner, hv)
        scanner.check(repr(vars(session)), "repr", "session.__dict__")
        failing_operations(scanner, hv)
    finally:
        if vm.state is not virtabstract.PowerState.STOPPED:
            vm.power_off()
        vm.delete()


@pytest.mark.vcsim
@pytest.mark.parametrize("via", ["url", "option", "environment"])
def test_esxi(via: str, secret_sim: Any, monkeypatch: pytest.MonkeyPatch, capture: Capture,
              scanner: SecretScanner) -> None:  # fmt: skip
    url = sim_url(secret_sim, "vpx", password="").replace(":@", "@")
    kwargs: dict[str, Any] = {"guest_username": "root", "guest_password": CANARY}
    if via == "url":
        url = sim_url(secret_sim, "vpx")
    elif via == "option":
        kwargs["password"] = CANARY
    else:
        monkeypatch.setenv("VIRTABSTRACT_PASSWORD", CANARY)
    manager, audit = audited()
    with virtabstract.connect(url, plugin_manager=manager, **kwargs) as hv:
        _esxi_session(hv, secret_sim, scanner, f"secretive-{via}")
    scanner.check_all([(f"hook-{i}", text) for i, text in enumerate(audit.seen)], "hook-context")
    # failing connects: a refused login, an unreachable port, a dropped connection mid-session
    wrong_user = url.replace(f"{secret_sim.username}", "nobody", 1) if via == "url" else url
    bad_kwargs = dict(kwargs, username="nobody")
    expect_error(scanner, lambda: virtabstract.connect(wrong_user, **bad_kwargs), AuthenticationFailed, "login")
    dead = url.replace(f":{secret_sim.port}", ":1", 1)
    expect_error(scanner, lambda: virtabstract.connect(dead, **kwargs), ConnectionFailed, "unreachable")
    with SoapProxy(secret_sim.host, secret_sim.port) as proxy:
        proxied = url.replace(f"{secret_sim.host}:{secret_sim.port}", f"{proxy.host}:{proxy.port}", 1)
        with virtabstract.connect(proxied, **kwargs) as hv:
            proxy.add("*", "drop")
            expect_error(scanner, hv.vms.list_info, virtabstract.errors.ConnectionLost, "dropped")
            proxy.add("*", "status", status=503)
            expect_error(scanner, hv.vms.list_info, virtabstract.errors.ConnectionLost, "503")
            proxy.add("Login", "status", status=503)
            from pyVim.connect import Disconnect, SmartConnect

            admin = SmartConnect(protocol="http", host=secret_sim.host, port=secret_sim.port,
                                 user=secret_sim.username, pwd=secret_sim.password)  # fmt: skip
            try:
                session = hv.backend.session
                admin.content.sessionManager.TerminateSession([session.content.sessionManager.currentSession.key])
            finally:
                Disconnect(admin)
            expect_error(scanner, hv.vms.list_info, VirtAbstractError, "relogin-fails")


# -- VirtualBox: the guest password goes through --passwordfile ---------------------------------------------


def test_vbox_guest_password(tmp_path: Path, capture: Capture, scanner: SecretScanner) -> None:
    from .vbox_support import GUEST_USER, RecordedVBox, fake_available

    ok, why = fake_available()
    if not ok:
        pytest.skip(why)
    fake = RecordedVBox(tmp_path / "vbox", profile="7.1", guest_password=CANARY)
    manager, audit = audited()
    with fake.connect(inprocess=False, guest_username=GUEST_USER, guest_password=CANARY, plugin_manager=manager) as hv:
        vm = hv.vms.create(VMSpec(name="secretive", memory=64))
        vm.start()
        vm.guest.wait_ready()  # guest control needs the Additions at Userland (the fake boots through System)
        assert vm.guest.exec(["echo", "hi"]).stdout == "hi\n"  # the password reached the guest
        vm.guest.write_file("/tmp/x", b"x")
        expect_error(scanner, lambda: vm.guest.read_file("/tmp/none"), virtabstract.errors.GuestFileNotFound, "file")
        vm.reboot()
        scan_objects(scanner, hv)
        vm.power_off()
    bad = RecordedVBox(tmp_path / "vbox-bad", profile="7.1", guest_password="another")
    with bad.connect(inprocess=True, guest_password=CANARY) as hv:
        vm = hv.vms.create(VMSpec(name="refused", memory=64))
        vm.start()
        vm.guest.wait_ready()
        expect_error(scanner, lambda: vm.guest.exec(["true"]), VirtAbstractError, "guest-login-refused")
    scanner.check_all([(f"hook-{i}", text) for i, text in enumerate(audit.seen)], "hook-context")
    for f in (fake, bad):
        scanner.check(f.argv_log.read_text(), "vboxmanage-argv", str(f.root))
        assert f.read()["violations"] == []
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("virtabstract-vbox-*.pw")), "a password file was left"


# -- libvirt's test driver with authentication (when the kvm backend is there) -------------------------------

_AUTH_NODE = """<node>
  <auth><user password='{password}'>admin</user></auth>
  <domain type='test'><name>guarded</name><memory>65536</memory><vcpu>1</vcpu>
    <os><type arch='x86_64'>hvm</type></os></domain>
</node>
"""


@pytest.mark.parametrize("via", ["url", "option", "environment"])
def test_kvm_test_driver_with_auth(via: str, kvm_ok: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capture: Capture, scanner: SecretScanner) -> None:  # fmt: skip
    node = tmp_path / "node.xml"
    node.write_text(_AUTH_NODE.format(password=CANARY))
    url, kwargs = f"test://{node.as_posix()}", {"username": "admin"}
    if via == "url":
        url, kwargs = f"test://admin:{Q}@{node.as_posix()}", {}
    elif via == "option":
        kwargs["password"] = CANARY
    else:
        monkeypatch.setenv("VIRTABSTRACT_PASSWORD", CANARY)
    manager, audit = audited()
    with virtabstract.connect(url, plugin_manager=manager, **kwargs) as hv:
        assert [v.name for v in hv.vms.list_info()] == ["guarded"]
        vm = hv.vms.create(VMSpec(name="secretive", memory=64))
        vm.start()
        vm.power_off()
        scan_objects(scanner, hv)
        failing_operations(scanner, hv)
        vm.delete()
    scanner.check_all([(f"hook-{i}", text) for i, text in enumerate(audit.seen)], "hook-context")
    monkeypatch.delenv("VIRTABSTRACT_PASSWORD", raising=False)
    wrong = f"test://admin:{Q}x@{node.as_posix()}"
    expect_error(scanner, lambda: virtabstract.connect(wrong), AuthenticationFailed, "wrong-password")


# -- console passwords -----------------------------------------------------------------------------------------


def test_mock_console_passwords_are_generated_and_hidden(scanner: SecretScanner) -> None:
    with virtabstract.connect("mock://") as hv:
        consoles = [hv.vms.create(VMSpec(name=f"c{i}", memory=64, graphics=g)).console()
                    for i, g in enumerate(["vnc", "spice"] * 10)]  # fmt: skip
    passwords = [c.password.reveal() for c in consoles if c.password is not None]
    assert len(passwords) == len(consoles), "a console without a password"
    assert all(len(p) >= 8 for p in passwords) and len(set(passwords)) == len(passwords)
    scanner.secrets = (*scanner.secrets, *passwords)
    for console in consoles:
        scanner.check(repr(console), "repr", "ConsoleInfo")
        scanner.check(repr(virtabstract.to_dict(console)), "repr", "to_dict(ConsoleInfo)")


@pytest.mark.vcsim
def test_esxi_console_ticket_is_a_secret(vpx_sim: Any, scanner: SecretScanner) -> None:
    with virtabstract.connect(sim_url(vpx_sim, "vpx")) as hv:
        try:
            console = hv.vms.list()[0].console()
        except virtabstract.errors.UnsupportedOperation:
            pytest.skip("vcsim 0.24 has no AcquireTicket")
    assert console.password is not None and console.password.reveal()
    scanner.secrets = (*scanner.secrets, console.password.reveal())
    scanner.check(repr(console), "repr", "ConsoleInfo")


def test_vbox_console_has_a_password(tmp_path: Path) -> None:
    from .vbox_support import RecordedVBox, fake_available

    if not fake_available()[0]:
        pytest.skip(fake_available()[1])
    fake = RecordedVBox(tmp_path, profile="7.1")
    with fake.connect(inprocess=True) as hv:
        console = hv.vms.create(VMSpec(name="rdp", memory=64)).console()
    assert console.host in ("127.0.0.1", "::1")
    assert console.password is not None and console.password.reveal()


# -- the CLI -------------------------------------------------------------------------------------------------


def _cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("VIRTABSTRACT_")}
    full.update(PYTHONPATH=str(REPO), HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    full.update(env or {})
    proc = subprocess.run([sys.executable, "-m", "virtabstract", *args], capture_output=True, env=full,
                          timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL)  # fmt: skip
    return proc.returncode, proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")


def _config(tmp_path: Path, uri: str, mode: int, password: str = CANARY) -> Path:
    path = tmp_path / "home" / ".config" / "virtabstract" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'default_profile = "lab"\n[profiles.lab]\nuri = "{uri}"\nusername = "user"\n'
                    f'password = "{password}"\n')  # fmt: skip
    path.chmod(mode)
    return path


@pytest.mark.vcsim
def test_cli_against_vcsim(secret_sim: Any, tmp_path: Path, scanner: SecretScanner) -> None:
    plain = f"vpx://{secret_sim.username}@{secret_sim.host}:{secret_sim.port}/?protocol=http"
    with_pw = sim_url(secret_sim, "vpx")
    runs = {
        "uri": [("--uri", with_pw, "--debug", "vm", "list"), ("--uri", with_pw, "--debug", "vm", "show", "nope")],
        "env": [("--uri", plain, "--debug", "--json", "host", "info"), ("--uri", plain, "--debug", "vm", "start", "x")],
        "wrong": [("--uri", with_pw.replace(Q, "wrong" + Q), "--debug", "vm", "list")],
        "config": [("--debug", "vm", "list"), ("--debug", "--json", "vm", "show", "nope")],
    }
    codes: dict[str, list[int]] = {}
    for source, calls in runs.items():
        env = {"VIRTABSTRACT_PASSWORD": CANARY} if source == "env" else {}
        if source == "config":
            _config(tmp_path, plain, 0o600)
        for args in calls:
            code, output = _cli(tmp_path, *args, env=env)
            scanner.check(output, "cli-output", " ".join(args[-3:]))
            codes.setdefault(source, []).append(code)
    assert codes == {"uri": [0, 3], "env": [0, 3], "wrong": [7], "config": [0, 3]}, codes


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_cli_config_readable_by_others_is_refused(mode: int, tmp_path: Path, scanner: SecretScanner) -> None:
    lab = (tmp_path / "lab.json").as_posix()
    path = _config(tmp_path, f"mock://{lab}", mode)
    code, output = _cli(tmp_path, "--debug", "vm", "list")
    scanner.check(output, "cli-output", f"mode {mode:o}")
    assert code == 2 and "readable by others" in output and f"chmod 600 {path}" in output
    path.chmod(0o600)
    assert _cli(tmp_path, "vm", "list")[0] == 0
    path.write_text(f'default_profile = "lab"\n[profiles.lab]\nuri = "mock://{lab}"\n')  # no password: any mode
    path.chmod(mode)
    assert _cli(tmp_path, "vm", "list")[0] == 0
    assert stat.S_IMODE(path.stat().st_mode) == mode
