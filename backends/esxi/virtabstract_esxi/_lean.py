"""Lean SOAP on the hot paths: property reads and task-returning calls without pyVmomi's (de)serialisation.

pyVmomi spends most of a call's client time turning the SOAP answer into objects
(``DynamicProperty``, ``ObjectContent``, a ``ManagedObject`` proxy per object …), serialising
the request, and in ``http.client``. For the hot paths none of that is needed. This module
sends the very request pyVmomi would (serialised by pyVmomi itself, on a connection from the
stub's own pool, with its session cookie) and reads the answer with ElementTree.

* :func:`retrieve_scalars` — the inventory: view-based specs of *scalar* paths, paged and
  streamed (``iterparse``); values are text (callers convert them with the types they know).
* :func:`read_objects` — the per-operation reads (a VM's state, a task's status, a VM's
  snapshot tree): the paths of given objects, described by :class:`Read`. Scalars are text;
  a MoRef value (a task's ``info.result``) becomes a pyVmomi proxy bound to the stub; a
  ``VirtualMachineSnapshotInfo`` becomes a :class:`~._snapshots.SnapshotTree`.
* :func:`invoke` — a method answering a managed object (``PowerOffVM_Task``,
  ``CreateSnapshot_Task`` …): a plain ``<returnval type="Task">`` answer becomes the proxy.

The request bytes of :func:`read_objects` and :func:`invoke` are pyVmomi's serialisation of
the request's *shape* (types, paths, method, number of objects, API version), made once with a
mark where the variable values go (MoRef ids, string arguments) and cached; each call splices
its values in, escaped as pyVmomi escapes them. Both talk through :mod:`._http` (one
``sendall``, headers read without the ``email`` package) where the connection allows it.

Robustness. A read that gets anything but a clean ``200`` answer made only of values this module
decodes — a SOAP fault (``NotAuthenticated``, ``ManagedObjectNotFound`` of a deleted VM or an
expired view …, HTTP 500), a changed session cookie, an HTTP, transport or parse error, a
``missingSet`` (a fault per property), a value of a type it does not decode (a failed task's
``info.error``), a MoRef with a ``serverGuid`` — returns ``None``, and the caller runs the same
retrieval through pyVmomi, which raises the proper fault and lets :meth:`Session.call` log in
again. A call is never sent twice: any answer but the plain one is given to pyVmomi's own
deserialiser, which builds the result or the fault exactly as ``InvokeMethod`` would. A request
pyVmomi would give a SOAP header (a request context, a SAML token) is serialised by pyVmomi on
every call, never cached. Paging (``ContinueRetrievePropertiesEx`` with the returned token) is
followed here too.
"""

from __future__ import annotations

import functools
import http.client
import importlib
import io
import logging
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from ._http import HttpAnswer, exchange, usable
from ._sdk import sdk, vim_type
from ._snapshots import SnapshotNode, SnapshotTree

__all__ = ["Read", "invoke", "read_objects", "retrieve_scalars"]

log = logging.getLogger("virtabstract.esxi")

_VIM = "{urn:vim25}"
_XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
_OBJECTS = _VIM + "objects"
_TOKEN = _VIM + "token"
_OBJ = _VIM + "obj"
_PROPSET = _VIM + "propSet"
_NAME = _VIM + "name"
_VAL = _VIM + "val"
_MISSING = _VIM + "missingSet"
_RETURNVAL = _VIM + "returnval"
_RESPONSE_TAGS = (_VIM + "RetrievePropertiesExResponse", _VIM + "ContinueRetrievePropertiesExResponse")

Decoder = Callable[[ET.Element], Any]
"""Turns one ``<val>`` (or a nested element) of a known ``xsi:type`` into a value."""

ObjectValues = list[tuple[str, dict[str, Any]]]
"""``(moid, {path: value})`` per object, in the server's order."""


class _Fallback(Exception):
    """The lean path cannot answer this one: use pyVmomi."""


@functools.cache
def _vmomi_support() -> Any:
    return importlib.import_module("pyVmomi.VmomiSupport")


