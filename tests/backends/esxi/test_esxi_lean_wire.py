"""The lean SOAP path of the ESXi backend (``virtabstract_esxi._lean``) against a scripted SOAP server.

Every shape the per-operation reads decode (a VM's state, a task's status and result, the
snapshot tree), every answer they must hand to pyVmomi instead (faults, ``missingSet``, a new
cookie, unknown or unusual values, broken XML or HTTP), the cached request bytes against
pyVmomi's own serialisation, and :func:`invoke` against pyVmomi's own call on the same answers.
The server is a real HTTP server on loopback and the stub a real ``SoapStubAdapter``.
"""

from __future__ import annotations

import gzip
import http.client
import http.server
import io
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("pyVmomi")
from pyVmomi import SoapAdapter, VmomiSupport, vim, vmodl
from virtabstract_esxi import _lean
from virtabstract_esxi._inventory import Inventory
from virtabstract_esxi._lean import Read, invoke, read_objects
from virtabstract_esxi._snapshots import SnapshotTree, snapshot_infos, snapshot_tree
from virtabstract_esxi._tasks import TASK_PATHS, wait_for_task, wait_for_task_and_read

COOKIE = 'vmware_soap_session="session-1"'
CLOSE = None
"""A scripted answer: drop the connection without answering."""


@dataclass
class Answer:
    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)


class FakeSoap:
    """A loopback HTTP/1.1 server answering POSTs with scripted answers, recording every request."""

    def __init__(self) -> None:
        self.answers: list[Answer | None] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.requests.append((dict(self.headers), body))
                answer = fake.answers.pop(0) if fake.answers else Answer(599, "no answer scripted")
                if answer is None:
                    self.close_connection = True
                    return
                data = answer.body.encode() if isinstance(answer.body, str) else answer.body
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stub(self) -> Any:
        stub = SoapAdapter.SoapStubAdapter(host="127.0.0.1", port=-self.port, version="vim.version.version11")
        stub.cookie = COOKIE
        return stub

    def script(self, *answers: Answer | None) -> None:
        self.answers = list(answers)
        self.requests = []

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[FakeSoap]:
    fake = FakeSoap()
    yield fake
    fake.close()


