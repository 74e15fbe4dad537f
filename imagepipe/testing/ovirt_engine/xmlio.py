"""XML in and out, shaped like the engine's API v4 (docs/ovirt-simulator.md section 1).

Why generic and strict: entities are plain dicts rendered by one function, so every response
follows the same rules (prolog, href + id on entities, `<x href id/>` references, `<link rel>`
sub-collections, collection wrappers). Requests are checked against the API model the SDK itself
is generated from (ovirtsdk4.types), so an element the engine does not know is a 400, as JAXB
rejects it, instead of being silently dropped.
"""

from __future__ import annotations

import inspect
import xml.etree.ElementTree as ET
from typing import Any

# collection wrapper -> element name of one item
SINGULAR = {
    "storage_domains": "storage_domain", "data_centers": "data_center",
    "vnic_profiles": "vnic_profile", "image_transfers": "image_transfer",
    "disk_attachments": "disk_attachment", "disks": "disk", "vms": "vm",
    "templates": "template", "hosts": "host", "clusters": "cluster", "networks": "network",
    "nics": "nic", "nic_configurations": "nic_configuration", "devices": "device",
}


class Fault(Exception):
    """An engine error answer: HTTP status plus the `<fault>` reason and detail."""

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(f"{status} {reason}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def element(tag: str, obj: Any) -> ET.Element:
    """Render one value. Dict keys starting with `_` are internal state and never rendered."""
    el = ET.Element(tag)
    if not isinstance(obj, dict):
        el.text = _text(obj)
        return el
    for attr in ("href", "id", "rel"):
        if obj.get(attr) is not None:
            el.set(attr, str(obj[attr]))
    for key, value in obj.items():
        if key in ("href", "id", "rel") or key.startswith("_") or value is None:
            continue
        if key == "links":
            for rel, href in value:
                ET.SubElement(el, "link", rel=rel, href=href)
        elif isinstance(value, list):
            wrapper = ET.SubElement(el, key)
            for item in value:
                wrapper.append(element(SINGULAR.get(key, key.rstrip("s")), item))
        else:
            el.append(element(key, value))
    return el


def to_bytes(el: ET.Element) -> bytes:
    data: bytes = ET.tostring(el, encoding="utf-8", xml_declaration=True)
    return data


def render(tag: str, obj: Any) -> bytes:
    return to_bytes(element(tag, obj))


def render_list(tag: str, items: list[dict[str, Any]]) -> bytes:
    root = ET.Element(tag)
    for item in items:
        root.append(element(SINGULAR[tag], item))
    return to_bytes(root)


def render_fault(reason: str, detail: str | None) -> bytes:
    return render("fault", {"reason": reason, "detail": detail})


def action_complete() -> bytes:
    return render("action", {"status": "complete"})


# element names whose model type is not simply the CamelCase of the tag (None: not checked)
_MODEL: dict[str, str | None] = {"topology": "CpuTopology", "os": "OperatingSystem",
                                 "version": None, "boot": "Boot"}


def _sdk_fields(tag: str) -> set[str] | None:
    """Element names the API model allows under `tag`, from the SDK's generated types."""
    from ovirtsdk4 import types

    if tag in _MODEL:
        name = _MODEL[tag]
        if name is None:
            return None
    else:
        name = "".join(part.capitalize() for part in tag.split("_"))
    cls = getattr(types, name, None)
    if cls is None or not inspect.isclass(cls):
        return None
    params = set(inspect.signature(cls.__init__).parameters) - {"self"}
    return params | {"link"}


def _check(el: ET.Element, path: str) -> None:
    allowed = _sdk_fields(el.tag)
    for child in el:
        where = f"{path}/{child.tag}"
        if allowed is not None and child.tag not in allowed:
            raise Fault(400, "Request syntactically incorrect.",
                        f"unexpected element '{where}': not in the API model of '{el.tag}'")
        if child.tag in SINGULAR:
            for item in child:
                if item.tag != SINGULAR[child.tag]:
                    raise Fault(400, "Request syntactically incorrect.",
                                f"unexpected element '{where}/{item.tag}'")
                _check(item, f"{where}/{item.tag}")
        elif len(child):
            _check(child, where)


def _to_obj(el: ET.Element) -> Any:
    if el.tag in SINGULAR:
        return [_to_obj(item) for item in el]
    if not len(el) and not el.attrib:
        return el.text or ""
    obj: dict[str, Any] = dict(el.attrib)
    for child in el:
        obj[child.tag] = _to_obj(child)
    return obj


def parse(body: bytes, expected: str) -> dict[str, Any]:
    """Parse a request body whose root must be `expected`; strict about unknown elements."""
    if not body.strip():
        if expected == "action":
            return {}
        raise Fault(400, "Request syntactically incorrect.", f"a <{expected}> body is required")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise Fault(400, "Request syntactically incorrect.", str(exc)) from None
    if root.tag != expected:
        raise Fault(400, "Request syntactically incorrect.",
                    f"expected <{expected}> but got <{root.tag}>")
    _check(root, root.tag)
    obj = _to_obj(root)
    return obj if isinstance(obj, dict) else {}


def require(obj: dict[str, Any], entity: str, action: str, *fields: str) -> None:
    """The engine's answer to missing required fields: 400 Incomplete parameters."""
    missing = [f for f in fields if _get(obj, f) in (None, "", [], {})]
    if missing:
        names = "|".join(_camel(f) for f in missing)
        raise Fault(400, "Incomplete parameters", f"{entity} [{names}] required for {action}")


def _camel(path: str) -> str:
    head, *rest = path.replace(".", "_").split("_")
    return head + "".join(p.capitalize() for p in rest)


def _get(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def as_bool(value: Any, default: bool = False) -> bool:
    if value in (None, ""):
        return default
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise Fault(400, "Request syntactically incorrect.", f"not a boolean: {value!r}")


def as_int(value: Any, field: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Fault(400, "Request syntactically incorrect.",
                    f"{field}: not an integer: {value!r}") from None