@functools.cache
def _soap_adapter() -> Any:
    return importlib.import_module("pyVmomi.SoapAdapter")


@functools.cache
def _parse_iso8601() -> Callable[[str], Any]:
    # pyVmomi's own parser, so a lean createTime equals the one pyVmomi would build.
    parse: Callable[[str], Any] = importlib.import_module("pyVmomi.Iso8601").ParseISO8601
    return parse


# -- requests ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Read:
    """One FilterSpec of a per-object read: *paths* of the vim type *type_name* on the given objects."""

    type_name: str
    """The PropertySpec type relative to ``vim`` (``"VirtualMachine"``, ``"Task"``)."""
    objects: tuple[Any, ...]
    """pyVmomi managed-object proxies bound to the session's stub."""
    paths: tuple[str, ...]
    typed: tuple[str, ...] = ()
    """Paths whose value must keep its type (a task's ``info.result``): a scalar there is pyVmomi's to read."""


_MARK = "virtabstract-lean-mark"
"""Stands for each variable value (MoRef ids, string arguments) while a request shape is serialised once."""
_TEMPLATES_MAX = 128
_templates: dict[tuple[Any, ...], tuple[bytes, ...]] = {}
_templates_lock = threading.Lock()


def _soap_header(stub: Any) -> bool:
    """True when pyVmomi would put a SOAP header in the request (then it is serialised per call)."""
    return bool(
        _vmomi_support().GetRequestContext()
        or getattr(stub, "requestContext", None)
        or getattr(stub, "samlToken", None)
    )


def _template(key: tuple[Any, ...], count: int, serialise_marked: Callable[[], bytes]) -> tuple[bytes, ...] | None:
    """The request of one *shape* split where its *count* variable values go (serialised once, then cached).

    ``None`` when the mark does not appear exactly *count* times (it never is cached then).
    """
    parts = _templates.get(key)
    if parts is None:
        parts = tuple(serialise_marked().split(_MARK.encode()))
        if len(parts) != count + 1:
            return None
        with _templates_lock:
            if len(_templates) >= _TEMPLATES_MAX:
                _templates.clear()
            _templates[key] = parts
    return parts


def _fill(parts: tuple[bytes, ...], values: Sequence[str]) -> bytes:
    out = [parts[0]]
    for value, part in zip(values, parts[1:], strict=True):
        out.append(value.encode("utf-8"))
        out.append(part)
    return b"".join(out)


def _specs(reads: Sequence[Read]) -> list[Any]:
    q = sdk().vmodl.query.PropertyCollector
    return [
        q.FilterSpec(
            objectSet=[q.ObjectSpec(obj=o, skip=False) for o in r.objects],
            propSet=[q.PropertySpec(type=vim_type(r.type_name), pathSet=list(r.paths), all=False)],
        )
        for r in reads
    ]


def _serialise(stub: Any, mo: Any, method: str, args: list[Any]) -> bytes:
    body: bytes = stub.SerializeRequest(mo, type(mo)._GetMethodInfo(method), args)
    return body


def _read_request(stub: Any, pc: Any, reads: Sequence[Read]) -> bytes:
    """The ``RetrievePropertiesEx`` request for *reads*: a cached shape with the MoRef ids spliced in."""
    objects = [o for r in reads for o in r.objects]

    def serialise(chosen: Sequence[Read]) -> bytes:
        options = sdk().vmodl.query.PropertyCollector.RetrieveOptions()
        return _serialise(stub, pc, "RetrievePropertiesEx", [_specs(chosen), options])

    if not _soap_header(stub) and not any(o._serverGuid for o in objects):
        key = ("read", stub.versionId, pc._moId, tuple((r.type_name, r.paths, *map(type, r.objects)) for r in reads))
        parts = _template(
            key,
            len(objects),
            lambda: serialise(
                [Read(r.type_name, tuple(type(o)(_MARK, stub) for o in r.objects), r.paths) for r in reads]
            ),
        )
        if parts is not None:
            # pyVmomi writes a MoRef id as it is (no escaping): so does the template.
            return _fill(parts, [o._moId for o in objects])
    return serialise(reads)