@pytest.fixture(autouse=True)
def exchanges(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Paths of the requests carried by the minimal HTTP exchange (not by ``http.client``)."""
    seen: list[str] = []
    original = _lean.exchange

    def counted(conn: Any, path: str, *args: Any) -> Any:
        seen.append(path)
        return original(conn, path, *args)

    monkeypatch.setattr(_lean, "exchange", counted)
    return seen


@pytest.fixture
def stub(server: FakeSoap) -> Iterator[Any]:
    _lean._templates.clear()
    stub = server.stub()
    yield stub
    stub.DropConnections()


# -- answers on the wire ----------------------------------------------------------------------------------

ENVELOPE = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
    "<soapenv:Body>{}</soapenv:Body></soapenv:Envelope>"
)


def retrieved(*objects: str, token: str = "", method: str = "RetrievePropertiesEx") -> str:
    inner = "".join(objects) + (f"<token>{token}</token>" if token else "")
    return ENVELOPE.format(f'<{method}Response xmlns="urn:vim25"><returnval>{inner}</returnval></{method}Response>')


def obj(type_name: str, moid: str, *props: str) -> str:
    return f'<objects><obj type="{type_name}">{moid}</obj>{"".join(props)}</objects>'


def prop(name: str, xsi: str, text: str, attrs: str = "") -> str:
    return f'<propSet><name>{name}</name><val xsi:type="{xsi}"{attrs}>{text}</val></propSet>'


def fault(detail: str, message: str) -> str:
    return ENVELOPE.format(
        "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
        f"<faultstring>{message}</faultstring><detail>{detail}</detail></soapenv:Fault>"
    )


NOT_AUTHENTICATED = fault(
    '<NotAuthenticatedFault xmlns="urn:vim25" xsi:type="NotAuthenticated"><object type="VirtualMachine">vm-1'
    "</object><privilegeId>System.View</privilegeId></NotAuthenticatedFault>",
    "The session is not authenticated.",
)
OBJECT_GONE = fault(
    '<ManagedObjectNotFoundFault xmlns="urn:vim25" xsi:type="ManagedObjectNotFound">'
    '<obj type="VirtualMachine">vm-1</obj></ManagedObjectNotFoundFault>',
    "The object has already been deleted or has not been completely created",
)
INVALID_POWER_STATE = fault(
    '<InvalidPowerStateFault xmlns="urn:vim25" xsi:type="InvalidPowerState"><requestedState>poweredOn'
    "</requestedState><existingState>poweredOn</existingState></InvalidPowerStateFault>",
    "The attempted operation cannot be performed in the current state (Powered on).",
)

STATE = obj(
    "VirtualMachine",
    "vm-1",
    prop("name", "xsd:string", "web&lt;1&gt; &amp; co"),
    prop("runtime.powerState", "VirtualMachinePowerState", "poweredOn"),
    prop("runtime.connectionState", "VirtualMachineConnectionState", "connected"),
    prop("config.instanceUuid", "xsd:string", "50123456-0000-0000-0000-000000000001"),
)
# vcsim 0.24 spells every value's namespace out and names its prefix XMLSchema-instance (verbatim)
VCSIM_STATE = (
    '<objects><obj type="VirtualMachine">vm-57</obj><propSet><name>runtime.powerState</name><val '
    'xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" '
    'XMLSchema-instance:type="VirtualMachinePowerState">poweredOff</val></propSet></objects>'
)
TASK_DONE = obj(
    "Task",
    "task-7",
    prop("info.state", "TaskInfoState", "success"),
    prop("info.result", "ManagedObjectReference", "snapshot-3", ' type="VirtualMachineSnapshot"'),
    prop("info.progress", "xsd:int", "100"),
)
TASK_FAILED = obj(
    "Task",
    "task-7",
    prop("info.state", "TaskInfoState", "error"),
    '<propSet><name>info.error</name><val xsi:type="LocalizedMethodFault"><fault xsi:type="InvalidPowerState">'
    "<requestedState>poweredOn</requestedState><existingState>poweredOn</existingState></fault>"
    "<localizedMessage>already on</localizedMessage></val></propSet>",
)


def node(moid: str, name: str, *children: str, state: str = "poweredOff", extra: str = "") -> str:
    return (
        f'<snapshot type="VirtualMachineSnapshot">{moid}</snapshot><vm type="VirtualMachine">vm-1</vm>'
        f"<name>{name}</name>{extra}<id>{moid.rsplit('-', 1)[-1]}</id>"
        f"<createTime>2024-05-01T10:00:0{moid[-1]}.123456789Z</createTime><state>{state}</state>"
        f"<quiesced>{'true' if 'q' in name else 'false'}</quiesced>"
        + "".join(f"<childSnapshotList>{c}</childSnapshotList>" for c in children)
        + "<replaySupported>false</replaySupported>"
    )


TREE = (
    '<propSet><name>snapshot</name><val xsi:type="VirtualMachineSnapshotInfo">'
    '<currentSnapshot type="VirtualMachineSnapshot">snapshot-4</currentSnapshot>'
    "<rootSnapshotList>"
    + node(
        "snapshot-1",
        "base",
        node("snapshot-2", "a &lt;&amp;&gt;", node("snapshot-4", "leaf q", state="poweredOn")),
        node("snapshot-3", "a &lt;&amp;&gt;", state="suspended", extra="<description>two\nlines</description>"),
        extra="<description></description>",
    )
    + "</rootSnapshotList><rootSnapshotList>"
    + node("snapshot-5", "second root")
    + "</rootSnapshotList></val></propSet>"
)
VM_TREE = obj("VirtualMachine", "vm-1", TREE)


def _plain(value: Any) -> Any:
    """Lean and pyVmomi values made comparable: a proxy → (wsdl type, id, bound), a tree → SnapshotTree."""
    if isinstance(value, VmomiSupport.ManagedObject):
        return (type(value)._wsdlName, value._moId, value._stub is not None)
    if isinstance(value, vim.vm.SnapshotInfo):
        try:
            return snapshot_tree(value)
        except AttributeError:  # a node pyVmomi built without its reference
            return repr(value)
    if isinstance(value, BaseException):
        return type(value)
    if isinstance(value, (str, int, SnapshotTree)) or value is None:
        return str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value
    return repr(value)


READS: dict[str, Callable[[Any], list[Read]]] = {
    "state": lambda stub: [
        Read(
            "VirtualMachine",
            (vim.VirtualMachine("vm-1", stub),),
            ("name", "runtime.powerState", "runtime.connectionState", "config.instanceUuid"),
        )
    ],
    "task": lambda stub: [Read("Task", (vim.Task("task-7", stub),), TASK_PATHS)],
    "task+tree": lambda stub: [
        Read("Task", (vim.Task("task-7", stub),), TASK_PATHS),
        Read("VirtualMachine", (vim.VirtualMachine("vm-1", stub),), ("snapshot",)),
    ],
}

LEAN, PYVMOMI, ERROR = "decoded leanly", "read by pyVmomi", "raised before any reading"

CASES: list[tuple[str, str, list[Answer | None], str]] = [
    # (case, read, scripted answers, who reads the answer) — every outcome is compared with pyVmomi's own
    ("state, escaped text", "state", [Answer(body=retrieved(STATE))], LEAN),
    ("vcsim's spelling", "state", [Answer(body=retrieved(VCSIM_STATE))], LEAN),
    ("an unset property is absent", "state", [Answer(body=retrieved(obj("VirtualMachine", "vm-1")))], LEAN),
    (
        "no object matched",
        "state",
        [
            Answer(
                body=ENVELOPE.format('<RetrievePropertiesExResponse xmlns="urn:vim25"></RetrievePropertiesExResponse>')
            )
        ],
        LEAN,
    ),
    ("finished task, MoRef result", "task", [Answer(body=retrieved(TASK_DONE))], LEAN),
    ("finished task and the snapshot tree", "task+tree", [Answer(body=retrieved(TASK_DONE, VM_TREE))], LEAN),
    (
        "pages followed",
        "state",
        [
            Answer(body=retrieved(obj("VirtualMachine", "vm-1"), token="page-2")),
            Answer(body=retrieved(obj("VirtualMachine", "vm-2"), method="ContinueRetrievePropertiesEx")),
        ],
        LEAN,
    ),
    (
        "a renewed session cookie is taken",
        "state",
        [Answer(body=retrieved(STATE), headers={"Set-Cookie": 'vmware_soap_session="s-2"; Path=/'})],
        LEAN,
    ),
    # answers pyVmomi reads (from the same bytes: the request is never sent again)
    ("SOAP fault NotAuthenticated", "state", [Answer(500, NOT_AUTHENTICATED)], PYVMOMI),
    ("SOAP fault ManagedObjectNotFound", "state", [Answer(500, OBJECT_GONE)], PYVMOMI),
    ("an HTTP 500 that is no fault", "state", [Answer(500, retrieved(STATE))], PYVMOMI),
    (
        "missingSet (vcsim's NotAuthenticated per property)",
        "state",
        [
            Answer(
                body=retrieved(
                    '<objects><obj type="VirtualMachine">vm-1</obj><missingSet><path>name</path><fault><fault '
                    'xsi:type="NotAuthenticated"><privilegeId>System.Read</privilegeId></fault></fault></missingSet>'
                    "</objects>"
                )
            )
        ],
        PYVMOMI,
    ),
    ("a failed task's info.error", "task", [Answer(body=retrieved(TASK_FAILED))], PYVMOMI),
    (
        "a compressed answer",
        "state",
        [Answer(body=gzip.compress(retrieved(STATE).encode()), headers={"Content-Encoding": "gzip"})],
        PYVMOMI,
    ),
    ("HTTP 503", "state", [Answer(503, "busy")], ERROR),
    (
        "MoRef with a serverGuid",
        "task",
        [
            Answer(
                body=retrieved(
                    obj(
                        "Task",
                        "task-7",
                        prop(
                            "info.result", "ManagedObjectReference", "vm-1", ' type="VirtualMachine" serverGuid="g-1"'
                        ),
                    )
                )
            )
        ],
        PYVMOMI,
    ),
    (
        "a data object of a type not decoded",
        "state",
        [
            Answer(
                body=retrieved(
                    obj(
                        "VirtualMachine",
                        "vm-1",
                        '<propSet><name>config.hardware.device</name><val xsi:type="ArrayOfVirtualDevice">'
                        '<VirtualDevice xsi:type="VirtualDisk"><key>2000</key><controllerKey>1000</controllerKey>'
                        "<unitNumber>0</unitNumber><capacityInKB>1024</capacityInKB></VirtualDevice></val></propSet>",
                    )
                )
            )
        ],
        PYVMOMI,
    ),
    ("malformed XML", "state", [Answer(body=retrieved(STATE)[:-40])], PYVMOMI),
    ("an object without its reference", "state", [Answer(body=retrieved("<objects><obj></obj></objects>"))], PYVMOMI),
    (
        "a snapshot node without its reference",
        "task+tree",
        [
            Answer(
                body=retrieved(
                    TASK_DONE,
                    obj(
                        "VirtualMachine",
                        "vm-1",
                        '<propSet><name>snapshot</name><val xsi:type="VirtualMachineSnapshotInfo"><rootSnapshotList>'
                        "<name>x</name></rootSnapshotList></val></propSet>",
                    ),
                )
            )
        ],
        PYVMOMI,
    ),
    (
        "MoRef of a type this pyVmomi does not know",
        "task",
        [
            Answer(
                body=retrieved(
                    obj("Task", "task-7", prop("info.result", "ManagedObjectReference", "x-1", ' type="Nope"'))
                )
            )
        ],
        PYVMOMI,
    ),
    (
        "an unparsable createTime",
        "task+tree",
        [Answer(body=retrieved(TASK_DONE, VM_TREE.replace("2024-05-01T10:00:04", "yesterday", 1)))],
        PYVMOMI,
    ),
    ("the server closed without answering", "state", [CLOSE], ERROR),
]


def _sdk_read(pc: Any, reads: list[Read]) -> list[tuple[str, dict[str, Any]]]:
    """pyVmomi's own retrieval of the same reads (pages followed as the backend's pyVmomi path does)."""
    q = vmodl.query.PropertyCollector
    result = pc.RetrievePropertiesEx(_lean._specs(reads), q.RetrieveOptions())
    out: list[tuple[str, dict[str, Any]]] = []
    while result is not None:
        out += [(c.obj._moId, {p.name: p.val for p in c.propSet}) for c in result.objects]
        if not result.token:
            break
        result = pc.ContinueRetrievePropertiesEx(result.token)
    return out


def _read_outcome(call: Callable[[], Any]) -> Any:
    try:
        found = call()
    except Exception as exc:
        # pyVmomi raises a plain Exception for an HTTP 500 that is no fault; the lean path a subclass
        return ("raised", Exception if type(exc).__name__ == "_NonFaultAnswer" else type(exc))
    return [(moid, {k: _plain(v) for k, v in props.items()}) for moid, props in found]


@pytest.mark.parametrize(("case", "read", "answers", "reader"), CASES, ids=[c[0] for c in CASES])
def test_reads_match_pyvmomi(
    server: FakeSoap,
    stub: Any,
    exchanges: list[str],
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    read: str,
    answers: list[Answer | None],
    reader: str,
) -> None:
    sdk_stub = server.stub()
    server.script(*answers)
    expected = _read_outcome(
        lambda: _sdk_read(vmodl.query.PropertyCollector("propertyCollector", sdk_stub), READS[read](sdk_stub))
    )
    sdk_stub.DropConnections()
    pyvmomi_reads = [0]
    original = _lean._deserialise

    def counted(*args: Any) -> Any:
        pyvmomi_reads[0] += 1
        return original(*args)

    monkeypatch.setattr(_lean, "_deserialise", counted)
    server.script(*answers)
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    assert _read_outcome(lambda: read_objects(stub, pc, READS[read](stub))) == expected
    assert len(server.requests) == len(answers)  # never sent again
    assert exchanges == ["/sdk"] * len(answers)  # carried by the minimal exchange
    assert pyvmomi_reads[0] == (1 if reader == PYVMOMI else 0)
    headers, _ = server.requests[0]
    assert headers["Cookie"] == COOKIE and headers["SOAPAction"] == stub.versionId
    if len(answers) > 1:
        assert b"<ContinueRetrievePropertiesEx " in server.requests[1][1] and b"page-2" in server.requests[1][1]
    if "Set-Cookie" in (answers[0].headers if answers[0] else {}):
        assert stub.cookie == sdk_stub.cookie == 'vmware_soap_session="s-2"; Path=/'
    server.script(Answer(body=retrieved(STATE)))
    assert read_objects(stub, pc, READS["state"](stub))  # the pool still works


def test_reads_decode_values_leanly(server: FakeSoap, stub: Any) -> None:
    server.script(Answer(body=retrieved(STATE, TASK_DONE)))
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    found = dict(read_objects(stub, pc, READS["task+tree"](stub)) or [])
    assert found["vm-1"]["name"] == "web<1> & co" and found["task-7"]["info.progress"] == "100"
    result = found["task-7"]["info.result"]
    assert type(result) is vim.vm.Snapshot and result._moId == "snapshot-3" and result._stub is stub


def _sdk_values(stub: Any, body: str) -> dict[str, dict[str, Any]]:
    """What pyVmomi makes of the same answer: {moid: {path: value}}."""
    info = vmodl.query.PropertyCollector._GetMethodInfo("RetrievePropertiesEx")
    result = SoapAdapter.SoapResponseDeserializer(stub).Deserialize(io.BytesIO(body.encode()), info.result)
    return {c.obj._moId: {p.name: p.val for p in c.propSet} for c in result.objects}


def test_snapshot_tree_matches_pyvmomi(server: FakeSoap, stub: Any) -> None:
    body = retrieved(TASK_DONE, VM_TREE)
    server.script(Answer(body=body))
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    found = read_objects(stub, pc, READS["task+tree"](stub))
    assert found is not None
    lean = dict(found)["vm-1"]["snapshot"]
    sdk = _sdk_values(stub, body)["vm-1"]["snapshot"]
    assert isinstance(lean, SnapshotTree)
    assert lean == snapshot_tree(sdk)
    assert snapshot_infos("vm-1", lean) == snapshot_infos("vm-1", sdk)
    infos = {s.id: s for s in snapshot_infos("vm-1", lean)}
    assert [s.id for s in snapshot_infos("vm-1", lean)] == [f"snapshot-{i}" for i in (1, 2, 4, 3, 5)]
    assert infos["snapshot-2"].name == "a <&>" and infos["snapshot-3"].description == "two\nlines"
    assert infos["snapshot-4"].is_current and infos["snapshot-4"].has_memory and infos["snapshot-4"].parent_id
    assert infos["snapshot-1"].created is not None and infos["snapshot-1"].created.tzinfo is not None
    assert lean.roots[0].children[0].children[0].quiesced and lean.roots[0].number == 1
    tasks = _sdk_values(stub, body)["task-7"]
    assert _plain(dict(found)["task-7"]["info.result"]) == _plain(tasks["info.result"])


def test_empty_snapshot_info_is_an_empty_tree(server: FakeSoap, stub: Any) -> None:
    empty = obj(
        "VirtualMachine",
        "vm-1",
        '<propSet><name>snapshot</name><val xsi:type="VirtualMachineSnapshotInfo"></val></propSet>',
    )
    server.script(Answer(body=retrieved(TASK_DONE, empty)))
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    found = read_objects(stub, pc, READS["task+tree"](stub))
    assert found is not None and dict(found)["vm-1"]["snapshot"] == SnapshotTree(None, ())
    assert snapshot_infos("vm-1", dict(found)["vm-1"]["snapshot"]) == []


# -- the request bytes --------------------------------------------------------------------------------------


def _count_serialisations(monkeypatch: pytest.MonkeyPatch, stub: Any) -> list[int]:
    calls = [0]
    original = stub.SerializeRequest

    def counting(*args: Any) -> Any:
        calls[0] += 1
        return original(*args)

    monkeypatch.setattr(stub, "SerializeRequest", counting)
    return calls


@pytest.mark.parametrize("read", list(READS))
def test_read_requests_are_pyvmomis_bytes_serialised_once(
    stub: Any, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    q = vmodl.query.PropertyCollector
    info = q._GetMethodInfo("RetrievePropertiesEx")
    calls = _count_serialisations(monkeypatch, stub)
    for moids in (("vm-1", "task-7"), ("vm-22", "task-1234"), ("vm-3", "haTask-2-vim.VirtualMachine.powerOn-77")):
        reads = [
            Read(
                r.type_name,
                tuple(type(o)(moids[0] if o._wsdlName == "VirtualMachine" else moids[1], stub) for o in r.objects),
                r.paths,
            )
            for r in READS[read](stub)
        ]
        ours = _lean._read_request(stub, pc, reads)
        assert ours == SoapAdapter.SoapStubAdapter.SerializeRequest(
            stub, pc, info, [_lean._specs(reads), q.RetrieveOptions()]
        )
    assert calls[0] == 1  # the shape once; later calls only splice the ids in


CALLS: list[tuple[str, tuple[Any, ...]]] = [
    ("PowerOffVM_Task", ()),
    ("PowerOnVM_Task", (None,)),
    ("CreateSnapshot_Task", ("nightly", "", False, False)),
    ("CreateSnapshot_Task", ("a <b> & c", "déjà vu\n2nd line", True, True)),
    ("CreateSnapshot_Task", ("virtabstract-lean-mark", "x", True, False)),
]


@pytest.mark.parametrize(("method", "args"), CALLS)
def test_call_requests_are_pyvmomis_bytes(stub: Any, method: str, args: tuple[Any, ...]) -> None:
    vm = vim.VirtualMachine("vm-42", stub)
    info = _lean._method_info(vim.VirtualMachine, method)
    full = [*args, *([None] * (len(info.params) - len(args)))]
    for _ in range(2):  # first the shape is serialised, then the cached template is filled
        assert _lean._method_request(stub, vm, info, full) == stub.SerializeRequest(vm, info, full)
    snap = vim.vm.Snapshot("snapshot-9", stub)
    for name, snap_args in (("RemoveSnapshot_Task", [True, True]), ("RevertToSnapshot_Task", [None, False])):
        snap_info = _lean._method_info(vim.vm.Snapshot, name)
        assert _lean._method_request(stub, snap, snap_info, snap_args) == stub.SerializeRequest(
            snap, snap_info, snap_args
        )


def test_requests_with_a_soap_header_or_server_guid_are_never_cached(stub: Any) -> None:
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    q = vmodl.query.PropertyCollector
    info = q._GetMethodInfo("RetrievePropertiesEx")
    context = VmomiSupport.GetRequestContext()
    context["operationID"] = "op-1"
    try:
        reads = READS["state"](stub)
        ours = _lean._read_request(stub, pc, reads)
        assert b"operationID" in ours
        assert ours == stub.SerializeRequest(pc, info, [_lean._specs(reads), q.RetrieveOptions()])
        assert not _lean._templates
    finally:
        del context["operationID"]
    guid = [Read("VirtualMachine", (vim.VirtualMachine("vm-1", stub, "guid-1"),), ("name",))]
    assert b'serverGuid="guid-1"' in _lean._read_request(stub, pc, guid)
    assert not _lean._templates


# -- invoke: the same outcome as pyVmomi's own call, one request --------------------------------------------

TASK_ANSWER = ENVELOPE.format(
    '<PowerOnVM_TaskResponse xmlns="urn:vim25"><returnval type="Task">task-7</returnval></PowerOnVM_TaskResponse>'
)

INVOKE_CASES: list[tuple[str, Answer | None]] = [
    ("a task", Answer(body=TASK_ANSWER)),
    ("InvalidPowerState fault", Answer(500, INVALID_POWER_STATE)),
    ("NotAuthenticated fault", Answer(500, NOT_AUTHENTICATED)),
    (
        "a task and a new session cookie",
        Answer(body=TASK_ANSWER, headers={"Set-Cookie": 'vmware_soap_session="s-2"; Path=/'}),
    ),
    (
        "a task with a serverGuid (pyVmomi decodes it)",
        Answer(body=TASK_ANSWER.replace('type="Task"', 'type="Task" serverGuid="g-9"')),
    ),
    ("HTTP 404", Answer(404, "not here")),
    ("an HTTP 500 that is no fault", Answer(500, TASK_ANSWER)),
    ("the server closed without answering", CLOSE),
]


def _outcome(call: Callable[[], Any]) -> tuple[Any, ...]:
    try:
        result = call()
    except Exception as exc:
        return ("raised", type(exc), getattr(exc, "existingState", None))
    return ("returned", type(result)._wsdlName, result._moId, result._serverGuid, result._stub is not None)


def _same(ours: tuple[Any, ...], sdk: tuple[Any, ...]) -> bool:
    """Equal outcomes; a raised exception may be a subclass of pyVmomi's (a plain ``Exception`` there)."""
    if ours[0] == sdk[0] == "raised":
        return issubclass(ours[1], sdk[1]) and ours[2:] == sdk[2:]
    return ours == sdk


