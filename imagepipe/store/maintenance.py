"""`cache ls`, `cache verify`, `cache gc`: looking after the store without racing builds.

Why gc takes an exclusive non-blocking flock per entry: running builds hold a shared flock on
every entry they use (store.locks.Holds), so an entry in use is skipped, never removed, and a
build that looks an entry up while gc removes it sees a clean miss (rename first, then delete).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from imagepipe import sizes
from imagepipe.errors import InputError
from imagepipe.hashing import file_digest
from imagepipe.store import Store
from imagepipe.store.locks import try_flock


@dataclass(frozen=True)
class Entry:
    path: Path
    kind: str  # "object", "stage", "partial"
    label: str
    size: int  # bytes allocated on disk
    last_used: float  # mtime

    def to_dict(self, root: Path) -> dict[str, object]:
        return {"path": str(self.path.relative_to(root)), "kind": self.kind, "label": self.label,
                "size": self.size, "last_used": round(self.last_used, 3)}


def allocated(path: Path) -> int:
    """Bytes allocated on disk (sparse images count what they use, not their length)."""
    if path.is_dir():
        return sum(p.lstat().st_blocks * 512 for p in path.rglob("*") if not p.is_symlink())
    return path.lstat().st_blocks * 512


def entries(store: Store) -> list[Entry]:
    out = []
    for algo_dir in sorted((store.root / "objects").iterdir()):
        for obj in sorted(algo_dir.iterdir()):
            if "." in obj.name:
                continue  # OBJECT.boot: its durability stamp (see Store.put_object)
            st = obj.stat()
            out.append(Entry(obj, "object", f"{algo_dir.name}:{obj.name[:16]}",
                             allocated(obj), st.st_mtime))
    for stage in sorted((store.root / "stages").iterdir()):
        label = ""
        try:
            data = json.loads((stage / "artifact.json").read_text())
            label = data.get("label") or data.get("kind", "")
        except (OSError, ValueError):
            label = "(incomplete)"
        out.append(Entry(stage, "stage", label, allocated(stage), stage.stat().st_mtime))
    for part in sorted((store.root / "downloads").glob("*.part")):
        out.append(Entry(part, "partial", part.name, allocated(part), part.stat().st_mtime))
    return out


def verify(store: Store) -> list[tuple[Path, str]]:
    """Re-hash every object and every stage file; return (path, problem) for corrupt ones."""
    bad: list[tuple[Path, str]] = []
    for entry in entries(store):
        if entry.kind == "object":
            algo, hexd = entry.path.parent.name, entry.path.name
            got = file_digest(entry.path, algo)
            if got != hexd:
                bad.append((entry.path, f"content is {algo}:{got[:16]}..., "
                                        f"name says {hexd[:16]}..."))
        elif entry.kind == "stage":
            bad.extend(_verify_stage(store, entry.path))
    return bad + _poisoned(store, bad)


def _poisoned(store: Store, bad: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    """Stage entries built (directly or down a chain) from a corrupt object or stage output:
    their own files hash fine, but their bytes came from bad input, and after the corrupt
    entry is removed and fetched again under the same digest their cache key would still
    match. Found through the input digests commit_stage records."""
    corrupt: set[str] = set()
    for path, _ in bad:
        rel = path.relative_to(store.root).parts
        if rel[0] == "objects":
            corrupt.add(f"{rel[1]}:{rel[2]}")
        elif rel[0] == "stages":
            try:
                data = json.loads((store.root / "stages" / rel[1] / "artifact.json").read_text())
                corrupt.add(str(data["digest"]))
                corrupt.update(str(d) for d in data.get("file_digests", {}).values())
            except (OSError, ValueError, KeyError):
                pass
    records = {}
    for entry in (store.root / "stages").iterdir():
        try:
            records[entry] = json.loads((entry / "artifact.json").read_text())
        except (OSError, ValueError):
            continue
    out: list[tuple[Path, str]] = []
    flagged = {p.relative_to(store.root).parts[:2] for p, _ in bad}
    changed = True
    while changed:  # follow the chain: fetch -> base -> guest -> convert
        changed = False
        for entry, data in records.items():
            if ("stages", entry.name) in flagged:
                continue
            hit = [d for d in (data.get("inputs") or {}).values() if d in corrupt]
            if not hit and data.get("digest") in corrupt:  # passes a corrupt object through
                hit = [str(data["digest"])]
            if hit:
                out.append((entry, f"built from corrupt input {hit[0][:23]}..."))
                flagged.add(("stages", entry.name))
                corrupt.add(str(data.get("digest")))
                changed = True
    return out


def _verify_stage(store: Store, entry: Path) -> list[tuple[Path, str]]:
    try:
        data = json.loads((entry / "artifact.json").read_text())
    except (OSError, ValueError) as exc:
        return [(entry, f"unreadable artifact.json: {exc}")]
    bad = []
    paths = {"": data.get("path")} | data.get("files", {})
    for name, rel in paths.items():
        if not rel:
            continue
        path = store.root / rel
        if not path.is_relative_to(entry):
            continue  # a reference to another entry (verified on its own; see dangling())
        if not path.is_file():
            bad.append((path, "missing"))
            continue
        want = data["file_digests"][name]
        got = "sha256:" + file_digest(path)
        if got != want:
            bad.append((path, f"content is {got[:23]}..., recorded {want[:23]}..."))
    return bad


def dangling(store: Store) -> list[Path]:
    """Stage entries that refer to an entry gc removed (useless: a lookup treats them as a
    miss). gc removes them."""
    out = []
    for entry in (store.root / "stages").iterdir():
        try:
            data = json.loads((entry / "artifact.json").read_text())
        except (OSError, ValueError):
            continue
        refs = [data.get("path")] + list(data.get("files", {}).values())
        if any(rel and not (store.root / rel).exists() for rel in refs):
            out.append(entry)
    return out


def remove_entry(store: Store, path: Path) -> bool:
    """Remove one entry unless a build holds it. Rename away first so no reader sees half."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        if not try_flock(fd, exclusive=True):
            return False
        trash = store.root / "tmp" / f"trash.{secrets.token_hex(6)}"
        os.rename(path, trash)
    finally:
        os.close(fd)
    if trash.is_dir():
        shutil.rmtree(trash, ignore_errors=True)
    else:
        trash.unlink(missing_ok=True)
        path.with_name(path.name + ".boot").unlink(missing_ok=True)
    return True


