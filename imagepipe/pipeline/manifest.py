"""The build manifest (`manifest.json`) and `SHA256SUMS`: what was built, from what, with what.

Why every field: a template found on a shelf months later must answer "which recipe (exact
bytes), which sources (URLs + digests), which tool versions, which stages were cached, what does
each output contain" without the build machine. Secrets never appear: every value stored under
a key that names a credential is redacted wherever it occurs, and stage options are not copied
wholesale.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe.artifact import Artifact

MANIFEST_VERSION = 1
# A key *names a secret* when its last word is a secret noun: `password`, `db_password`,
# `api-token`, `hashed_passwd`. Keys that merely mention one (`password_allowed`,
# `allow_password`, `password_file`, `lock_passwd`) name audit results, switches or paths.
SECRET = re.compile(r"(^|[_-])(password|passwd|passphrase|token|secret|api_key|private_key|"
                    r"credentials?)$", re.IGNORECASE)
REDACTED = "<redacted>"
# Audit records kept as they are: their findings name file:line, never a secret's value (the
# lints' `password_allowed` must stay readable).
AUDIT_KEYS = frozenset({"lints"})


def is_secret(key: str, value: Any) -> bool:
    """True when `value`, stored under `key`, is a secret to hide: a non-empty string or number
    under a secret-naming key. Booleans, lists and mappings are never secrets themselves (a
    mapping is walked instead), so an audit result such as `lints.password_allowed` stays
    visible."""
    if isinstance(value, bool) or value in (None, ""):
        return False
    return isinstance(value, (str, int, float)) and bool(SECRET.search(key))


def redact(value: Any) -> Any:
    """A copy of `value` with secret values replaced (see `is_secret`)."""
    if isinstance(value, Mapping):
        return {k: (v if k in AUDIT_KEYS else REDACTED if is_secret(str(k), v) else redact(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, str):
        from imagepipe import redact as redact_mod

        return redact_mod.urls(value)  # https://user:pw@host -> https://***@host
    return value


@dataclass
class StageRecord:
    """One stage of one build, as the manifest shows it."""

    id: str
    stage: str
    version: int
    key: str | None
    cached: bool
    seconds: float
    inputs: dict[str, str | None] = field(default_factory=dict)  # slot -> digest
    artifact: Artifact | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        art = self.artifact
        return {"id": self.id, "stage": self.stage, "version": self.version, "key": self.key,
                "cached": self.cached, "seconds": round(self.seconds, 3), "reason": self.reason,
                "inputs": self.inputs,
                "output": None if art is None else {
                    "path": str(art.path) if art.path else None, "kind": art.kind,
                    "format": art.format, "digest": art.digest,
                    "files": {k: str(v) for k, v in art.files.items()}},
                "record": redact(dict(art.metadata)) if art is not None else {}}


def output_entry(record: StageRecord) -> dict[str, Any]:
    """An `outputs[]` entry from a convert stage's record (ImageReport facts)."""
    art = record.artifact
    assert art is not None and art.path is not None
    meta = dict(art.metadata)
    return {"stage": record.id, "path": str(art.path), "store_path": str(art.path),
            # format = qemu's driver name (vpc for vhd), as `qemu-img info` and -f/-F want it;
            # format_name = imagepipe's name (vhd), as recipes and presets spell it
            "format": art.format or meta.get("format"), "format_name": meta.get("format"),
            "subformat": meta.get("subformat"), "preset": meta.get("preset"),
            "virtual_size": meta.get("virtual_size"), "file_size": meta.get("file_size"),
            "allocated_size": meta.get("allocated_size"),
            "sha256": (art.digest or "").removeprefix("sha256:") or meta.get("sha256")}


def image_content(records: Iterable[StageRecord]) -> dict[str, Any]:
    """What the image holds (the guest stage's last look): used bytes, largest directories."""
    for r in records:
        if r.stage == "guest" and r.artifact is not None:
            lean = dict(r.artifact.metadata).get("lean") or {}
            return {"used_bytes": lean.get("used_bytes"),
                    "largest_dirs": lean.get("largest_dirs", [])}
    return {}