@pytest.mark.parametrize(("case", "answer"), INVOKE_CASES, ids=[c[0] for c in INVOKE_CASES])
def test_invoke_matches_pyvmomi(server: FakeSoap, exchanges: list[str], case: str, answer: Answer | None) -> None:
    sdk_stub, lean_stub = server.stub(), server.stub()
    server.script(answer)
    expected = _outcome(lambda: vim.VirtualMachine("vm-1", sdk_stub).PowerOnVM_Task())
    sdk_body = server.requests[0][1]
    server.script(answer)
    assert _same(_outcome(lambda: invoke(vim.VirtualMachine("vm-1", lean_stub), "PowerOnVM_Task")), expected)
    assert len(server.requests) == 1 and exchanges == ["/sdk"]  # never sent twice
    assert server.requests[0][1] == sdk_body
    assert lean_stub.cookie == sdk_stub.cookie
    if expected[0] == "returned":  # the connection went back to the pool and carries the next call
        server.script(Answer(body=TASK_ANSWER))
        assert _outcome(lambda: invoke(vim.VirtualMachine("vm-1", lean_stub), "PowerOnVM_Task"))[0] == "returned"
    for s in (sdk_stub, lean_stub):
        s.DropConnections()


def test_invoke_checks_arguments_like_pyvmomi(server: FakeSoap, stub: Any) -> None:
    server.script()
    vm = vim.VirtualMachine("vm-1", stub)
    with pytest.raises(TypeError):
        vm.CreateSnapshot_Task(42, "", False, False)
    with pytest.raises(TypeError):
        invoke(vm, "CreateSnapshot_Task", 42, "", False, False)
    with pytest.raises(AttributeError):
        invoke(vm, "NoSuchMethod_Task")
    assert not server.requests


