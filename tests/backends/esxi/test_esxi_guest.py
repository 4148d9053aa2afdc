"""Guest operations (VMware Tools) and the task waiter against fake vSphere service objects.

vcsim 0.24 implements no guest process operations and only Docker-backed file transfers,
so ``GuestOps`` is verified here against a fake GuestOperationsManager that follows
VMware's documented semantics: StartProgramInGuest returns a pid and runs the command
line through the guest shell (redirections work), ListProcessesInGuest reports endTime and
exitCode once the process ended, CreateTemporaryFileInGuest returns a new path, file
transfers go through URLs (``*`` stands for the host). Not verified against real Tools.
"""

from __future__ import annotations

import shlex
import ssl
import subprocess
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("pyVmomi")
from pyVmomi import vim
from virtabstract_esxi._guest import (
    GuestCredentials,
    GuestOps,
    guest_info_from_props,
    ip_addresses_from_net,
    windows_command_line,
)

from virtabstract import ManualClock, OSFamily, Secret
from virtabstract.errors import GuestAgentUnavailable, OperationTimeout, UsageError


class FakeGuest:
    """An in-memory guest: files, and processes that run a tiny interpreter of our command lines."""

    def __init__(self, windows: bool = False) -> None:
        self.files: dict[str, bytes] = {}
        self.windows = windows
        self.started: list[Any] = []
        self.auth_seen: list[Any] = []
        self.processes: dict[int, Any] = {}
        self.polls_until_done = 2
        self.counter = 0
        self.deleted: list[str] = []

    # FileManager
    def CreateTemporaryFileInGuest(self, vm: Any, auth: Any, prefix: str, suffix: str, directory: Any) -> str:
        self.auth_seen.append(auth)
        self.counter += 1
        path = (r"C:\Temp\\" if self.windows else "/tmp/") + f"{prefix}{self.counter}{suffix}"
        self.files[path] = b""
        return path

    def InitiateFileTransferFromGuest(self, vm: Any, auth: Any, path: str) -> Any:
        if path not in self.files:
            raise vim.fault.FileNotFound(file=path)
        return SimpleNamespace(url=f"https://*:443/guestFile?id=1&path={path}", size=len(self.files[path]))

    def InitiateFileTransferToGuest(self, vm, auth, path, attributes, size, overwrite):
        return f"https://*/guestFile?id=2&path={path}"

    def DeleteFileInGuest(self, vm: Any, auth: Any, path: str) -> None:
        self.deleted.append(path)
        self.files.pop(path, None)

    # ProcessManager
    def StartProgramInGuest(self, vm: Any, auth: Any, spec: Any) -> int:
        self.started.append(spec)
        pid = 100 + len(self.started)
        self.processes[pid] = SimpleNamespace(pid=pid, polls=0, spec=spec)
        self._run(spec)
        return pid

    def _run(self, spec: Any) -> None:
        """Interpret 'cmd args >out 2>err <in' the way the guest shell would, for echo/cat/false."""
        if self.windows:
            return
        line = spec.arguments
        parts = shlex.split(line)
        redirect = {
            p[:2] if p.startswith("2>") else p[0]: p.lstrip("2><") for p in parts if p[0] in "<>" or p.startswith("2>")
        }
        argv = [p for p in parts if not (p[0] in "<>" or p.startswith("2>"))]
        added = []  # /usr/bin/env NAME=VALUE … adds to the environment
        while argv and "=" in argv[0]:
            added.append(argv.pop(0))
        stdin = self.files.get(redirect.get("<", ""), b"")
        code, out, err = 0, b"", b""
        if argv[0] == "echo":
            out = (" ".join(argv[1:]) + "\n").encode()
        elif argv[0] == "cat":
            out = stdin
        elif argv[0] == "env":
            out = "\n".join([*(spec.envVariables or []), *added]).encode()
        else:
            code, err = 127, f"{argv[0]}: not found\n".encode()
        self.files[redirect[">"]] = out
        self.files[redirect["2>"]] = err
        self.exit_code = code

    def ListProcessesInGuest(self, vm: Any, auth: Any, pids: list[int]) -> list[Any]:
        found = []
        for pid in pids:
            proc = self.processes[pid]
            proc.polls += 1
            done = proc.polls >= self.polls_until_done
            found.append(
                SimpleNamespace(pid=pid, endTime="t" if done else None, exitCode=self.exit_code if done else None)
            )
        return found

    def TerminateProcessInGuest(self, vm: Any, auth: Any, pid: int) -> None:
        self.terminated = pid

    # transfers (the HTTP side)
    def opener(self, request: urllib.request.Request, context: ssl.SSLContext) -> bytes:
        self.last_url = request.full_url
        self.last_context = context
        path = request.full_url.split("path=", 1)[1]
        if request.get_method() == "PUT":
            self.files[path] = request.data  # type: ignore[assignment]
            return b""
        return self.files[path]


