"""The checker that validates a merged, expanded recipe document (`Checker`, one walk).

The cross-field rules (recipe/rules.py) use this checker; `recipe/load.py` runs the walk, then
the rules, then builds the frozen `Recipe`, so this module imports neither of them.

Why everything at once: a user fixing a recipe one error per run gives up (osbuild and Packer
collect all config errors into one list). The walk below follows the `Node` tree from
recipe/schema.py (the same tree the JSON Schema and docs come from), records a located
`Problem` for every mistake and keeps going; the cross-field rules (one source, checksums,
output presets, file escapes, the user-data itself) run on whatever parsed.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from imagepipe import sizes
from imagepipe.errors import Problem
from imagepipe.recipe.schema import (
    CHECKSUM_PATTERN,
    NAME_PATTERN,
    SIZE_PATTERN,
    FieldSpec,
    Node,
)
from imagepipe.recipe.yaml_marks import Doc, Key, problem

BAD = object()  # a value that failed its check (its problem is already recorded)


def parse_size(text: str) -> int | None:
    """'8G' -> 8 GiB, '512M', '1.5G', '4096' (bytes); None if it is not a size."""
    if not re.match(SIZE_PATTERN, text):
        return None
    return sizes.parse_size(text)


def type_name(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__} ({value})"


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of: " + ", ".join(str(c) for c in choices)


class Checker:
    """Walks a document against the Node tree, collecting problems."""

    def __init__(self, doc: Doc) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def report(self, path: Key, message: str, hint: str | None = None, *,
               at_key: bool = False) -> None:
        mark = self.doc.key_marks.get(path) if at_key else None
        self.problems.append(problem(mark or self.doc.mark(path), path, message, hint))

    def base_dir(self, path: Key) -> Path:
        """The directory of the file that wrote `path` (relative paths are relative to it)."""
        mark = self.doc.mark(path)
        return Path(mark.file).resolve().parent if mark else Path.cwd()

    def check(self, node: Node, value: Any, path: Key) -> Any:
        method = getattr(self, f"_{node.kind}")
        return method(node, value, path)

    def _wrong(self, path: Key, expected: str, value: Any, hint: str | None = None) -> Any:
        if hint is None and isinstance(value, bool | int | float) and expected.startswith("a str"):
            hint = "quote it"
        self.report(path, f"expected {expected}, got {type_name(value)}", hint)
        return BAD

    def _object(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, dict):
            return self._wrong(path, "a mapping", value)
        out: dict[str, Any] = {}
        for key, item in value.items():
            spec = node.fields.get(key)
            if spec is None:
                self.report((*path, key), f"unknown key {key!r}", did_you_mean(key, node.fields),
                            at_key=True)
                continue
            got = self._field(spec, item, (*path, key))
            if got is not BAD:
                out[key] = got
        for name, spec in node.fields.items():
            if spec.required and name not in value:
                self.report((*path, name), f"missing required key {name!r}",
                            f"add {name}: ... ({spec.doc.rstrip('.')})" if spec.doc else None)
        return out  # bad keys left out; rules still see the rest (all errors at once)

    def _field(self, spec: FieldSpec, value: Any, path: Key) -> Any:
        if value is None:
            if spec.nullable:
                return None
            return self._wrong(path, _expected(spec.node), value, "remove the key to use the "
                               "default" if not spec.required else None)
        return self.check(spec.node, value, path)

    def _list(self, node: Node, value: Any, path: Key) -> Any:
        if node.scalar_ok and isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            return self._wrong(path, "a list", value, "write items as `- item` lines")
        if node.min_items and len(value) < node.min_items:
            self.report(path, f"needs at least {node.min_items} item(s)")
            return BAD
        assert node.item is not None
        items = [self.check(node.item, v, (*path, i)) if v is not None
                 else self._wrong((*path, i), _expected(node.item), v)
                 for i, v in enumerate(value)]
        return items  # BAD items stay in place so rules keep the right indexes

    def _map(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, dict):
            return self._wrong(path, "a mapping of KEY: VALUE", value)
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[k] = "on" if v else "off"
            elif isinstance(v, str | int | float):
                out[k] = str(v)
            else:
                self._wrong((*path, k), "a string", v)
                return BAD
        return out

    def _str(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, str):
            hint = 'quote it, e.g. "0644"' if path[-1] == "mode" else None
            return self._wrong(path, "a string", value, hint)
        if node.nonempty and not value.strip():
            self.report(path, "must not be empty")
            return BAD
        if node.pattern and value and not re.search(_anchored(node.pattern), value):
            self.report(path, f"{value!r} does not match {node.pattern}", _pattern_hint(node))
            return BAD
        return value

    def _int(self, node: Node, value: Any, path: Key) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self._wrong(path, "a whole number", value)
        if node.minimum is not None and value < node.minimum or \
                node.maximum is not None and value > node.maximum:
            hi = node.maximum if node.maximum is not None else "..."
            self.report(path, f"{value} is out of range", f"use {node.minimum}..{hi}")
            return BAD
        return value

    def _bool(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, bool):
            return self._wrong(path, "true or false", value)
        return value

    def _enum(self, node: Node, value: Any, path: Key) -> Any:
        if value not in node.choices or isinstance(value, bool):
            self.report(path, f"unknown value {value!r}", did_you_mean(value, node.choices))
            return BAD
        return value

    def _size(self, node: Node, value: Any, path: Key) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        size = parse_size(value) if isinstance(value, str) else None
        if size is None:
            self.report(path, f"{type_name(value)} is not a size",
                        "use a number with K, M, G or T (binary units), e.g. 8G or 512M")
            return BAD
        return size

    def _checksum(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, str):
            return self._wrong(path, "a string", value)
        algo, _, hexdigest = value.partition(":")
        want = {"sha256": 64, "sha512": 128}.get(algo.lower())
        if want is None:
            self.report(path, f"unknown checksum algorithm {algo!r}",
                        "write sha256:HEX or sha512:HEX")
            return BAD
        if len(hexdigest) != want or not re.fullmatch(r"[0-9a-fA-F]+", hexdigest):
            self.report(path, f"a {algo} checksum is {want} hex digits, got "
                        f"{len(hexdigest)} characters{'' if hexdigest.isalnum() else ' (not hex)'}",
                        "copy the digest from the vendor's checksum file or use checksum_url")
            return BAD
        assert re.match(CHECKSUM_PATTERN, f"{algo.lower()}:{hexdigest}")
        return f"{algo.lower()}:{hexdigest.lower()}"

    def _path(self, node: Node, value: Any, path: Key) -> Any:
        if not isinstance(value, str) or not value:
            return self._wrong(path, "a path", value)
        return (self.base_dir(path) / value).resolve()

    def _file(self, node: Node, value: Any, path: Key) -> Any:
        resolved = self._path(node, value, path)
        if resolved is BAD:
            return BAD
        if not resolved.is_file():
            self.report(path, f"file not found: {value}",
                        f"paths are relative to the recipe file; looked at {resolved}")
            return BAD
        return resolved


def _anchored(pattern: str) -> str:
    """Python's `$` also matches before a final newline, so `name: "x\\n"` would pass
    NAME_PATTERN and become a file name with a newline: end patterns at the true end."""
    return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") \
        else pattern


def _expected(node: Node) -> str:
    return {"object": "a mapping", "list": "a list", "str": "a string", "int": "a whole number",
            "bool": "true or false", "size": "a size", "checksum": "a checksum",
            "path": "a path", "file": "a path", "map": "a mapping", "enum": "one of "
            + ", ".join(str(c) for c in node.choices)}.get(node.kind, node.kind)


def _pattern_hint(node: Node) -> str | None:
    return {NAME_PATTERN: "use letters, digits, '.', '_' and '-'", r"^/": "must start with /",
            r"^(https?|file)://": "use an http://, https:// or file:// URL",
            r"^https://": "the engine is reached over TLS only: use https://"}.get(
        node.pattern or "")
