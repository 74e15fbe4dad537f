"""The recipe's JSON Schema (for editors) and its Markdown reference, both from schema.py.

Why generated: a hand-written schema or reference drifts from what the validator accepts; these
walk the same Node tree the validator walks, and tests compare docs/recipes.md and the schema
against them.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from imagepipe.recipe.schema import (
    CHECKSUM_PATTERN,
    EXTENDS_DOC,
    MISSING,
    SIZE_PATTERN,
    FieldSpec,
    Node,
    recipe_node,
)

SCHEMA_ID = "https://imagepipe.invalid/schema/recipe-v1.json"
BEGIN = "<!-- BEGIN GENERATED REFERENCE (imagepipe schema --markdown) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _plain(value: Any) -> Any:
    """A default as recipe data: dataclasses -> mappings of their non-default fields."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.default is not MISSING and v == f.default:
                continue
            if f.default_factory is not MISSING and v == f.default_factory():
                continue
            out[f.name] = _plain(v)
        return out
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _node_schema(node: Node) -> dict[str, Any]:
    kind = node.kind
    s: dict[str, Any]
    if kind == "object":
        s = {"type": "object", "additionalProperties": False,
             "properties": {name: _field_schema(f) for name, f in node.fields.items()}}
        required = [n for n, f in node.fields.items() if f.required]
        if required:
            s["required"] = required
        return s
    if kind == "list":
        assert node.item is not None
        s = {"type": "array", "items": _node_schema(node.item)}
        if node.min_items:
            s["minItems"] = node.min_items
        if node.one_or_list:
            return {"anyOf": [_node_schema(node.item), s]}
        return s
    if kind == "map":
        return {"type": "object",
                "additionalProperties": {"type": ["string", "number", "boolean"]}}
    if kind == "size":
        return {"oneOf": [{"type": "integer", "minimum": 0},
                          {"type": "string", "pattern": SIZE_PATTERN}]}
    if kind == "checksum":
        return {"type": "string", "pattern": CHECKSUM_PATTERN}
    if kind == "enum":
        return {"enum": list(node.choices)}
    if kind == "int":
        s = {"type": "integer"}
        if node.minimum is not None:
            s["minimum"] = node.minimum
        if node.maximum is not None:
            s["maximum"] = node.maximum
        return s
    if kind == "bool":
        return {"type": "boolean"}
    s = {"type": "string"}  # str, path, file
    if node.pattern:
        s["pattern"] = node.pattern
    elif node.nonempty:
        s["pattern"] = r"\S"  # not empty and not only blanks, as the validator says
    return s


def _field_schema(f: FieldSpec) -> dict[str, Any]:
    s = _node_schema(f.node)
    if f.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    if f.doc:
        s["description"] = f.doc
    default = _plain(f.default) if f.default is not MISSING else None
    if default not in (None, {}, [], ""):
        s["default"] = default
    if f.example is not None:
        s["examples"] = [f.example]
    return s


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a recipe file as written (before extends/variables)."""
    top = _node_schema(recipe_node())
    required = top.pop("required", [])
    top["properties"] = {"extends": {"type": "string", "description": EXTENDS_DOC},
                         **top["properties"]}
    # A recipe that extends a base may leave the required keys to the base.
    top["if"] = {"not": {"required": ["extends"]}}
    top["then"] = {"required": required}
    top["properties"]["source"]["minProperties"] = 1
    top["properties"]["source"]["maxProperties"] = 1
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            "title": "imagepipe recipe, version 1",
            "description": "A YAML recipe for imagepipe (docs/recipes.md).", **top}


def _type_text(f: FieldSpec) -> str:
    n = f.node
    text = {"object": "mapping", "list": "list", "map": "mapping of strings", "str": "string",
            "int": "integer", "bool": "boolean", "size": "size (8G, 512M, bytes)",
            "checksum": "`sha256:HEX` / `sha512:HEX`", "path": "path", "file": "file path",
            "enum": "one of " + ", ".join(f"`{c}`" for c in n.choices)}[n.kind]
    if n.kind == "list" and n.item is not None:
        text = "list of " + {"object": "mappings", "str": "strings"}.get(n.item.kind,
                                                                        n.item.kind)
        if n.item.kind == "enum":
            text = ", ".join(f"`{c}`" for c in n.item.choices) + " (one or a list)"
    if n.kind == "int" and (n.minimum is not None or n.maximum is not None):
        text += f" {n.minimum if n.minimum is not None else ''}..{n.maximum or ''}"
    if f.nullable:
        text += " or null"
    return text


def _default_text(f: FieldSpec) -> str:
    if f.required:
        return "**required**"
    if f.default is MISSING or f.default is None:
        return "—"
    value = _plain(f.default)
    if isinstance(value, dict) and not value:
        return "{}"
    return "`" + json.dumps(value) + "`"


def _section(title: str, node: Node, out: list[str], path: str) -> None:
    out += [f"### `{title}`", "", "| key | type | default | description |", "|---|---|---|---|"]
    nested: list[tuple[str, Node]] = []
    for name, f in node.fields.items():
        doc = f.doc.replace("|", "\\|")
        if f.example is not None:
            doc += f" Example: `{json.dumps(f.example)}`."
        out.append(f"| `{name}` | {_type_text(f)} | {_default_text(f)} | {doc} |")
        sub = f.node.item if f.node.kind == "list" else f.node
        if sub is not None and sub.kind == "object":
            suffix = "[]" if f.node.kind == "list" else ""
            nested.append((f"{path}{name}{suffix}" if path else f"{name}{suffix}", sub))
    out.append("")
    for sub_path, sub_node in nested:
        _section(sub_path, sub_node, out, sub_path + ".")


def render_markdown() -> str:
    """The generated part of docs/recipes.md: one table per mapping, top-level first."""
    out = [BEGIN, "", "### top level", "", "| key | type | default | description |",
           "|---|---|---|---|", f"| `extends` | file path | — | {EXTENDS_DOC} |"]
    node = recipe_node()
    rows: list[str] = []
    _section("", node, rows, "")
    out += rows[4:]  # the top-level table continues the one started above
    out += [END, ""]
    return "\n".join(out)