def _method_request(stub: Any, mo: Any, info: Any, args: list[Any]) -> bytes:
    """A method call's request: cached per shape when its arguments are ``None``, booleans and strings."""
    if not _soap_header(stub) and not mo._serverGuid and all(a is None or type(a) in (bool, str) for a in args):
        key = ("call", stub.versionId, type(mo), info.wsdlName, tuple(str if isinstance(a, str) else a for a in args))
        strings = [a for a in args if isinstance(a, str)]
        marked = [_MARK if isinstance(a, str) else a for a in args]
        parts = _template(key, 1 + len(strings), lambda: stub.SerializeRequest(type(mo)(_MARK, stub), info, marked))
        if parts is not None:
            return _fill(parts, [mo._moId, *(_xml_escape(a) for a in strings)])
    body: bytes = stub.SerializeRequest(mo, info, args)
    return body


def _xml_escape(text: str) -> str:
    """The escaping pyVmomi's ``XmlEscape`` gives string arguments (``&``, ``>``, ``<``)."""
    return text.replace("&", "&amp;").replace(">", "&gt;").replace("<", "&lt;")


def _headers(stub: Any) -> dict[str, str]:
    headers = {
        "Cookie": stub.cookie,
        "SOAPAction": stub.versionId,
        "Content-Type": "text/xml; charset=UTF-8",
    }
    headers.update(getattr(stub, "_customHeaders", None) or {})
    return headers


def _roundtrip(stub: Any, conn: Any, body: bytes) -> HttpAnswer:
    """One request on a pooled connection, the answer read whole (:mod:`._http`, or ``http.client`` for others)."""
    if usable(conn):
        return exchange(conn, stub.path, _headers(stub), body)
    try:
        conn.request("POST", stub.path, body, _headers(stub))
        response = conn.getresponse()
        data = response.read()
    except BaseException:
        conn.close()
        raise
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return HttpAnswer(response.status, response.reason, headers, data)


def _take_cookie(stub: Any, cookie: str | None) -> None:
    """What ``SoapStubAdapter.InvokeMethod`` does with a ``Set-Cookie`` answer header (a renewed session)."""
    if cookie:
        soap = _soap_adapter()
        stub.cookie = cookie
        morsel = SimpleCookie(cookie).get(soap.COOKIE_NAME)
        if morsel:
            super(soap.SoapStubAdapter, stub).SetSessionId(morsel.value)


def _deserialise(stub: Any, body: bytes, encoding: str, result_type: Any) -> Any:
    """The answer body as pyVmomi reads it: its result object, or the fault object of an HTTP 500."""
    soap = _soap_adapter()
    stream: Any = io.BytesIO(body)
    if encoding in ("gzip", "deflate"):
        reader = soap.GzipReader
        stream = reader(stream, encoding=reader.GZIP if encoding == "gzip" else reader.DEFLATE)
    return soap.SoapResponseDeserializer(stub).Deserialize(stream, result_type)


