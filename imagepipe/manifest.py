"""The build manifest (`manifest.json`) and `SHA256SUMS`: what was built, from what, with what.

Why every field: a template found on a shelf months later must answer "which recipe (exact
bytes), which sources (URLs + digests), which tool versions, which stages were cached, what does
each output contain" without the build machine. Secrets never appear: every key that looks
like a credential is redacted wherever it occurs, and stage options are not copied wholesale.
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

from imagepipe.stages.base import Artifact

MANIFEST_VERSION = 1
SECRET = re.compile(r"(^|[_-])(password|passwd|passphrase|token|secret|api_key|private_key|"
                    r"credentials?)($|[_-])", re.IGNORECASE)
REDACTED = "<redacted>"
# Audit records kept as they are: their findings name file:line, never a secret's value (the
# lints' `password_allowed` must stay readable).
AUDIT_KEYS = frozenset({"lints"})


def redact(value: Any) -> Any:
    """A copy of `value` with credential-looking keys' values replaced."""
    if isinstance(value, Mapping):
        return {k: (v if k in AUDIT_KEYS else
                    REDACTED if SECRET.search(str(k)) and v not in (None, "", False)
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
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
            "subformat": meta.get("subformat"),
            "virtual_size": meta.get("virtual_size"), "file_size": meta.get("file_size"),
            "allocated_size": meta.get("allocated_size"),
            "sha256": (art.digest or "").removeprefix("sha256:") or meta.get("sha256")}


def build_manifest(*, recipe: Any, recipe_sha256: str | None, records: Iterable[StageRecord],
                   tools: Mapping[str, str], build_dir: Path, started: float,
                   warnings: Iterable[str] = ()) -> dict[str, Any]:
    from imagepipe import __version__

    recs = list(records)
    sources, publish, warn = [], {}, list(warnings)
    for r in recs:
        meta = dict(r.artifact.metadata) if r.artifact else {}
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
                            "rootfs_tarball": meta.get("rootfs_tarball")})
        if r.stage.startswith("publish.") and r.artifact is not None:
            publish[r.stage.split(".", 1)[1]] = redact(meta)
    return redact({
        "manifest_version": MANIFEST_VERSION,
        "recipe": {"name": recipe.name, "path": str(recipe.path), "sha256": recipe_sha256,
                   "description": recipe.description, "comment": recipe.comment,
                   "image_version": recipe.image_version},
        "imagepipe_version": __version__,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 3),
        "build_dir": str(build_dir),
        "tools": dict(sorted(tools.items())),
        "stages": [r.to_json() for r in recs],
        "outputs": [output_entry(r) for r in recs
                    if r.stage == "convert" and r.artifact is not None],
        "sources": sources,
        "warnings": warn,
        "publish": publish,
    })


def sha256sums(manifest: Mapping[str, Any]) -> str:
    """GNU `sha256sum` format for the outputs (by file name, as they sit side by side)."""
    return "".join(f"{o['sha256']}  {Path(o['path']).name}\n"
                   for o in manifest.get("outputs", []) if o.get("sha256"))


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def write(build_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """manifest.json + SHA256SUMS into the build directory; returns the manifest path."""
    path = build_dir / "manifest.json"
    write_json_atomic(path, manifest)
    sums = build_dir / "SHA256SUMS"
    sums.write_text(sha256sums(manifest))
    return path
