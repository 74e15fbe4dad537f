"""YAML -> plain data plus the FILE:LINE:COL of every key and value.

Why not `yaml.safe_load`: it forgets where things came from (so errors cannot point at a line),
silently keeps the last of two duplicate keys (a typo'd recipe then builds something else), and
expands aliases without bound (a few hundred bytes of "billion laughs" eat all memory). We let
PyYAML compose the node graph (linear in the input: aliases are shared nodes) and convert it
ourselves, recording marks, reporting duplicates, and stopping once expansion passes a limit.
Keys are taken as written (`on:` stays the string "on", not YAML 1.1's True).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagepipe.errors import Problem

Key = tuple[str | int, ...]
MAX_NODES = 20_000  # a real recipe has a few hundred; billion-laughs needs millions
MAX_ALIASES = 200


@dataclass(frozen=True)
class Mark:
    file: str
    line: int  # 1-based
    col: int  # 1-based


@dataclass
class Doc:
    """A parsed YAML document: its data and where every value (and mapping key) was written."""

    data: Any
    marks: dict[Key, Mark] = field(default_factory=dict)  # path -> mark of the value
    key_marks: dict[Key, Mark] = field(default_factory=dict)  # path -> mark of the key

    def mark(self, path: Key) -> Mark | None:
        """The mark of `path`, or of its nearest ancestor that has one."""
        while True:
            m = self.marks.get(path)
            if m is not None or not path:
                return m
            path = path[:-1]


def dotted(path: Key) -> str:
    """('outputs', 1, 'preset') -> 'outputs[1].preset'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def problem(mark: Mark | None, path: Key, message: str, hint: str | None = None,
            file: str = "") -> Problem:
    if mark is None:
        return Problem(file, None, None, dotted(path), message, hint)
    return Problem(mark.file, mark.line, mark.col, dotted(path), message, hint)


class _TooBig(Exception):
    def __init__(self, path: Key) -> None:
        self.path = path


class _Converter:
    def __init__(self, loader: yaml.SafeLoader, name: str) -> None:
        self.loader = loader
        self.name = name
        self.doc = Doc(None)
        self.problems: list[Problem] = []
        self.count = 0
        self.seen: set[int] = set()
        self.aliases = 0
        self.stack: set[int] = set()

    def mark(self, node: yaml.Node) -> Mark:
        m = node.start_mark
        return Mark(self.name, m.line + 1, m.column + 1)

    def convert(self, node: yaml.Node, path: Key) -> Any:
        self.count += 1
        if id(node) in self.seen and isinstance(node, yaml.CollectionNode):
            self.aliases += 1
        if self.count > MAX_NODES or self.aliases > MAX_ALIASES:
            raise _TooBig(path)
        if id(node) in self.stack:
            self.problems.append(problem(self.mark(node), path, "recursive YAML alias",
                                         "an anchor cannot contain an alias to itself"))
            return None
        self.seen.add(id(node))
        self.doc.marks[path] = self.mark(node)
        if isinstance(node, yaml.MappingNode):
            self.stack.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self.stack.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.stack.add(id(node))
            try:
                return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.stack.discard(id(node))
        try:
            return self.loader.construct_object(node)
        except yaml.constructor.ConstructorError as e:
            self.problems.append(problem(self.mark(node), path, f"unsupported YAML value: "
                                         f"{e.problem}", "use plain strings, numbers, booleans"))
            return None

    def _mapping(self, node: yaml.MappingNode, path: Key) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            kmark = self.mark(key_node)
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.problems.append(problem(kmark, path, "YAML merge keys (<<) are not "
                                             "supported", "use `extends:` to share settings"))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(problem(kmark, path, "a mapping key must be a plain name"))
                continue
            key = str(key_node.value)
            child = (*path, key)
            if key in out:
                first = self.doc.key_marks[child]
                self.problems.append(problem(
                    kmark, child, f"duplicate key {key!r}",
                    f"first defined at line {first.line}; keep one of them"))
                continue
            self.doc.key_marks[child] = kmark
            out[key] = self.convert(value_node, child)
        return out


def parse(text: str, name: str) -> tuple[Doc, list[Problem]]:
    """Parse one YAML document. Problems (syntax, duplicates, bombs) are returned, not raised."""
    loader = yaml.SafeLoader(text)
    loader.name = name
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            m = e.problem_mark or e.context_mark
            where = Mark(name, m.line + 1, m.column + 1) if m else None
            msg = f"YAML syntax error: {e.problem or e}"
            if e.context:
                msg += f" ({e.context})"
            return Doc(None), [problem(where, (), msg, "fix the YAML syntax", file=name)]
        except yaml.YAMLError as e:
            return Doc(None), [problem(None, (), f"YAML error: {e}", file=name)]
        conv = _Converter(loader, name)
        if node is None:
            return Doc({}), []
        try:
            conv.doc.data = conv.convert(node, ())
        except _TooBig as big:
            top = big.path[:1]  # the key whose value explodes
            if conv.aliases:
                msg = (f"YAML aliases expand to more than {MAX_NODES} values or {MAX_ALIASES} "
                       "alias uses (an alias bomb?)")
                hint = "write the values out instead of nesting aliases"
            else:  # plain size, no aliases: say so, not "bomb"
                msg = f"more than {MAX_NODES} YAML values: too large for a recipe"
                hint = "a recipe has a few hundred values; put data in files it references"
            return Doc(None), [problem(conv.doc.key_marks.get(top), top, msg, hint,
                                       file=name)]
        return conv.doc, conv.problems
    finally:
        loader.dispose()


def parse_file(path: Path, name: str | None = None) -> tuple[Doc, list[Problem]]:
    from imagepipe.limits import MAX_RECIPE_BYTES, human

    name = name or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_RECIPE_BYTES:  # before reading: a 50 MB file must not cost 13 s
            return Doc(None), [Problem(name, None, None, "", f"file is {human(size)}, more "
                                       f"than the {human(MAX_RECIPE_BYTES)} limit for a recipe "
                                       "or YAML file it references",
                                       "is this the right file?")]
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        return Doc(None), [Problem(name, None, None, "", f"not UTF-8 text: {e.reason}")]
    except OSError as e:
        return Doc(None), [Problem(name, None, None, "", f"cannot read: {e.strerror}",
                                   "check the path")]
    return parse(text, name)
