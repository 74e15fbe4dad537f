"""Recipe bundles: everything a worker needs to build one recipe, as JSON.

A bundle holds the recipe file, the chain of files it `extends:`, and every local file it
references (cloud-init files, customize.files sources, kickstart/preseed), each with its
sha256, under paths relative to the nearest directory that holds them all. Why JSON and not a
tarball: tasks carry JSON only (never pickle), and a map of plain files cannot carry symlinks,
devices or hard links. Secrets (oVirt password files) are never bundled: each worker has its
own credentials.

Unpacking trusts nothing: every path must be relative, without `..`, without empty or `.`
parts, and every byte must match its sha256; files are created with O_EXCL|O_NOFOLLOW in a
fresh directory, so a bundle cannot write outside the worker's work dir.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from imagepipe.errors import ImagepipeError, InputError

MAX_BUNDLE = 16 * 1024 * 1024  # bytes of files in one bundle
FORMAT = 1


class BundleError(ImagepipeError):
    """A bundle received by a worker is malformed or unsafe (the build fails, nothing is
    written outside the work dir)."""


def _chain(recipe: Path) -> list[Path]:
    """The recipe and the files it `extends:`, nearest first (cycles are the loader's job)."""
    import yaml

    out: list[Path] = []
    path = recipe
    while path not in out:
        out.append(path)
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            break
        ext = data.get("extends") if isinstance(data, dict) else None
        if not isinstance(ext, str) or not ext or not (path.parent / ext).is_file():
            break
        path = (path.parent / ext).absolute()
    return out


def _common_root(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([str(p.parent) for p in paths]))


def make_bundle(recipe_path: Path) -> dict[str, Any]:
    """Load and validate the recipe (RecipeError: exit 2) and bundle it with its files."""
    from imagepipe.recipe.load import load_recipe, recipe_digest, referenced_files

    recipe_path = recipe_path.absolute()
    recipe = load_recipe(recipe_path)
    files = _chain(recipe_path) + [Path(p).absolute() for p in referenced_files(recipe)]
    files = list(dict.fromkeys(Path(os.path.normpath(p)) for p in files))
    root = _common_root(files)
    entries: dict[str, dict[str, Any]] = {}
    total = 0
    for path in files:
        data = path.read_bytes()
        total += len(data)
        if total > MAX_BUNDLE:
            raise InputError(
                f"{recipe_path}: the recipe and its files exceed {MAX_BUNDLE >> 20} MiB "
                f"(at {path}, {len(data)} bytes)",
                "a farm bundle carries recipes and small files; put large files (images, "
                "ISOs) behind a URL (source.image.url) that every worker can fetch")
        rel = path.relative_to(root).as_posix()
        entries[rel] = {"sha256": hashlib.sha256(data).hexdigest(),
                        "mode": path.stat().st_mode & 0o755,
                        "data": base64.b64encode(data).decode()}
    bundle = {"format": FORMAT, "recipe": recipe_path.relative_to(root).as_posix(),
              "name": recipe.name, "recipe_sha256": recipe_digest(recipe), "files": entries}
    bundle["digest"] = bundle_digest(bundle)
    return bundle


def bundle_digest(bundle: dict[str, Any]) -> str:
    """sha256 over the recipe path and each file's path and sha256 (content-addressed)."""
    listing = {"recipe": bundle.get("recipe"),
               "files": {k: v.get("sha256") for k, v in sorted(bundle.get("files", {}).items())}}
    return hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()


def check_path(rel: object) -> PurePosixPath:
    """A bundle path that stays inside the unpack directory, or BundleError."""
    if not isinstance(rel, str) or not rel or "\0" in rel or "\\" in rel:
        raise BundleError(f"bundle path {rel!r} is not a plain relative path")
    p = PurePosixPath(rel)
    if p.is_absolute():
        raise BundleError(f"bundle path {rel!r} is absolute")
    if any(part in ("..", ".", "") for part in rel.split("/")):
        raise BundleError(f"bundle path {rel!r} leaves its directory (.., . or //)")
    return p


def unpack(bundle: object, dest: Path) -> Path:
    """Write the bundle's files under the fresh directory `dest`; the recipe's path."""
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        raise BundleError("not an imagepipe bundle (or a newer format): update this worker")
    files = bundle.get("files")
    if not isinstance(files, dict) or not files:
        raise BundleError("the bundle has no files")
    recipe = check_path(bundle.get("recipe"))
    if str(recipe) not in files:
        raise BundleError(f"the bundle's recipe {recipe} is not among its files")
    if bundle_digest(bundle) != bundle.get("digest"):
        raise BundleError("the bundle's digest does not match its files")
    dest.mkdir(mode=0o700)
    total = 0
    for rel, entry in sorted(files.items()):
        path = check_path(rel)
        if not isinstance(entry, dict) or entry.get("type", "file") != "file":
            raise BundleError(f"bundle entry {rel} is not a regular file (symlinks and devices "
                              "are refused)")
        data = base64.b64decode(str(entry.get("data", "")), validate=True)
        total += len(data)
        if total > MAX_BUNDLE:
            raise BundleError(f"the bundle exceeds {MAX_BUNDLE >> 20} MiB")
        if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            raise BundleError(f"bundle file {rel}: sha256 mismatch")
        _write(dest, path, data, int(entry.get("mode", 0o644)) & 0o755)
    return dest / recipe


def _write(dest: Path, rel: PurePosixPath, data: bytes, mode: int) -> None:
    """Create dest/rel without following any symlink on the way (O_NOFOLLOW per part)."""
    flags_dir = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    fd = os.open(dest, flags_dir)
    try:
        for part in rel.parts[:-1]:
            try:
                os.mkdir(part, 0o700, dir_fd=fd)
            except FileExistsError:
                pass
            nxt = os.open(part, flags_dir, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open(rel.parts[-1], os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                      mode | 0o600, dir_fd=fd)
        with os.fdopen(out, "wb") as f:
            f.write(data)
    finally:
        os.close(fd)
