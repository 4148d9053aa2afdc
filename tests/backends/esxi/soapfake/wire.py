"""The vSphere SOAP wire format: parse requests, build responses and faults.

Shapes follow what vcsim 0.24 (VMware's govmomi simulator) puts on the wire, recorded from a
pyVmomi session through the proxy (see ``test_esxi_soapfake.py::test_fault_envelope_matches_vcsim``):

* requests: ``soapenv:Envelope/soapenv:Body/<Method xmlns="urn:vim25">`` with ``<_this type="T">moid</_this>``
  and one element per argument (arrays repeat the element, data objects carry ``xsi:type``);
* responses: ``<MethodResponse xmlns="urn:vim25"><returnval …>…</returnval></MethodResponse>``
  (no ``returnval`` for void methods; one ``returnval`` per element for arrays);
* faults: HTTP 500 with ``soapenv:Fault`` → ``faultcode`` ``ServerFaultCode``, ``faultstring``, and
  ``detail/<XxxFault xmlns="urn:vim25" xsi:type="Xxx">`` holding the fault's properties.
"""

from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape, quoteattr

SOAPENV = "http://schemas.xmlsoap.org/soap/envelope/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
XSD = "http://www.w3.org/2001/XMLSchema"
VIM = "urn:vim25"

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" xmlns:soapenv="{SOAPENV}" '
    f'xmlns:xsd="{XSD}" xmlns:xsi="{XSI}">'
    "<soapenv:Body>"
)
_TAIL = "</soapenv:Body></soapenv:Envelope>"


@dataclass
class MoRef:
    """A managed-object reference: ``<x type="VirtualMachine">vm-42</x>``."""

    type: str
    value: str

    def xml(self, tag: str) -> str:
        return f"<{tag} type={quoteattr(self.type)}>{escape(self.value)}</{tag}>"


@dataclass
class SoapRequest:
    """One parsed SOAP call."""

    method: str
    this: MoRef
    args: dict[str, list[ET.Element]] = field(default_factory=dict)

    def arg(self, name: str) -> ET.Element | None:
        found = self.args.get(name)
        return found[0] if found else None

    def text(self, name: str, default: str = "") -> str:
        element = self.arg(name)
        return (element.text or "") if element is not None else default

    def moref(self, name: str) -> MoRef | None:
        element = self.arg(name)
        return None if element is None else MoRef(element.get("type", ""), element.text or "")

    def data(self, name: str) -> dict[str, Any]:
        """A data-object argument as ``{child: text or nested dict or list}``; ``_type`` is its xsi:type."""
        element = self.arg(name)
        return {} if element is None else to_dict(element)


def local(tag: str) -> str:
    """The local part of a ``{ns}name`` tag."""
    return tag.rsplit("}", 1)[-1]


def to_dict(element: ET.Element) -> dict[str, Any]:
    """A data object as a dict; repeated children become lists, leaves their text."""
    out: dict[str, Any] = {"_type": local(element.get(f"{{{XSI}}}type", ""))}
    for child in element:
        name = local(child.tag)
        value: Any = to_dict(child) if len(child) else (child.text or "")
        if name in out and name != "_type":
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


def parse_request(body: bytes) -> SoapRequest:
    """Parse a request envelope (raises ValueError when it is not a vim25 call)."""
    root = ET.fromstring(body)
    soap_body = root.find(f"{{{SOAPENV}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise ValueError("no SOAP body")
    call = soap_body[0]
    args: dict[str, list[ET.Element]] = {}
    this = MoRef("", "")
    for child in call:
        name = local(child.tag)
        if name == "_this":
            this = MoRef(child.get("type", ""), child.text or "")
        else:
            args.setdefault(name, []).append(child)
    return SoapRequest(local(call.tag), this, args)


def method_of(body: bytes) -> str:
    """The method name of a request, or ``""`` when the body is not a SOAP call."""
    try:
        return parse_request(body).method
    except (ValueError, ET.ParseError):
        return ""


def envelope(inner: str) -> bytes:
    """Wrap body content in the response envelope."""
    return (_HEAD + inner + _TAIL).encode("utf-8")


def response(method: str, *returnvals: str) -> bytes:
    """``<MethodResponse>`` with the given, already serialised ``returnval`` elements."""
    return envelope(f'<{method}Response xmlns="{VIM}">' + "".join(returnvals) + f"</{method}Response>")


def leaf(tag: str, value: Any, xsi_type: str = "") -> str:
    """``<tag>value</tag>`` (booleans as ``true``/``false``, datetimes as ISO 8601 UTC)."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, datetime.datetime):
        text = value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    else:
        text = escape(str(value))
    attr = f' xsi:type="{xsi_type}"' if xsi_type else ""
    return f"<{tag}{attr}>{text}</{tag}>"


def obj(tag: str, xsi_type: str, *children: str) -> str:
    """A data object element with an ``xsi:type`` and serialised children."""
    return f'<{tag} xsi:type="{xsi_type}">' + "".join(children) + f"</{tag}>"


def fault(type_name: str, message: str, *properties: str) -> bytes:
    """A SOAP fault for vim fault *type_name* (``InvalidGuestLogin``), with its properties serialised."""
    detail = f'<{type_name}Fault xmlns="{VIM}" xsi:type="{type_name}">' + "".join(properties) + f"</{type_name}Fault>"
    return envelope(
        "<soapenv:Fault><faultcode>ServerFaultCode</faultcode>"
        f"<faultstring>{escape(message)}</faultstring>"
        f"<detail>{detail}</detail></soapenv:Fault>"
    )


class SoapFault(Exception):
    """Raised by a fake handler: becomes an HTTP 500 SOAP fault."""

    def __init__(self, type_name: str, message: str = "", *properties: str) -> None:
        super().__init__(message or type_name)
        self.type_name = type_name
        self.message = message or type_name
        self.properties = properties

    def body(self) -> bytes:
        return fault(self.type_name, self.message, *self.properties)


def parse_response(body: bytes) -> ET.Element:
    """The first element of a response's SOAP body (``…Response`` or ``soapenv:Fault``)."""
    root = ET.fromstring(body)
    soap_body = root.find(f"{{{SOAPENV}}}Body")
    if soap_body is None or len(soap_body) == 0:
        raise ValueError("no SOAP body in the response")
    return soap_body[0]


def skeleton(body: bytes) -> list[tuple[str, tuple[tuple[str, str], ...]]]:
    """The element structure of an envelope: tags, attribute names and xsi:type values, no text.

    For comparing the shape of our envelopes with vcsim's.
    """
    root = ET.fromstring(body)
    xsi_type = f"{{{XSI}}}type"
    return [
        (el.tag, tuple(sorted((k, v if k == xsi_type else "") for k, v in el.attrib.items()))) for el in root.iter()
    ]
