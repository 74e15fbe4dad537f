"""Checking a store file's bytes against its recorded digest while a stage reads it.

Why: a flipped bit in a cached stage output or a fetched object (a bad disk, a user who wrote
into a file they thought was theirs) would otherwise be served for ever: the cache key says
"done", publish copies the bytes, and the SHA256SUMS it writes no longer matches. So a stage
that reads a store file also hashes it (publish hashes the copy it just made; the engine
hashes every stage's input files in a thread while the stage reads them, so the page cache
serves both reads, and each file once per process however many converts read it), and on a
mismatch the entry is moved to `quarantine/` (out of every lookup, kept for inspection) and
the build fails: the next build rebuilds it, and nothing corrupt reaches a published directory.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from imagepipe.errors import ImagepipeError
from imagepipe.hashing import file_digest

if TYPE_CHECKING:
    from imagepipe.store import Store


class CorruptStoreError(ImagepipeError):
    """A store file's bytes do not match the digest recorded for it (exit 1)."""


def expected_digest(store: Store, path: Path) -> str | None:
    """The digest the store recorded for `path`: an object's name, or the file's entry in its
    stage's artifact.json. None for anything else (never a fresh hash of the file itself)."""
    import json

    try:
        rel = path.absolute().relative_to(store.root).parts
    except ValueError:
        return None
    if len(rel) == 3 and rel[0] == "objects":
        return f"{rel[1]}:{rel[2]}"
    if len(rel) >= 3 and rel[0] == "stages":
        try:
            data = json.loads((store.root / "stages" / rel[1] / "artifact.json").read_text())
            named = {"": data.get("path")} | dict(data.get("files") or {})
            wanted = "/".join(rel)
            for name, p in named.items():
                if p == wanted:
                    return str(data["file_digests"][name])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return None


def entry_of(root: Path, path: Path) -> Path:
    """objects/ALGO/HEX or stages/KEY holding `path`."""
    parts = path.absolute().relative_to(root).parts
    return root.joinpath(*parts[: 3 if parts[0] == "objects" else 2])


def quarantine(root: Path, path: Path) -> Path:
    """Move the entry holding `path` to ROOT/quarantine/ (a rename: readers holding it keep
    their descriptors); return where it went."""
    entry = entry_of(root, path)
    qdir = root / "quarantine"
    qdir.mkdir(exist_ok=True)
    dest = qdir / f"{entry.parent.name}-{entry.name}.{secrets.token_hex(4)}"
    try:
        os.rename(entry, dest)
    except FileNotFoundError:
        return dest  # a concurrent build quarantined it first
    stamp = entry.with_name(entry.name + ".boot")
    if stamp.exists():
        os.replace(stamp, dest.with_name(dest.name + ".boot"))
    return dest


def check(store: Store, src: Path, got_hex: str, algo: str = "sha256",
          copy: Path | None = None) -> None:
    """Raise CorruptStoreError (after quarantining the entry) if `got_hex`, the digest of the
    bytes just read from store file `src` (or of its `copy`), is not the recorded one."""
    want = expected_digest(store, src)
    if want is None or not want.startswith(algo + ":"):
        return
    if want == f"{algo}:{got_hex}":
        return
    root: Path = store.root
    where = quarantine(root, src)
    raise CorruptStoreError(
        f"corrupt store file {src}{f' (copied to {copy})' if copy else ''}: its content is "
        f"{algo}:{got_hex[:16]}..., recorded {want[:23]}...; moved to {where}",
        "run the build again to rebuild it; check the disk if this repeats")


class BackgroundHash:
    """sha256 of a file in a thread (started now, joined by `result`), so a stage can hash
    its input while a tool reads the same file."""

    def __init__(self, path: Path, algo: str = "sha256") -> None:
        self.path, self.algo = path, algo
        self.cancel = threading.Event()
        self.value: str | None = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, daemon=True, name="input-hash")
        self.thread.start()

    def _work(self) -> None:
        try:
            self.value = file_digest(self.path, self.algo, cancel=self.cancel)
        except BaseException as exc:  # noqa: B036 - reported by result()
            self.error = exc

    def stop(self) -> None:
        self.cancel.set()
        self.thread.join()

    def result(self) -> str:
        self.thread.join()
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


_running: dict[tuple[Path, int, int, str], BackgroundHash] = {}
_running_lock = threading.Lock()


def shared_hash(path: Path, algo: str = "sha256") -> BackgroundHash:
    """One BackgroundHash per file version (path, inode, mtime) and algorithm in this process."""
    st = path.stat()
    key = (path, st.st_ino, st.st_mtime_ns, algo)
    with _running_lock:
        job = _running.get(key)
        if job is None:
            if len(_running) > 256:  # a long-lived worker process: forget finished ones
                for k in [k for k, j in _running.items() if not j.thread.is_alive()]:
                    del _running[k]
            job = _running[key] = BackgroundHash(path, algo)
        return job


def verify_inputs(store: Store, paths: Iterable[Path]) -> Callable[[], None]:
    """Start hashing every store file in `paths` now; the returned function waits for the
    digests and raises CorruptStoreError (entry quarantined) on the first mismatch."""
    jobs = []
    for path in paths:
        want = expected_digest(store, path) if path.is_file() else None
        if want is not None:
            algo = want.split(":", 1)[0]
            jobs.append((path, algo, shared_hash(path, algo)))

    def finish() -> None:
        for path, algo, job in jobs:
            check(store, path, job.result(), algo)

    return finish
