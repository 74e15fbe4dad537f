"""The content-addressed store: downloads by content digest, stage results by stage id.

Layout under the root (`--store DIR`, `$IMAGEPIPE_STORE`, default `~/.cache/imagepipe`):

    objects/<algo>/<hex>     verified files, named by their content digest (downloads)
    stages/<key>/            a committed stage result: its files + artifact.json
    downloads/<name>.part    partial downloads, kept across runs so they can resume
    tmp/<name>/ + <name>.lock  work dirs of running stages (the .lock is flocked by the owner)
    locks/<recipe>.lock      one build per recipe at a time
    builds/<recipe>/         last.json (stage keys of the last build, for --explain) + logs

Why it is safe to kill at any point: nothing under objects/ or stages/ appears except by
rename() of a fully written, fsynced file or directory, and a stage entry is only valid when
its artifact.json (written before the rename) is there. Work dirs of dead processes are
recognised by their unheld .lock and removed on the next run.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imagepipe.artifact import Artifact, hash_json
from imagepipe.cache_root import default_root
from imagepipe.durable import fsync_path
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.hashing import file_digest
from imagepipe.store.locks import BuildLock, Holds, try_flock
from imagepipe.tools.orphans import pid_alive

ALGOS = ("sha256", "sha512")


def parse_digest(digest: str) -> tuple[str, str]:
    """"sha256:HEX" -> ("sha256", "hex"), validated."""
    algo, _, hexd = digest.partition(":")
    algo = algo.lower()
    hexd = hexd.strip().lower()
    size = {"sha256": 64, "sha512": 128}.get(algo)
    if size is None or len(hexd) != size or any(c not in "0123456789abcdef" for c in hexd):
        raise InputError(f"bad checksum {digest!r}",
                         "write it as sha256:<64 hex digits> or sha512:<128 hex digits>")
    return algo, hexd


def fsync_tree(path: Path) -> None:
    """fsync every file and directory under `path` (and `path` itself)."""
    if path.is_dir():
        for sub in path.rglob("*"):
            if not sub.is_symlink():
                fsync_path(sub)
    fsync_path(path)


class WorkDir:
    """A private directory under tmp/, flock-owned while in use (stale ones are recognisable)."""

    def __init__(self, store: Store, prefix: str) -> None:
        name = f"{prefix}.{os.getpid()}.{secrets.token_hex(4)}"
        self.lock_path = store.root / "tmp" / f"{name}.lock"
        self.path = store.root / "tmp" / name
        while True:
            # A cleaner (Store.clean_stale in another build) may lock and unlink a fresh lock
            # file before we lock it: take the lock, then make sure it is still *the* file.
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.stat(self.lock_path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self._fd = fd
        self.path.mkdir()

    def release(self, *, remove: bool = True) -> None:
        if remove and self.path.exists():
            shutil.rmtree(self.path, ignore_errors=True)
        if self._fd >= 0:
            self.lock_path.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = -1


class Store:
    """One store root. Thread-safe for concurrent builds (every write is a rename)."""

    def __init__(self, root: Path | None = None, *, create: bool = True) -> None:
        self.root = (root or default_root()).expanduser().absolute()
        self.writable = create
        if create:
            for sub in ("objects", "stages", "downloads", "tmp", "locks", "builds"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.holds = Holds()

    @classmethod
    def readonly(cls, root: Path | None = None) -> Store:
        """A view for --dry-run: creates nothing, records no use."""
        return cls(root, create=False)

    # -- objects (content-addressed files) -------------------------------------------------
    def object_path(self, digest: str) -> Path:
        algo, hexd = parse_digest(digest)
        return self.root / "objects" / algo / hexd

    def get_object(self, digest: str) -> Path | None:
        """The stored file with this digest (held for this build), or None."""
        path = self.object_path(digest)
        if path.is_file() and self.holds.hold(path) and self._trusted(path):
            self.touch(path)
            return path
        return None

    def put_object(self, src: Path, digest: str) -> Path:
        """Move `src` (a fully written file on the store's filesystem, whose content has been
        verified against `digest`) in under `digest`.

        Why no fsync here: a verified download is only at risk from a power loss or kernel
        crash before writeback (kill -9 keeps the page cache). Both reboot the machine, so the
        object is stamped with the current boot id, and an object whose stamp is not this
        boot's is re-hashed once before use (then fsynced and stamped durable). This keeps a
        multi-GiB fetch from waiting on the disk, without ever serving a torn file."""
        dest = self.object_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(src, 0o444)
        _stamp(dest, boot_id())
        os.replace(src, dest)  # same content, so replacing a concurrent twin is harmless
        self.holds.hold(dest)
        return dest

    def _trusted(self, obj: Path) -> bool:
        """True if `obj` is known intact: fsynced, or written during this boot; otherwise
        re-hash it now (a torn object is removed)."""
        stamp = _read_stamp(obj)
        if stamp in ("durable", boot_id()):
            return True
        algo, hexd = obj.parent.name, obj.name
        if file_digest(obj, algo) != hexd:
            if self.writable:
                self.holds.release(obj)
                obj.unlink(missing_ok=True)
                _stamp_path(obj).unlink(missing_ok=True)
            return False
        if self.writable:
            fsync_path(obj)
            _stamp(obj, "durable")
        return True

    # -- stage results ---------------------------------------------------------------------
    def stage_path(self, key: str) -> Path:
        return self.root / "stages" / key

    def get_stage(self, key: str) -> Artifact | None:
        """The committed result of stage `key` (held for this build), or None."""
        entry = self.stage_path(key)
        meta = entry / "artifact.json"
        if not meta.is_file() or not self.holds.hold(entry):
            return None
        try:
            data = json.loads(meta.read_text())
        except (OSError, ValueError):
            return None
        art = self._artifact_from_json(data)
        # A pass-through entry points at other entries (objects): they must still be there.
        for path in ([art.path] if art.path else []) + list(art.files.values()):
            parts = path.relative_to(self.root).parts
            top = self.root.joinpath(*parts[:3 if parts[0] == "objects" else 2])
            if not top.is_relative_to(entry):
                if not path.exists() or not self.holds.hold(top):
                    return None
                if parts[0] == "objects" and not self._trusted(top):
                    return None
                self.touch(top)
            elif not path.exists():
                return None
        self.touch(entry)
        return art

    def commit_stage(self, key: str, work: WorkDir, artifact: Artifact,
                     label: str = "", replace: bool = False,
                     inputs: Mapping[str, str | None] | None = None) -> Artifact:
        """Hash, fsync and rename a stage's work dir into stages/<key>; return the stored
        artifact (paths in the store, digest set). `label` names the stage in `cache ls`;
        `replace` swaps out an existing entry (a forced rerun) instead of keeping it."""
        entry = self.stage_path(key)
        data = self._describe(work.path, entry, artifact)
        data["label"] = label
        data["inputs"] = dict(inputs or {})  # slot -> digest: `cache verify` follows the chain
        from imagepipe import redact

        data["metadata"] = redact.deep(data["metadata"])  # no user:pw@ from source URLs
        (work.path / "artifact.json").write_text(json.dumps(data, indent=1, sort_keys=True))
        fsync_tree(work.path)
        if replace and entry.exists():
            self.holds.release(entry)
            trash = self.root / "tmp" / f"trash.{secrets.token_hex(6)}"
            os.rename(entry, trash)
            shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(work.path, entry)
        except OSError:
            if not (entry / "artifact.json").is_file():
                raise
            shutil.rmtree(work.path, ignore_errors=True)  # a concurrent build committed first
        fsync_path(entry.parent)
        work.release(remove=False)
        self.holds.hold(entry)
        stored = self.get_stage(key)
        if stored is None:
            raise ImagepipeError(f"store entry {entry} vanished right after its commit",
                                 "was `imagepipe cache gc` run on an entry it refers to? "
                                 "rerun the build")
        return stored

    def _describe(self, workdir: Path, entry: Path, art: Artifact) -> dict[str, Any]:
        """artifact.json content: store-relative paths as they will be after the rename."""
        named: dict[str, Path] = {}
        if art.path is not None:
            named[""] = art.path
        named.update(art.files)
        rel: dict[str, str] = {}
        digests: dict[str, str] = {}
        for name, path in named.items():
            path = path.absolute()
            if path.is_relative_to(workdir):
                rel[name] = str((entry / path.relative_to(workdir)).relative_to(self.root))
                if name == "" and art.digest and not art.files:
                    digests[name] = art.digest  # computed by the stage while writing it
                else:
                    digests[name] = "sha256:" + file_digest(path)
            elif path.is_relative_to(self.root):
                rel[name] = str(path.relative_to(self.root))
                digests[name] = self.digest_of(path)
            else:
                raise ImagepipeError(f"stage output {path} is outside its work dir {workdir}")
        if art.path is None:
            digest = "sha256:" + hash_json({"metadata": dict(art.metadata)})
        elif not art.files:
            digest = digests[""]
        else:
            digest = "sha256:" + hash_json(digests)
        return {"path": rel.get(""), "files": {k: v for k, v in rel.items() if k},
                "kind": art.kind, "format": art.format, "metadata": dict(art.metadata),
                "digest": digest, "file_digests": digests}

    def digest_of(self, path: Path) -> str:
        """Digest of a file already in the store (from its name or its entry's record)."""
        rel = path.absolute().relative_to(self.root).parts
        if rel[0] == "objects":
            return f"{rel[1]}:{rel[2]}"
        if rel[0] == "stages":
            data = json.loads((self.root / "stages" / rel[1] / "artifact.json").read_text())
            for name, p in ({"": data["path"]} | data["files"]).items():
                if p == str(path.absolute().relative_to(self.root)):
                    return str(data["file_digests"][name])
        return "sha256:" + file_digest(path)

    def _artifact_from_json(self, data: dict[str, Any]) -> Artifact:
        return Artifact(
            path=self.root / data["path"] if data.get("path") else None,
            kind=data["kind"], format=data.get("format"),
            files={k: self.root / v for k, v in data.get("files", {}).items()},
            metadata=data.get("metadata", {}), digest=data["digest"])

    # -- work dirs, locks, bookkeeping -----------------------------------------------------
    def workdir(self, prefix: str) -> WorkDir:
        return WorkDir(self, prefix)

    @contextmanager
    def tempdir(self, prefix: str) -> Iterator[Path]:
        work = self.workdir(prefix)
        try:
            yield work.path
        finally:
            work.release()

    def clean_stale(self) -> list[Path]:
        """Remove work dirs left by dead processes (their .lock is not held)."""
        removed = []
        for lock in (self.root / "tmp").glob("*.lock"):
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                if try_flock(fd, exclusive=True):
                    work = lock.with_suffix("")
                    shutil.rmtree(work, ignore_errors=True)
                    lock.unlink(missing_ok=True)
                    removed.append(work)
            finally:
                os.close(fd)
        for gdir in (self.root / "tmp").glob("guestfs.*"):  # libguestfs temp of a dead process
            pid = gdir.name.split(".", 1)[1]
            if pid.isdigit() and not pid_alive(int(pid)):
                shutil.rmtree(gdir, ignore_errors=True)
                removed.append(gdir)
        from imagepipe.tools.orphans import sweep

        removed += sweep()  # boot-test VMs (daemonized qemu) of a killed imagepipe
        for trash in (self.root / "tmp").glob("trash.*"):  # left by a crashed gc or --force
            if trash.is_dir():
                shutil.rmtree(trash, ignore_errors=True)
            else:
                trash.unlink(missing_ok=True)
            removed.append(trash)
        return removed

    def build_lock(self, name: str, *, wait: bool = True,
                   on_wait: Callable[[str], None] | None = None) -> BuildLock:
        return BuildLock(self.root / "locks" / f"{_safe(name)}.lock", name, wait=wait,
                         on_wait=on_wait)

    def builds_dir(self, recipe_name: str) -> Path:
        path = self.root / "builds" / _safe(recipe_name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def touch(self, path: Path) -> None:
        """Record a use (mtime is the LRU clock of `cache gc`)."""
        if not self.writable:
            return
        try:
            os.utime(path)
        except OSError:
            pass


_BOOT_ID: list[str] = []


def boot_id() -> str:
    """This boot's id (changes on every reboot, so also after a power loss)."""
    if not _BOOT_ID:
        try:
            _BOOT_ID.append(Path("/proc/sys/kernel/random/boot_id").read_text().strip())
        except OSError:
            _BOOT_ID.append("unknown")  # never equal to a stamp: always verified
    return _BOOT_ID[0] if _BOOT_ID[0] != "unknown" else "unknown-" + secrets.token_hex(4)


def _stamp_path(obj: Path) -> Path:
    return obj.with_name(obj.name + ".boot")


def _stamp(obj: Path, value: str) -> None:
    try:
        _stamp_path(obj).write_text(value)
    except OSError:
        pass  # no stamp = verified on next use


def _read_stamp(obj: Path) -> str:
    try:
        return _stamp_path(obj).read_text().strip()
    except OSError:
        return ""


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