def _soap(stub: Any, body: bytes, result_type: Any, fast: Callable[[bytes], Any]) -> tuple[bool, Any]:
    """One SOAP request answered as ``SoapStubAdapter.InvokeMethod`` answers it; ``(lean, value)``.

    *fast* decodes a plain ``200`` body (``None``, or :class:`_Fallback`: it cannot); then the value
    is its result and *lean* is true. Any other answer is pyVmomi's to read, from the bytes
    received (the request is never sent again): a ``200`` becomes pyVmomi's result object, a ``500``
    pyVmomi's fault, raised; another status raises ``HTTPException``; a transport error drops the
    stub's pool and propagates; a ``Set-Cookie`` renews the stub's cookie — all as pyVmomi does.
    """
    conn = stub.GetConnection()
    try:
        answer = _roundtrip(stub, conn, body)
    except Exception:
        conn.close()
        stub.DropConnections()  # as pyVmomi: the server is probably sick
        raise
    _take_cookie(stub, answer.headers.get("set-cookie"))
    status = answer.status
    if status not in (200, 500):
        conn.close()
        raise http.client.HTTPException(f"{status} {answer.reason}")
    encoding = answer.headers.get("content-encoding", "identity").lower()
    if status == 200 and encoding == "identity":
        try:
            found = fast(answer.body)
        except (_Fallback, ET.ParseError, ValueError, LookupError) as why:
            log.debug("lean reading not possible (%s); pyVmomi reads the answer", why)
            found = None
        if found is not None:
            stub.ReturnConnection(conn)
            return True, found
    try:
        obj = _deserialise(stub, answer.body, encoding, result_type)
    except Exception:
        conn.close()
        stub.DropConnections()
        raise
    stub.ReturnConnection(conn)
    if status == 200:
        return False, obj
    if isinstance(obj, BaseException):
        raise obj
    raise _NonFaultAnswer(f"the server answered HTTP 500 with a non-fault {type(obj).__name__}")


class _NonFaultAnswer(Exception):
    """An HTTP 500 answer whose body is not a fault (pyVmomi raises a plain ``Exception`` there too)."""


def _post(stub: Any, pc: Any, method: str, body: bytes) -> Any:
    """Send one inventory page request; return ``(conn, response)`` of a ``200``, streamed by ``http.client``.

    Errors are pyVmomi's, from this one request: a transport error or an HTTP status other than
    200/500 raises as ``InvokeMethod`` does, a ``500`` raises pyVmomi's fault read from its body.
    Only a ``200`` that is compressed goes back to pyVmomi (:class:`_Fallback`: the read is sent again).
    """
    if getattr(stub, "requestModifierList", None):
        raise _Fallback("request modifiers installed")
    conn = stub.GetConnection()
    try:
        conn.request("POST", stub.path, body, _headers(stub))
        response = conn.getresponse()
    except Exception:
        conn.close()
        stub.DropConnections()
        raise
    _take_cookie(stub, response.getheader("Set-Cookie"))
    encoding = (response.getheader("Content-Encoding") or "identity").lower()
    if response.status == 200 and encoding == "identity":
        return conn, response
    try:
        data = response.read()
    except Exception:
        conn.close()
        stub.DropConnections()
        raise
    if response.status == 200:
        stub.ReturnConnection(conn)
        raise _Fallback(f"{encoding} answer")
    if response.status != 500:
        conn.close()
        raise http.client.HTTPException(f"{response.status} {response.reason}")
    try:
        obj = _deserialise(stub, data, encoding, _method_info(pc.__class__, method).result)
    except Exception:
        conn.close()
        stub.DropConnections()
        raise
    stub.ReturnConnection(conn)
    if isinstance(obj, BaseException):
        raise obj
    raise _NonFaultAnswer(f"the server answered HTTP 500 with a non-fault {type(obj).__name__}")


# -- answers ----------------------------------------------------------------------------------------------


def _kind(elem: ET.Element) -> str:
    """The element's ``xsi:type`` without a namespace prefix (``""`` when it has none)."""
    return elem.get(_XSI_TYPE, "").rpartition(":")[2]


def _scalar_value(val: ET.Element, decoders: Mapping[str, Decoder], typed: bool) -> Any:
    decoder = decoders.get(_kind(val))
    if decoder is not None:
        return decoder(val)
    if len(val):
        raise _Fallback(f"non-scalar value ({_kind(val) or 'untyped'})")
    if typed:
        raise _Fallback(f"a {_kind(val) or 'untyped'} value whose type matters")
    return val.text or ""