def test_invoke_is_seen_by_http_client_instrumentation(
    server: FakeSoap, stub: Any, exchanges: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    original = http.client.HTTPConnection.request

    def counting(conn: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        seen.append(url)
        return original(conn, method, url, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", counting)
    server.script(Answer(body=TASK_ANSWER), Answer(body=retrieved(TASK_DONE)))
    task = invoke(vim.VirtualMachine("vm-1", stub), "PowerOnVM_Task")
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    assert read_objects(stub, pc, [Read("Task", (task,), TASK_PATHS)]) is not None
    assert seen == ["/sdk", "/sdk"] and not exchanges


# -- the callers' fallbacks: the task wait and the one-object read --------------------------------------------


def _session(stub: Any) -> Any:
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    return SimpleNamespace(stub=stub, content=SimpleNamespace(propertyCollector=pc), call=lambda f: f(), generation=1)


def test_task_wait_reads_leanly_and_pyvmomi_reads_a_failed_task(server: FakeSoap, stub: Any) -> None:
    session = _session(stub)
    server.script(Answer(body=retrieved(TASK_DONE)))
    result = wait_for_task(session, vim.Task("task-7", stub), timeout=60)
    assert _plain(result) == ("VirtualMachineSnapshot", "snapshot-3", True)
    assert len(server.requests) == 1
    server.script(Answer(body=retrieved(TASK_DONE, VM_TREE)))
    result, values = wait_for_task_and_read(
        session, vim.Task("task-7", stub), (vim.VirtualMachine("vm-1", stub), "VirtualMachine", ("snapshot",))
    )
    assert values is not None and isinstance(values["snapshot"], SnapshotTree) and len(server.requests) == 1
    # a scalar result keeps its type: pyVmomi reads that answer (no second request)
    scalar = obj("Task", "task-7", prop("info.state", "TaskInfoState", "success"), prop("info.result", "xsd:int", "5"))
    server.script(Answer(body=retrieved(scalar)))
    assert wait_for_task(session, vim.Task("task-7", stub), timeout=60) == 5
    assert len(server.requests) == 1
    # a failed task: pyVmomi reads the same answer and builds the fault (no second request)
    server.script(Answer(body=retrieved(TASK_FAILED)))
    with pytest.raises(vim.fault.InvalidPowerState) as excinfo:
        wait_for_task(session, vim.Task("task-7", stub), timeout=60)
    assert excinfo.value.existingState == "poweredOn" and len(server.requests) == 1


def test_one_object_read_raises_pyvmomis_faults(server: FakeSoap, stub: Any) -> None:
    inventory = Inventory(_session(stub), lambda: None)
    vm = vim.VirtualMachine("vm-1", stub)
    server.script(Answer(body=retrieved(STATE)))
    assert inventory.read_lean("VirtualMachine", vm, ["runtime.powerState"]).get("runtime.powerState") == "poweredOn"
    server.script(Answer(500, OBJECT_GONE))
    with pytest.raises(vmodl.fault.ManagedObjectNotFound):
        inventory.read_lean("VirtualMachine", vm, ["runtime.powerState"])
    assert len(server.requests) == 1
    server.script(Answer(500, NOT_AUTHENTICATED))
    with pytest.raises(vim.fault.NotAuthenticated):  # Session.call logs in again on this one
        inventory.read_lean("VirtualMachine", vm, ["runtime.powerState"])
    server.script(Answer(503, "busy"))
    with pytest.raises(http.client.HTTPException, match="503"):  # ConnectionLost, as through pyVmomi
        inventory.read_lean("VirtualMachine", vm, ["runtime.powerState"])
    assert len(server.requests) == 1


def test_reads_not_attempted_leanly_go_to_pyvmomi(server: FakeSoap, stub: Any) -> None:
    server.script()
    pc = vmodl.query.PropertyCollector("propertyCollector", stub)
    stub.requestModifierList.append(lambda request: request)
    try:
        assert read_objects(stub, pc, READS["state"](stub)) is None
    finally:
        stub.requestModifierList.clear()
    assert read_objects(None, pc, READS["state"](stub)) is None
    assert not server.requests