@pytest.fixture
def guest() -> FakeGuest:
    return FakeGuest()


def make_ops(guest: FakeGuest, credentials: GuestCredentials | None = None) -> GuestOps:
    content = SimpleNamespace(guestOperationsManager=SimpleNamespace(processManager=guest, fileManager=guest))
    creds = credentials or GuestCredentials("root", Secret("s3cret"))
    return GuestOps(
        content, lambda f: f(), "esx1.example", ssl.create_default_context(), creds, ManualClock(), opener=guest.opener
    )


def test_exec_returns_exit_code_stdout_stderr_and_cleans_up(guest: FakeGuest) -> None:
    ops = make_ops(guest)
    result = ops.exec("vm", ["echo", "hello world"], family=OSFamily.LINUX, stdin=None, timeout=30, env={})
    assert (result.exit_code, result.stdout, result.stderr) == (0, "hello world\n", "")
    spec = guest.started[0]
    assert spec.programPath == "/usr/bin/env"
    assert "'hello world'" in spec.arguments and "</dev/null" in spec.arguments
    assert sorted(guest.deleted) == ["/tmp/va-1.out", "/tmp/va-2.err"]
    assert guest.last_url.startswith("https://esx1.example:443/")  # '*' replaced by the server host
    assert guest.auth_seen[0].password == "s3cret" and guest.auth_seen[0].interactiveSession is False


def test_exec_failure_and_stdin_and_env(guest: FakeGuest) -> None:
    ops = make_ops(guest)
    bad = ops.exec("vm", ["nosuch"], family=OSFamily.LINUX, stdin=None, timeout=30, env={})
    assert bad.exit_code == 127 and "not found" in bad.stderr
    fed = ops.exec("vm", ["cat"], family=OSFamily.LINUX, stdin=b"data\x00\xff", timeout=30, env={})
    assert fed.stdout.encode("utf-8", "replace").startswith(b"data")
    env = ops.exec("vm", ["env"], family=OSFamily.LINUX, stdin=None, timeout=30, env={"A": "1"})
    assert env.stdout == "A=1"


def test_exec_timeout_terminates(guest: FakeGuest) -> None:
    guest.polls_until_done = 10**9
    ops = make_ops(guest)
    with pytest.raises(OperationTimeout):
        ops.exec("vm", ["echo", "x"], family=OSFamily.LINUX, stdin=None, timeout=5, env={})
    assert guest.terminated == 101
    assert len(guest.deleted) == 2  # temp files still cleaned up


def test_windows_goes_through_cmd() -> None:
    guest = FakeGuest(windows=True)
    guest.exit_code = 0
    ops = make_ops(guest)
    ops.exec("vm", ["dir", "C:\\Program Files"], family=OSFamily.WINDOWS, stdin=None, timeout=30, env={})
    spec = guest.started[0]
    assert spec.programPath.lower().endswith("cmd.exe")
    # arguments are caret-escaped for cmd.exe (^" opens no quoted region); the program keeps plain quotes
    assert spec.arguments.startswith('/c "dir ^"C:\\Program Files^" >"')
    assert windows_command_line(["a b"], "o", "e", "i") == '/c ""a b" >"o" 2>"e" <"i""'
    assert subprocess.list2cmdline(["a b"]) == '"a b"'


def test_file_round_trip(guest: FakeGuest) -> None:
    ops = make_ops(guest)
    ops.write_file("vm", "/etc/motd", b"\x00\x01binary")
    assert ops.read_file("vm", "/etc/motd") == b"\x00\x01binary"
    assert guest.last_context.verify_mode == ssl.CERT_REQUIRED


