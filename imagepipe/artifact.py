"""What a stage produces (`Artifact`) and the content hash of JSON (`hash_json`).

Why a module of its own, in the base layer: the store keeps artifacts, fetch and unpack make
them, the manifest lists them, and stage ids are `hash_json` of their key material. Living
beside the stage contract (`imagepipe.stages.base`), these two names made the store, fetch and
the manifest import the stage layer above them (and the store and the stages import each
other). Here they depend on nothing of the project, so every layer can use them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Artifact kinds. "image" = a disk image (format set), "iso" = an ISO 9660 file,
# "file" = any other file, "record" = no file, only metadata (a boot test, a publish).
KINDS = ("image", "iso", "file", "record")


@dataclass(frozen=True)
class Artifact:
    """What a stage produced.

    A stage returns one with `path` (and any `files`) inside `ctx.workdir`, or pointing at an
    existing store entry (pass-through, e.g. an unmodified fetched image). The engine moves
    workdir files into the store and hands downstream stages a copy whose paths are in the
    store and whose `digest` is filled in. Downstream stages must treat store paths as
    read-only: make an overlay or a copy before changing anything.
    """

    path: Path | None
    kind: str = "file"
    format: str | None = None  # disk format for kind="image": raw qcow2 vmdk vpc vhdx vdi
    files: Mapping[str, Path] = field(default_factory=dict)  # named side files ("seed.iso")
    metadata: Mapping[str, Any] = field(default_factory=dict)  # JSON-able, goes to the manifest
    digest: str | None = None  # "sha256:HEX", set by the engine (content of path + files)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"artifact kind must be one of {KINDS}, not {self.kind!r}")
        if self.kind != "record" and self.path is None:
            raise ValueError(f"a {self.kind!r} artifact needs a path")

    def to_json(self, relative_to: Path | None = None) -> dict[str, Any]:
        """The artifact as stored in `artifact.json` and shown in the manifest."""

        def show(p: Path) -> str:
            if relative_to is not None:
                try:
                    return str(p.relative_to(relative_to))
                except ValueError:
                    pass
            return str(p)

        return {
            "path": show(self.path) if self.path is not None else None,
            "kind": self.kind,
            "format": self.format,
            "files": {k: show(v) for k, v in sorted(self.files.items())},
            "metadata": dict(self.metadata),
            "digest": self.digest,
        }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hash_json(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()