def _object_values(
    elem: ET.Element, decoders: Mapping[str, Decoder], typed: frozenset[str] = frozenset()
) -> tuple[str, dict[str, Any]]:
    """One ``<objects>`` (``obj``, ``propSet`` *, ``missingSet`` *) → ``(moid, {path: value})``."""
    moid: str | None = None
    props: dict[str, Any] = {}
    for child in elem:
        tag = child.tag
        if tag == _PROPSET:
            name: str | None = None
            val: ET.Element | None = None
            for part in child:
                if part.tag == _NAME:
                    name = part.text
                elif part.tag == _VAL:
                    val = part
            props[name or ""] = _scalar_value(val, decoders, name in typed) if val is not None else ""
        elif tag == _OBJ:
            moid = child.text
        elif tag == _MISSING:
            raise _Fallback("missing properties (a fault per property)")
    if not moid:
        raise _Fallback("object without a reference")
    return moid, props


# The server is the TLS-verified, authenticated vCenter/ESXi pyVmomi parses with expat too;
# ElementTree resolves no external entities and expat ≥ 2.4 caps entity expansion.


def _parse_stream(response: Any, out: ObjectValues, decoders: Mapping[str, Decoder]) -> str | None:
    """Append the objects of one page, parsed as they arrive (big inventory pages); return the paging token."""
    token: str | None = None
    for _, elem in ET.iterparse(response, events=("end",)):  # noqa: S314 - trusted source, see above
        tag = elem.tag
        if tag == _OBJECTS:
            out.append(_object_values(elem, decoders))
            elem.clear()
        elif tag == _TOKEN:
            token = elem.text or None
    return token


def _parse_whole(
    data: bytes, out: ObjectValues, decoders: Mapping[str, Decoder], typed: frozenset[str] = frozenset()
) -> str | None:
    """Like :func:`_parse_stream` for a small answer (one or a few objects), parsed at once.

    Half the cost of ``iterparse`` for a one-object answer (no per-element events).
    """
    root = ET.fromstring(data)  # noqa: S314 - trusted source, see above
    returnval = next(root.iter(_RETURNVAL), None)
    if returnval is None:
        if not any(next(root.iter(tag), None) is not None for tag in _RESPONSE_TAGS):
            raise _Fallback("not a RetrievePropertiesEx answer")
        return None  # an empty result: no object matched
    token: str | None = None
    for child in returnval:
        if child.tag == _OBJECTS:
            out.append(_object_values(child, decoders, typed))
        elif child.tag == _TOKEN:
            token = child.text or None
    return token


def _pages(stub: Any, pc: Any, body: bytes, decoders: Mapping[str, Decoder]) -> ObjectValues:
    """Inventory pages, streamed (``iterparse``) and followed by ``ContinueRetrievePropertiesEx``."""
    out: ObjectValues = []
    conn, response = _post(stub, pc, "RetrievePropertiesEx", body)
    while True:
        try:
            token = _parse_stream(response, out, decoders)
        except _Fallback:
            conn.close()
            raise
        except (ET.ParseError, ValueError, LookupError):
            conn.close()
            raise _Fallback("unparsable or unexpected answer") from None
        response.read()
        stub.ReturnConnection(conn)
        if not token:
            return out
        body = _serialise(stub, pc, "ContinueRetrievePropertiesEx", [token])
        conn, response = _post(stub, pc, "ContinueRetrievePropertiesEx", body)


def _sdk_page(result: Any) -> tuple[ObjectValues, str | None]:
    """A pyVmomi ``RetrieveResult`` as ``(moid, {path: value})``, ``missingSet`` ignored (as pyVmomi's callers do)."""
    if result is None:
        return [], None
    values = [(str(c.obj._moId), {str(p.name): p.val for p in c.propSet or ()}) for c in result.objects or ()]
    return values, getattr(result, "token", None) or None


def _pages_whole(
    stub: Any, pc: Any, body: bytes, decoders: Mapping[str, Decoder], typed: frozenset[str]
) -> ObjectValues:
    """Per-operation reads: each answer read whole, decoded leanly or by pyVmomi (pages followed too)."""
    out: ObjectValues = []
    method = "RetrievePropertiesEx"

    def fast(data: bytes) -> tuple[ObjectValues, str | None]:
        page: ObjectValues = []
        token = _parse_whole(data, page, decoders, typed)
        return page, token

    while True:
        lean, value = _soap(stub, body, _method_info(pc.__class__, method).result, fast)
        page, token = value if lean else _sdk_page(value)
        out.extend(page)
        if not token:
            return out
        method = "ContinueRetrievePropertiesEx"
        body = _serialise(stub, pc, method, [token])