def test_missing_file_maps_to_guest_file_not_found(guest: FakeGuest) -> None:
    from virtabstract_esxi._faults import map_vim_faults

    from virtabstract.errors import GuestFileNotFound

    ops = make_ops(guest)
    with pytest.raises(GuestFileNotFound), map_vim_faults("guest_read_file", "VM x"):
        ops.read_file("vm", "/nope")


def test_credentials_from_options_env_and_never_shown() -> None:
    creds = GuestCredentials.resolve({"guest_username": "u", "guest_password": "pw"}, {})
    assert creds is not None and creds.password.reveal() == "pw" and "pw" not in repr(creds)
    env = GuestCredentials.resolve({}, {"VIRTABSTRACT_GUEST_USERNAME": "e", "VIRTABSTRACT_GUEST_PASSWORD": "x"})
    assert env is not None and env.username == "e"
    assert GuestCredentials.resolve({}, {}) is None
    content = SimpleNamespace(guestOperationsManager=SimpleNamespace(processManager=None, fileManager=None))
    ops = GuestOps(content, lambda f: f(), "h", ssl.create_default_context(), None, ManualClock())
    with pytest.raises(UsageError, match="guest_username"):
        ops.read_file("vm", "/x")


def test_guest_info_requires_running_tools() -> None:
    with pytest.raises(GuestAgentUnavailable):
        guest_info_from_props({"runtime.powerState": "poweredOff"})
    with pytest.raises(GuestAgentUnavailable, match="guestToolsNotRunning"):
        guest_info_from_props({"runtime.powerState": "poweredOn", "guest.toolsRunningStatus": "guestToolsNotRunning"})
    info = guest_info_from_props(
        {
            "runtime.powerState": "poweredOn",
            "guest.toolsRunningStatus": "guestToolsRunning",
            "guest.toolsVersion": "12352",
            "guest.guestFamily": "linuxGuest",
            "guest.guestFullName": "Ubuntu Linux (64-bit)",
            "guest.hostName": "web1",
        }
    )
    assert (info.agent, info.os_family, info.hostname) == ("vmware-tools", OSFamily.LINUX, "web1")


def test_ip_addresses_from_guest_net() -> None:
    net = [
        vim.vm.GuestInfo.NicInfo(
            macAddress="00:50:56:AA:00:01",
            network="VM Network",
            ipConfig=vim.net.IpConfigInfo(
                ipAddress=[
                    vim.net.IpConfigInfo.IpAddress(ipAddress="fe80::1", prefixLength=64),
                    vim.net.IpConfigInfo.IpAddress(ipAddress="10.0.0.5", prefixLength=24),
                ]
            ),
        ),
        vim.vm.GuestInfo.NicInfo(macAddress="00:50:56:aa:00:02", ipAddress=["192.168.1.9"]),
    ]
    found = ip_addresses_from_net(net, "10.0.0.5")
    assert found[0].address == "10.0.0.5"
    assert {(a.address, a.prefix, a.mac) for a in found} == {
        ("fe80::1", 64, "00:50:56:aa:00:01"),
        ("10.0.0.5", 24, "00:50:56:aa:00:01"),
        ("192.168.1.9", None, "00:50:56:aa:00:02"),
    }


# -- the task waiter -------------------------------------------------------------------------------


class FakeCollector:
    """A PropertyCollector whose WaitForUpdatesEx delivers scripted task changes."""

    def __init__(
        self,
        script: list[list[tuple[str, str, Any]]],
        clock: ManualClock,
        first: list[tuple[str, str, Any]] | None = None,
    ) -> None:
        self.script = script
        self.clock = clock
        self.first = first or []
        self.reads = 0
        self.waits: list[int] = []
        self.created = 0
        self.filters_destroyed = 0
        self.destroyed = False

    def RetrievePropertiesEx(self, specs: list[Any], options: Any) -> Any:
        """The first look: every task's state in one call (scripted by *first*)."""
        self.reads += 1
        objs: dict[str, list[Any]] = {}
        for task, name, val in self.first:
            objs.setdefault(task, []).append(SimpleNamespace(name=name, val=val))
        return SimpleNamespace(
            objects=[SimpleNamespace(obj=vim.Task(t), propSet=c) for t, c in objs.items()], token=None
        )

    def CreatePropertyCollector(self) -> FakeCollector:
        self.created += 1
        return self

    def CreateFilter(self, spec: Any, partial: bool) -> Any:
        self.filtered = [o.obj._moId for o in spec.objectSet]
        return SimpleNamespace(DestroyPropertyFilter=self._destroy_filter)

    def _destroy_filter(self) -> None:
        self.filters_destroyed += 1

    def WaitForUpdatesEx(self, version: str, options: Any) -> Any:
        self.waits.append(options.maxWaitSeconds)
        if not self.script:
            self.clock.advance(options.maxWaitSeconds)
            return None
        changes = self.script.pop(0)
        objs = {}
        for task, name, val in changes:
            objs.setdefault(task, []).append(SimpleNamespace(name=name, val=val))
        object_set = [SimpleNamespace(obj=vim.Task(t), changeSet=c) for t, c in objs.items()]
        return SimpleNamespace(version="v", filterSet=[SimpleNamespace(objectSet=object_set)])

    def DestroyPropertyCollector(self) -> None:
        self.destroyed = True