def add_size_ratios(outputs: list[dict[str, Any]], used: int | None) -> None:
    """Each output's file size as a ratio to the bytes the guest uses (1.0 = no overhead;
    below 1 = compressed)."""
    for o in outputs:
        size = o.get("file_size")
        o["used_bytes"] = used
        o["ratio_to_used"] = round(size / used, 3) if used and size else None


def build_manifest(*, recipe: Any, recipe_sha256: str | None, records: Iterable[StageRecord],
                   tools: Mapping[str, str], build_dir: Path, started: float,
                   warnings: Iterable[str] = ()) -> dict[str, Any]:
    from imagepipe import __version__

    recs = list(records)
    sources, publish, warn = [], {}, list(warnings)
    inventory: dict[str, Any] = {}
    for r in recs:
        meta = dict(r.artifact.metadata) if r.artifact else {}
        if r.stage == "guest" and isinstance(meta.get("inventory"), Mapping):
            inventory = dict(meta["inventory"])
        if r.stage == "fetch":
            sources.append({"url": meta.get("url"), "mirrors": meta.get("mirrors", []),
                            "digest": meta.get("digest"),
                            "fetched_from": meta.get("fetched_from"),
                            "checksum_from": meta.get("checksum_from"),
                            "decompressed": meta.get("decompressed")})
            warn.extend(meta.get("warnings", []))
        if r.stage == "base.bootstrap":
            sources.append({"bootstrap": meta.get("distro"), "suite": meta.get("suite"),
                            "mirror": meta.get("mirror"), "packages": meta.get("packages"),
                            "kernel": meta.get("kernel"),
                            "repositories": meta.get("repositories", []),
                            "resolved_packages": meta.get("resolved_packages"),
                            "rootfs_tarball": meta.get("rootfs_tarball"),
                            "firmware": meta.get("firmware"),
                            "bootloader": meta.get("bootloader")})
            warn.extend(meta.get("warnings", []))  # trusted: true repositories
        if r.stage == "guest":
            warn.extend((meta.get("customize") or {}).get("warnings", []))
        if r.stage.startswith("publish.") and r.artifact is not None:
            publish[r.stage.split(".", 1)[1]] = redact(meta)
    stages = [r.to_json() for r in recs]
    for st in stages:  # the package list is shown once, at the top level
        inv = st["record"].get("inventory") if isinstance(st["record"], dict) else None
        if isinstance(inv, dict):
            inv.pop("packages", None)
    packages = inventory.pop("packages", None)
    outputs = [output_entry(r) for r in recs if r.stage == "convert" and r.artifact is not None]
    content = image_content(recs)
    add_size_ratios(outputs, content.get("used_bytes"))
    doc: dict[str, Any] = redact({
        "manifest_version": MANIFEST_VERSION,
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": recipe_sha256,
                   "description": recipe.description, "comment": recipe.comment,
                   "image_version": recipe.image_version},
        "imagepipe_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "build_dir": str(build_dir),
        "tools": dict(sorted(tools.items())),
        "stages": stages,
        "outputs": outputs,
        "content": content,
        "sources": sources,
        "warnings": warn,
        "publish": publish,
        # what the sealed image contains (guest stage), [] unknown without one
        "inventory": inventory or None,
        "packages": packages,
    })
    return doc


def sha256sums(manifest: Mapping[str, Any], extra: Iterable[Path] = ()) -> str:
    """GNU `sha256sum` format for the outputs (by file name, as they sit side by side), plus
    `extra` files (the SBOM) hashed here."""
    from imagepipe.hashing import file_digest

    lines = [f"{o['sha256']}  {Path(o['path']).name}\n"
             for o in manifest.get("outputs", []) if o.get("sha256")]
    lines += [f"{file_digest(p)}  {p.name}\n" for p in extra]
    return "".join(lines)


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write(build_dir: Path, manifest: dict[str, Any]) -> Path:
    """manifest.json, sbom.spdx.json (with an inventory) and SHA256SUMS into the build
    directory; returns the manifest path."""
    from imagepipe.inventory.spdx import write_checked_sbom

    extra = write_checked_sbom(build_dir, manifest)
    path = build_dir / "manifest.json"
    write_json_atomic(path, manifest)
    sums = build_dir / "SHA256SUMS"
    sums.write_text(sha256sums(manifest, extra))
    return path
