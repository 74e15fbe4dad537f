"""Stage `publish.local`: outputs into the local template store `DIR/NAME/VERSION/`.

Layout: `NAME/VERSION/` holds the outputs, `manifest.json`, `SHA256SUMS` and the seed ISO if
any; `NAME/latest` is a symlink to the newest version; `keep: N` removes older versions after a
successful publish. Every version directory appears by one rename of a fully written, fsynced
staging directory, and `latest` is swapped with a rename, so readers never see half a version.
Files are reflinked when the filesystem can, else copied: never hardlinked, because a user
booting a published qcow2 must not write into the build cache.
If the newest version already has exactly these outputs (same SHA256SUMS), nothing is copied:
a nightly run where nothing changed publishes nothing.
Publishers of one recipe take turns (a lock file `DIR/.NAME.publish.lock`), so build-farm workers
publishing two versions at once never corrupt `latest`, and a rebuilt recipe whose outputs are
already the newest version publishes nothing the second time.

Confinement: NAME and VERSION are each one safe path component (checked again here, not only
at validate), so nothing is ever renamed or deleted outside `DIR/NAME/`. Every version
directory imagepipe publishes holds a `.imagepipe-published` marker; only marked directories
are replaced or removed by `keep:`, so a directory a user put there is never deleted.
Integrity: each copied file is hashed and compared with the digest the store recorded, so a
corrupt cache entry fails the build (and is quarantined) instead of being published.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.artifact import Artifact
from imagepipe.errors import InputError
from imagepipe.recipe.model import Recipe
from imagepipe.stages.base import Stage, StageContext

MARKER = ".imagepipe-published"  # in every version directory this stage published


def safe_component(value: str, what: str) -> str:
    """`value` if it is one harmless path component; InputError otherwise."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+~-]*", value) or len(value) > 200:
        raise InputError(f"{what} {value!r} is not a safe directory name",
                         "use letters, digits, '.', '_', '+', '~' and '-' (no '/', no "
                         "leading '.')")
    return value


@dataclass(frozen=True)
class LocalPublishOptions:
    dir: str  # a str, not a Path: the directory's content must not enter the stage id
    name: str
    version: str = ""  # "" = a UTC timestamp
    keep: int | None = None