def _session(collector: FakeCollector) -> Any:
    return SimpleNamespace(content=SimpleNamespace(propertyCollector=collector), call=lambda f: f(), generation=1)


def test_wait_for_tasks_progress_results_and_errors() -> None:
    from virtabstract_esxi._tasks import wait_for_task, wait_for_tasks

    clock = ManualClock()
    collector = FakeCollector(
        [
            [("task-1", "info.state", "running"), ("task-1", "info.progress", 40), ("task-2", "info.state", "running")],
            [("task-1", "info.state", "success"), ("task-1", "info.result", "vm-9")],
            [("task-2", "info.state", "error"), ("task-2", "info.error", vim.fault.InvalidPowerState())],
        ],
        clock,
    )
    seen: list[tuple[str, int]] = []
    out = wait_for_tasks(
        _session(collector),
        [vim.Task("task-1"), vim.Task("task-2")],
        timeout=60,
        progress=lambda t, p: seen.append((t, p)),
        clock=clock,
    )
    assert out["task-1"].result == "vm-9" and out["task-2"].state == "error"
    assert seen == [("task-1", 40), ("task-1", 100)]
    assert collector.reads == 1 and collector.filters_destroyed == 1
    assert len(collector.waits) == 3  # one wait per update, no polling
    collector2 = FakeCollector(
        [[("task-3", "info.state", "error"), ("task-3", "info.error", vim.fault.ToolsUnavailable())]], clock
    )
    with pytest.raises(vim.fault.ToolsUnavailable):
        wait_for_task(_session(collector2), vim.Task("task-3"), timeout=60, clock=clock)


def test_wait_for_tasks_timeout() -> None:
    from virtabstract_esxi._tasks import wait_for_tasks

    clock = ManualClock()
    collector = FakeCollector([[("task-1", "info.state", "running")]], clock)
    with pytest.raises(OperationTimeout, match="task-1"):
        wait_for_tasks(_session(collector), [vim.Task("task-1")], timeout=5, clock=clock)
    assert collector.filters_destroyed == 1 and collector.waits[-1] <= 5


def test_wait_for_tasks_finished_at_first_look_costs_one_read() -> None:
    from virtabstract_esxi._tasks import wait_for_task, wait_for_tasks

    clock = ManualClock()
    collector = FakeCollector([], clock, first=[("task-1", "info.state", "success"), ("task-1", "info.result", "vm-9")])
    assert wait_for_task(_session(collector), vim.Task("task-1"), timeout=60, clock=clock) == "vm-9"
    assert collector.reads == 1 and collector.created == 0 and not collector.waits
    collector2 = FakeCollector([], clock, first=[("task-2", "info.state", "error"), ("task-2", "info.error", None)])
    out = wait_for_tasks(_session(collector2), [vim.Task("task-2")], timeout=60, clock=clock)
    assert out["task-2"].state == "error" and collector2.created == 0


def test_task_waits_reuse_one_collector_per_session() -> None:
    from virtabstract_esxi._tasks import collector_pool, wait_for_task

    clock = ManualClock()
    collector = FakeCollector([[("task-1", "info.state", "success")], [("task-2", "info.state", "success")]], clock)
    session = _session(collector)
    wait_for_task(session, vim.Task("task-1"), timeout=60, clock=clock)
    wait_for_task(session, vim.Task("task-2"), timeout=60, clock=clock)
    assert collector.created == 1 and collector.filters_destroyed == 2 and not collector.destroyed
    collector_pool(session).destroy()
    assert collector.destroyed
