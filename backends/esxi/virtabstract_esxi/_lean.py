"""A lean reader of ``RetrievePropertiesEx`` answers for scalar-only property sets (the inventory's hot path).

pyVmomi spends about 90 % of a bulk property retrieval turning the SOAP answer into
objects (``DynamicProperty``, ``ObjectContent``, a ``ManagedObject`` proxy per VM …). For
a path set of *scalars* (strings, numbers, enums) none of that is needed: this module
sends the very request pyVmomi would (serialised by pyVmomi itself, on a connection from
the stub's own pool, with its session cookie) and reads the answer with
``xml.etree.ElementTree.iterparse``, yielding ``(moid, {path: text})`` per object.

Robustness: anything but a clean ``200`` answer made only of scalar values — a SOAP
fault (``NotAuthenticated``, ``ManagedObjectNotFound`` of an expired view …), a changed
session cookie, an HTTP or parse error, a non-scalar value — makes :func:`retrieve_scalars`
return ``None`` and the caller runs the same retrieval through pyVmomi, which raises the
proper fault and lets :meth:`Session.call` log in again. Paging
(``ContinueRetrievePropertiesEx`` with the returned token) is followed here the same way.
Values are returned as text; callers convert them (``int(...)``) with the types they know.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

from ._sdk import sdk

__all__ = ["retrieve_scalars"]

log = logging.getLogger("virtabstract.esxi")

_VIM = "{urn:vim25}"
_OBJECTS = _VIM + "objects"
_TOKEN = _VIM + "token"
_OBJ = _VIM + "obj"
_PROPSET = _VIM + "propSet"
_NAME = _VIM + "name"
_VAL = _VIM + "val"
_MISSING = _VIM + "missingSet"


class _Fallback(Exception):
    """The lean path cannot answer this one: use pyVmomi."""


def _post(stub: Any, mo: Any, method: str, args: list[Any]) -> Any:
    """Send one method call the way ``SoapStubAdapter.InvokeMethod`` does; return the open response."""
    if getattr(stub, "requestModifierList", None):
        raise _Fallback("request modifiers installed")
    info = type(mo)._GetMethodInfo(method)
    body = stub.SerializeRequest(mo, info, args)
    headers = {
        "Cookie": stub.cookie,
        "SOAPAction": stub.versionId,
        "Content-Type": "text/xml; charset=UTF-8",
    }
    headers.update(getattr(stub, "_customHeaders", None) or {})
    conn = stub.GetConnection()
    try:
        conn.request("POST", stub.path, body, headers)
        response = conn.getresponse()
    except Exception:  # noqa: BLE001 - pyVmomi's path re-does the call and reports it properly
        conn.close()
        raise _Fallback("transport") from None
    if response.status != 200 or response.getheader("Set-Cookie") or response.getheader("Content-Encoding"):
        response.read()
        conn.close()
        raise _Fallback(f"HTTP {response.status}")
    return conn, response


def _parse(response: Any, out: list[tuple[str, dict[str, str]]]) -> str | None:
    """Append ``(moid, {path: text})`` per object of one page; return the paging token, if any."""
    token: str | None = None
    # The server is the TLS-verified, authenticated vCenter/ESXi pyVmomi parses with expat too;
    # ElementTree resolves no external entities and expat ≥ 2.4 caps entity expansion.
    for _, elem in ET.iterparse(response, events=("end",)):  # noqa: S314 - trusted source, see above
        tag = elem.tag
        if tag == _OBJECTS:
            obj = elem.find(_OBJ)
            if obj is None or not obj.text:
                raise _Fallback("object without a reference")
            props: dict[str, str] = {}
            for prop in elem.iterfind(_PROPSET):
                val = prop.find(_VAL)
                if val is not None and len(val):
                    raise _Fallback("non-scalar value")
                props[prop.findtext(_NAME) or ""] = (val.text or "") if val is not None else ""
            if elem.find(_MISSING) is not None:
                raise _Fallback("missing properties (a fault per property)")
            out.append((obj.text, props))
            elem.clear()
        elif tag == _TOKEN:
            token = elem.text or None
    return token


def _pages(stub: Any, pc: Any, specs: list[Any], options: Any) -> Iterator[tuple[str, dict[str, str]]]:
    out: list[tuple[str, dict[str, str]]] = []
    conn, response = _post(stub, pc, "RetrievePropertiesEx", [specs, options])
    while True:
        try:
            token = _parse(response, out)
        except _Fallback:
            conn.close()
            raise
        except ET.ParseError:
            conn.close()
            raise _Fallback("unparsable answer") from None
        response.read()
        stub.ReturnConnection(conn)
        if not token:
            break
        conn, response = _post(stub, pc, "ContinueRetrievePropertiesEx", [token])
    yield from out


def retrieve_scalars(stub: Any, pc: Any, specs: list[Any], page_size: int) -> list[tuple[str, dict[str, str]]] | None:
    """``RetrievePropertiesEx`` (+ continuation) read leanly; ``None`` when pyVmomi must do it instead."""
    options = sdk().vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=page_size)
    try:
        return list(_pages(stub, pc, specs, options))
    except _Fallback as why:
        log.debug("lean property read not possible (%s); using pyVmomi", why)
        return None