class LocalPublishStage(Stage):
    name = "publish.local"
    version = 2  # 2: sbom.spdx.json beside the outputs; package changes in the record
    Options = LocalPublishOptions
    inputs = ("image",)  # plus output.<n> for each convert
    cacheable = False

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> LocalPublishOptions | None:
        local = recipe.publish.local
        if local is None:
            return None
        return LocalPublishOptions(dir=str(Path(local.dir).absolute()), name=recipe.name,
                                   version=recipe.image_version, keep=local.keep)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        o: LocalPublishOptions = self.options
        base = Path(o.dir) / safe_component(o.name, "name")
        if o.version:
            safe_component(o.version, "image_version")
        base.mkdir(parents=True, exist_ok=True)
        files = self._files(inputs)
        sums = "".join(f"{digest.split(':', 1)[1]}  {name}\n"
                       for name, (_, digest) in sorted(files.items()) if name != "seed.iso")
        with _publish_lock(base):
            return self._publish(ctx, base, files, sums)

    def _publish(self, ctx: StageContext, base: Path, files: dict[str, tuple[Path, str]],
                 sums: str) -> Artifact:
        o: LocalPublishOptions = self.options
        latest = base / "latest"
        if (latest / "SHA256SUMS").is_file() and _output_sums(latest / "SHA256SUMS") == sums:
            current = os.readlink(latest)
            ctx.log.info("unchanged since version %s: nothing published", current)
            return Artifact(path=None, kind="record", metadata={
                "dir": str(base / current), "version": current, "unchanged": True,
                "files": {n: str(base / current / n) for n in files}})
        version = o.version or _fresh(base, time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
        final = base / version
        if final.parent != base:  # belt and braces after safe_component
            raise InputError(f"version {version!r} leaves {base}")
        if (final.exists() or final.is_symlink()) and not _ours(final):
            raise InputError(f"{final} exists and was not published by imagepipe",
                             "move it away, or choose another image_version")
        record = {"dir": str(final), "version": version, "unchanged": False,
                  "files": {n: str(final / n) for n in files}}
        record.update(_changes_since(latest, ctx.manifest))
        self._stage_dir(ctx, base, final, files, sums, record)
        tmp_link = base / f".latest.{_unique()}"
        tmp_link.unlink(missing_ok=True)
        os.symlink(version, tmp_link)
        os.replace(tmp_link, latest)
        record["removed"] = self._retention(base, version, o.keep)
        ctx.log.info("published %s", record)
        return Artifact(path=None, kind="record", metadata=record)

    @staticmethod
    def _files(inputs: Mapping[str, Artifact]) -> dict[str, tuple[Path, str]]:
        """file name -> (store path, digest) for every output, plus the seed ISO."""
        files: dict[str, tuple[Path, str]] = {}
        for slot, art in sorted(inputs.items()):
            if slot.startswith("output.") and art.path is not None and art.digest:
                files[art.path.name] = (art.path, art.digest)
        image = inputs.get("image")
        if image is not None and "seed.iso" in image.files:
            from imagepipe.hashing import file_digest

            seed = image.files["seed.iso"]
            files["seed.iso"] = (seed, "sha256:" + file_digest(seed))
        return files

    @staticmethod
    def _stage_dir(ctx: StageContext, base: Path, final: Path,
                   files: Mapping[str, tuple[Path, str]], sums: str,
                   record: dict[str, Any]) -> None:
        from imagepipe.durable import fsync_path
        from imagepipe.hashing import file_digest
        from imagepipe.store.place import copy_out

        staging = base / f".{final.name}.tmp{_unique()}"
        ctx.exit_stack.callback(shutil.rmtree, staging, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        from imagepipe.store import integrity

        for name, (src, _) in files.items():
            how = copy_out(src, staging / name, hardlink=False)
            ctx.log.info("%s: %s", name, how)
            # hash what was written: a corrupt cache entry never reaches a published dir
            integrity.check(ctx.store, src, file_digest(staging / name), copy=staging / name)
        (staging / MARKER).write_text("published by imagepipe; `keep:` may remove this "
                                      "directory\n")
        manifest = json.loads(json.dumps(ctx.manifest, default=str))
        manifest.setdefault("publish", {})["local"] = record
        for out in manifest.get("outputs", []):
            name = Path(out.get("store_path") or out.get("path", "")).name
            if name in record["files"]:
                out["path"] = record["files"][name]
        from imagepipe.inventory.spdx import write_checked_sbom

        sbom = write_checked_sbom(staging, manifest)  # beside the outputs, listed in SHA256SUMS
        for extra in sbom:
            record["files"][extra.name] = str(final / extra.name)
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        (staging / "SHA256SUMS").write_text(sums + "".join(
            f"{file_digest(p)}  {p.name}\n" for p in sbom))
        for p in staging.iterdir():
            fsync_path(p)
        fsync_path(staging)
        if final.exists():
            trash = base / f".{final.name}.old{_unique()}"
            os.rename(final, trash)
            ctx.exit_stack.callback(shutil.rmtree, trash, ignore_errors=True)
        os.rename(staging, final)
        fsync_path(base)

    @staticmethod
    def _retention(base: Path, current: str, keep: int | None) -> list[str]:
        if not keep or keep < 1:
            return []
        versions = [d for d in base.iterdir()
                    if not d.name.startswith(".") and _ours(d)]
        versions.sort(key=lambda d: (d / "manifest.json").stat().st_mtime
                      if (d / "manifest.json").exists() else d.stat().st_mtime, reverse=True)
        removed = []
        for old in versions[keep:]:
            if old.name != current:
                shutil.rmtree(old)
                removed.append(old.name)
        return removed


def _output_sums(path: Path) -> str:
    """A published SHA256SUMS without its SBOM line: the SBOM is derived from the build (its
    date differs every build), so only the outputs decide whether anything changed."""
    from imagepipe.inventory.spdx import SBOM_NAME

    return "".join(line for line in path.read_text().splitlines(keepends=True)
                   if not line.rstrip().endswith(f"  {SBOM_NAME}"))


def _changes_since(latest: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The package changes against the version `latest` pointed to before this publish
    (for the nightly summary of `build --all` and the manifest)."""
    from imagepipe.inventory.diff import package_changes

    try:
        previous = json.loads((latest / "manifest.json").read_text())
        name = os.readlink(latest)
    except (OSError, ValueError):
        return {"previous": None}
    return {"previous": name,
            "changes": package_changes(previous.get("packages"), manifest.get("packages"))}


@contextmanager
def _publish_lock(base: Path) -> Iterator[None]:
    """One publisher per recipe at a time (`DIR/.NAME.publish.lock`, beside the recipe's
    directory so listings of its versions stay clean), also across machines sharing `dir` over NFS
    (lockf is a POSIX lock, which NFS forwards to the server), so two workers publishing at
    once never interleave the compare-with-latest, the version rename and the latest swap."""
    import fcntl

    fd = os.open(base.parent / f".{base.name}.publish.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _unique() -> str:
    """A temp-name suffix no other publisher uses, on this machine or another one."""
    import secrets
    import socket

    return f"{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(3)}"


def _ours(d: Path) -> bool:
    """A real directory (not a symlink) that this stage published (it holds the marker)."""
    return d.is_dir() and not d.is_symlink() and (d / MARKER).is_file()


def _fresh(base: Path, stamp: str) -> str:
    """A timestamp version that no existing version uses (two builds in one second)."""
    version, n = stamp, 1
    while (base / version).exists():
        n += 1
        version = f"{stamp}-{n}"
    return version