# -- decoders of the per-operation reads ------------------------------------------------------------------


def _moref_decoder(stub: Any) -> Decoder:
    """``<val xsi:type="ManagedObjectReference" type="VirtualMachineSnapshot">snapshot-7</val>`` → a proxy."""

    def decode(elem: ET.Element) -> Any:
        type_name = elem.get("type") or ""
        if not type_name or not elem.text or elem.get("serverGuid") is not None or len(elem):
            raise _Fallback("unusual managed object reference")
        try:
            cls = _vmomi_support().GetWsdlType("urn:vim25", type_name.rpartition(":")[2])
        except Exception:  # noqa: BLE001 - a type this pyVmomi does not know: let pyVmomi decide
            raise _Fallback(f"unknown managed object type {type_name!r}") from None
        return cls(elem.text, stub)

    return decode


_SNAPSHOT = _VIM + "snapshot"
_CHILD_SNAPSHOTS = _VIM + "childSnapshotList"
_ROOT_SNAPSHOTS = _VIM + "rootSnapshotList"
_CURRENT_SNAPSHOT = _VIM + "currentSnapshot"


def _snapshot_node(elem: ET.Element) -> SnapshotNode:
    """A ``VirtualMachineSnapshotTree`` node, its ``childSnapshotList`` recursively."""
    fields: dict[str, str] = {}
    children: list[SnapshotNode] = []
    for child in elem:
        if child.tag == _CHILD_SNAPSHOTS:
            children.append(_snapshot_node(child))
        else:
            fields[child.tag] = child.text or ""
    moid = fields.get(_SNAPSHOT)
    if not moid:
        raise _Fallback("snapshot node without its snapshot reference")
    created_text = fields.get(_VIM + "createTime")
    created = _parse_iso8601()(created_text) if created_text else None
    if created_text and created is None:
        raise _Fallback("unparsable createTime")
    number = fields.get(_VIM + "id")
    return SnapshotNode(
        moid=moid,
        name=fields.get(_VIM + "name", ""),
        description=fields.get(_VIM + "description", ""),
        created=created,
        state=fields.get(_VIM + "state") or "poweredOff",
        quiesced=fields.get(_VIM + "quiesced") in ("true", "1"),
        number=int(number) if number else None,
        children=tuple(children),
    )


def _snapshot_info(elem: ET.Element) -> SnapshotTree:
    """A ``VirtualMachineSnapshotInfo`` (the VM's ``snapshot`` property) → :class:`SnapshotTree`."""
    current: str | None = None
    roots: list[SnapshotNode] = []
    for child in elem:
        if child.tag == _ROOT_SNAPSHOTS:
            roots.append(_snapshot_node(child))
        elif child.tag == _CURRENT_SNAPSHOT:
            current = child.text or None
    return SnapshotTree(current=current, roots=tuple(roots))


# -- entry points -----------------------------------------------------------------------------------------


def retrieve_scalars(stub: Any, pc: Any, specs: list[Any], page_size: int) -> list[tuple[str, dict[str, str]]] | None:
    """``RetrievePropertiesEx`` (+ continuation) of scalar paths read leanly; ``None``: pyVmomi must do it."""
    options = sdk().vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
    try:
        return _pages(stub, pc, _serialise(stub, pc, "RetrievePropertiesEx", [specs, options]), {})
    except _Fallback as why:
        log.debug("lean property read not possible (%s); using pyVmomi", why)
        return None