def gc(store: Store, max_size: int, *, dry_run: bool = False) -> tuple[list[Entry], list[Entry]]:
    """Remove least recently used entries until the store is at most `max_size` bytes.

    Returns (removed, skipped_because_held)."""
    store.clean_stale()
    all_entries = sorted(entries(store), key=lambda e: e.last_used)
    total = sum(e.size for e in all_entries)
    removed, held = [], []
    for entry in all_entries:
        if total <= max_size:
            break
        if dry_run or remove_entry(store, entry.path):
            removed.append(entry)
            total -= entry.size
        else:
            held.append(entry)
    if not dry_run:
        for stale in dangling(store):
            if remove_entry(store, stale):
                removed.append(Entry(stale, "stage", "(refers to a removed entry)", 0, 0.0))
    return removed, held


def parse_size(text: str) -> int:
    """'20G', '512M', '1024' -> bytes (binary units; a trailing 'iB'/'B' is accepted)."""
    try:
        return sizes.parse_size(text)
    except ValueError:
        raise InputError(f"bad size {text!r}", "use a number with K, M, G or T, e.g. 20G") \
            from None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def age(ts: float) -> str:
    secs = max(0, time.time() - ts)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs >= size:
            return f"{secs / size:.0f}{unit} ago"
    return f"{secs:.0f}s ago"
