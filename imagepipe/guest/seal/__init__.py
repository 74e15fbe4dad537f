"""Seal operations: a self-registering registry, one module per operation (virt-sysprep's shape).

Why a registry: `--list-operations`, `--operations defaults,-x,+y`, `--dry-run` and the docs
table all come from one place, and a test checks docs/guest.md against it. Each operation is
idempotent, guarded by the inspected OS, and treats a missing file as nothing to do. It acts
through a `SealContext`, which records what it removed (the manifest count, `--dry-run`).
"""

from __future__ import annotations

import importlib
import pkgutil
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from imagepipe.errors import InputError

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession


@dataclass
class SealContext:
    """What an operation may do to the guest; every change is recorded under the operation."""

    session: GuestSession
    dry_run: bool = False
    removed: dict[str, list[str]] = field(default_factory=dict)
    edited: dict[str, list[str]] = field(default_factory=dict)
    current: str = ""

    @property
    def g(self) -> Any:
        """The raw guestfs handle (for calls the session has no helper for)."""
        return self.session.g

    @property
    def distro(self) -> str:
        assert self.session.info is not None
        return self.session.info.distro

    def _note(self, table: dict[str, list[str]], path: str) -> None:
        table.setdefault(self.current, []).append(path)

    def rm(self, path: str) -> bool:
        """Remove a file, symlink or directory tree if present. True if something went."""
        s = self.session
        if not (s.is_symlink(path) or s.exists(path)):
            return False
        self._note(self.removed, path)
        if not self.dry_run:
            if s.is_dir(path):
                self.g.rm_rf(path)
            else:
                self.g.rm_f(path)
        return True

    def rm_glob(self, *patterns: str) -> int:
        return sum(self.rm(p) for pat in patterns for p in self.session.glob(pat))

    def empty_dir(self, directory: str) -> int:
        """Remove everything inside `directory`, keeping the directory (and its mode)."""
        if not self.session.is_dir(directory):
            return 0
        return sum(self.rm(posixpath.join(directory, n)) for n in self.g.ls(directory))

    def edit(self, path: str, fn: Callable[[str], str]) -> bool:
        """Rewrite a text file through `fn`, keeping its mode and owner; True if it changed."""
        s = self.session
        if not s.is_file(path):
            return False
        old = s.read_text(path)
        new = fn(old)
        if new == old:
            return False
        self._note(self.edited, path)
        if not self.dry_run:
            st = self.g.statns(path)
            self.g.write(path, new.encode())
            self.g.chmod(st["st_mode"] & 0o7777, path)
            self.g.chown(st["st_uid"], st["st_gid"], path)
        return True

    def truncate(self, path: str) -> bool:
        return self.edit(path, lambda _text: "")


Verify = Callable[["GuestSession"], list[str]]
"""Reads a sealed guest back; returns one failure line per thing still there (empty: holds)."""


@dataclass(frozen=True)
class Operation:
    name: str
    default: bool
    summary: str
    perform: Callable[[SealContext], None]
    os: tuple[str, ...] = ("linux",)
    verify: Verify | None = None


REGISTRY: dict[str, Operation] = {}
_loaded = False

# Like virt-sysprep's build-time checks of its operations: the name is what users type in
# `--operations` (lowercase words joined by '-'), the summary is one line of the
# `--list-operations` table and of docs/guest.md (a capital first, no final period).
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
SUMMARY_MAX = 76


def _check(name: str, summary: str) -> None:
    """Refuse a badly named or summarized operation when its module is imported (a bug)."""
    if not NAME_RE.fullmatch(name):
        raise ValueError(f"seal operation name {name!r}: use lowercase words joined by '-'")
    if name in ("defaults", "all", "none"):
        raise ValueError(f"seal operation name {name!r} is a selection keyword")
    if not summary or summary != summary.strip() or "\n" in summary:
        raise ValueError(f"seal operation {name!r}: the summary must be one non-empty line")
    if not summary[0].isupper() or summary.endswith("."):
        raise ValueError(
            f"seal operation {name!r}: the summary starts with a capital and has no final period"
        )
    if len(summary) > SUMMARY_MAX:
        raise ValueError(
            f"seal operation {name!r}: the summary is longer than {SUMMARY_MAX} characters"
        )


def register(
    name: str,
    *,
    default: bool,
    summary: str,
    os: tuple[str, ...] = ("linux",),
    verify: Verify | None = None,
) -> Callable[[Callable[[SealContext], None]], Callable[[SealContext], None]]:
    """Register the decorated function as seal operation `name`. `verify`, if given, is run
    after sealing when this operation ran (see imagepipe.guest.seal.run.verify)."""
    _check(name, summary)

    def deco(fn: Callable[[SealContext], None]) -> Callable[[SealContext], None]:
        if name in REGISTRY:
            raise ValueError(f"seal operation {name!r} registered twice")
        REGISTRY[name] = Operation(name, default, summary, fn, os, verify)
        return fn

    return deco


def operations() -> dict[str, Operation]:
    """All operations, sorted by name (imports every module of imagepipe.guest.seal.ops once)."""
    global _loaded
    if not _loaded:
        from imagepipe.guest.seal import ops

        for mod in pkgutil.iter_modules(ops.__path__):
            importlib.import_module(f"{ops.__name__}.{mod.name}")
        _loaded = True
    return dict(sorted(REGISTRY.items()))


def unknown_operations(spec: str) -> list[tuple[str, str]]:
    """Every unknown name in a selection, each with a hint (validate reports them all at once)."""
    import difflib

    ops = operations()
    bad = []
    for raw in spec.split(","):
        item = raw.strip()
        name = item[1:] if item[:1] in ("+", "-") else item
        if not item or item in ("defaults", "all", "none") or name in ops:
            continue
        close = difflib.get_close_matches(name, list(ops), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "see: imagepipe seal --list-operations"
        bad.append((f"unknown seal operation {name!r} in {spec!r}", hint))
    return bad


def select(spec: str) -> list[str]:
    """Names selected by `defaults,-ssh-hostkeys,+user-account` (also `none`, `all`, `x,y`)."""
    bad = unknown_operations(spec)
    if bad:
        message = "; ".join(m for m, _ in bad)
        raise InputError(message, "; ".join(h for _, h in bad))
    ops = operations()
    chosen: set[str] = set()
    for raw in spec.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == "defaults":
            chosen |= {n for n, op in ops.items() if op.default}
            continue
        if item == "all":
            chosen |= set(ops)
            continue
        if item == "none":
            chosen.clear()
            continue
        sign, name = (item[0], item[1:]) if item[0] in "+-" else ("+", item)
        if sign == "-":
            chosen.discard(name)
        else:
            chosen.add(name)
    return sorted(chosen)