def read_objects(stub: Any, pc: Any, reads: Sequence[Read]) -> ObjectValues | None:
    """The paths of the given objects in one ``RetrievePropertiesEx`` (pages followed): ``(moid, {path: value})``.

    Values: text for scalars, a pyVmomi proxy for a MoRef, a :class:`SnapshotTree` for a
    ``VirtualMachineSnapshotInfo``; an unset property is absent, as with pyVmomi. An answer outside
    those shapes is read by pyVmomi from the same bytes (its objects then); faults and transport
    errors raise as through pyVmomi. ``None``: not attempted (request modifiers, a stub other than
    ``SoapStubAdapter``), the caller asks pyVmomi.
    """
    if stub is None or type(stub) is not _soap_adapter().SoapStubAdapter or getattr(stub, "requestModifierList", None):
        return None
    decoders: dict[str, Decoder] = {
        "ManagedObjectReference": _moref_decoder(stub),
        "VirtualMachineSnapshotInfo": _snapshot_info,
    }
    typed = frozenset(p for r in reads for p in r.typed)
    return _pages_whole(stub, pc, _read_request(stub, pc, reads), decoders, typed)


# -- method calls -----------------------------------------------------------------------------------------


@functools.cache
def _method_info(cls: Any, wsdl_name: str) -> Any:
    """The method info pyVmomi keeps for *cls*'s WSDL method *wsdl_name* (``"PowerOffVM_Task"``)."""
    for klass in cls.__mro__:
        for info in getattr(klass, "_methodInfo", {}).values():
            if info.wsdlName == wsdl_name:
                return info
    raise AttributeError(wsdl_name)


_SOAP_BODY = "{http://schemas.xmlsoap.org/soap/envelope/}Body"


def _returned_ref(data: bytes, stub: Any, result_type: type) -> Any:
    """The proxy of a plain ``<returnval type="Task">task-12</returnval>`` answer; ``None`` for anything else."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - trusted source, see _parse_stream
    except ET.ParseError:
        return None
    body = root.find(_SOAP_BODY)
    if body is None or len(body) != 1 or not body[0].tag.endswith("Response") or len(body[0]) != 1:
        return None
    returnval = body[0][0]
    type_name = returnval.get("type")
    if returnval.tag != _RETURNVAL or not type_name or len(returnval.attrib) != 1 or len(returnval):
        return None
    if not returnval.text:
        return None
    try:
        cls = _vmomi_support().GetWsdlType("urn:vim25", type_name)
    except Exception:  # noqa: BLE001 - unknown to this pyVmomi: its deserialiser decides
        return None
    return cls(returnval.text, stub) if issubclass(cls, result_type) else None


def invoke(mo: Any, method: str, *args: Any) -> Any:
    """``mo.<method>(*args)`` (WSDL name, ``"PowerOffVM_Task"``) for a method answering a managed object (a Task).

    Sent as ``SoapStubAdapter.InvokeMethod`` sends it — the same arguments check, the same bytes
    (pyVmomi's serialisation, cached per shape), the stub's pooled connection and cookie — and a
    plain ``<returnval type=…>id</returnval>`` answer becomes the proxy without pyVmomi's
    deserialiser. Every other answer (a SOAP fault with HTTP 500, a new session cookie, a
    compressed or unusual body) is handled by pyVmomi's own deserialiser on the bytes received,
    exactly as ``InvokeMethod`` would: the call is never sent twice, faults are pyVmomi's
    exceptions (so :meth:`Session.call` still logs in again on ``NotAuthenticated``), and a
    transport error drops the pool and propagates. Other stubs (a session-oriented stub, request
    modifiers) get pyVmomi's call itself.
    """
    stub = mo._stub
    soap = _soap_adapter()
    info = _method_info(mo.__class__, method)
    vmomi = _vmomi_support()
    if (
        type(stub) is not soap.SoapStubAdapter
        or getattr(stub, "requestModifierList", None)
        or len(args) > len(info.params)
        or not issubclass(info.result, vmomi.ManagedObject)
    ):
        return getattr(mo, method)(*args)
    full = [*args, *([None] * (len(info.params) - len(args)))]
    for param, arg in zip(info.params, full, strict=True):
        vmomi.CheckField(param, arg)
    body = _method_request(stub, mo, info, full)
    return _soap(stub, body, info.result, lambda data: _returned_ref(data, stub, info.result))[1]
