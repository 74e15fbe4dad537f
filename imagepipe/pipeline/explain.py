"""Why a stage reran: the difference between its key material now and in the previous build.

mkosi's lesson: a cache nobody can explain is a cache nobody trusts. Each build stores, per
recipe, every stage's key material (builds/<recipe>/last.json); the next build diffs against
it and names what changed: an option (with its path), an input (with both digests), a tool
version, or the stage version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def load_previous(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        return dict(data.get("stages", {}))
    except (OSError, ValueError):
        return {}


def scrub(value: Any, key: str = "") -> Any:
    """Key material as stored on disk: credential-looking keys redacted, file contents and long
    strings replaced by their sha256 (a diff still says *that* they changed, not to what)."""
    from imagepipe.pipeline.manifest import REDACTED, is_secret

    if isinstance(value, Mapping):
        if key == "resolved":  # package name -> version: `passwd` is a package, not a secret
            return dict(value)
        return {k: scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, key) for v in value]
    if isinstance(value, str):
        from imagepipe import redact

        value = redact.urls(value)
        if is_secret(key, value):
            return REDACTED
        if key == "content" or len(value) > 256:
            return "sha256:" + hashlib.sha256(value.encode()).hexdigest()
    return value


def save(path: Path, recipe_path: str, stages: Mapping[str, Any]) -> None:
    """Merge this build's stage keys and (scrubbed) key material into `path`."""
    from imagepipe.pipeline.manifest import write_json_atomic

    old = load_previous(path)
    old.update({sid: {"key": v["key"], "material": scrub(v["material"])}
                for sid, v in stages.items()})
    write_json_atomic(path, {"recipe": recipe_path, "stages": old})


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else value
    if text.startswith(("sha256:", "sha512:")):
        return text[:19]
    return text if len(text) <= 60 else text[:57] + "..."


def diff(old: Any, new: Any, path: str = "") -> list[str]:
    """Human lines for what differs between two JSON values."""
    if isinstance(old, dict) and isinstance(new, dict):
        if set(old) == set(new) == {"file_sha256"}:
            return [f"{path} file content changed"] if old != new else []
        out = []
        for key in sorted(set(old) | set(new)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in old:
                out.append(f"{sub} added ({_short(new[key])})")
            elif key not in new:
                out.append(f"{sub} removed")
            else:
                out.extend(diff(old[key], new[key], sub))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [line for i, (a, b) in enumerate(zip(old, new, strict=True))
                for line in diff(a, b, f"{path}.{i}")]
    if old != new:
        return [f"{path} changed: {_short(old)} -> {_short(new)}"]
    return []


def reason(previous: Mapping[str, Any] | None, material: Mapping[str, Any] | None) -> str:
    """Why a stage with this key material is not cached."""
    if previous is None:
        return "no previous build of this stage"
    if material is None:
        return "an input is rebuilt first"
    lines = []
    for line in diff(previous.get("material", {}), scrub(dict(material))):
        head, _, rest = line.partition(" ")
        kind, _, sub = head.partition(".")
        if kind == "inputs":
            lines.append(f"input {sub} {rest}")
        elif kind == "tools":
            lines.append(f"tool {sub} {rest}")
        elif kind == "version":
            lines.append(f"stage version {rest}")
        else:
            lines.append(line)
    if not lines:
        return ("same inputs as the previous build, but its result is not in the store "
                "(that run failed or was interrupted, or `cache gc` removed it)")
    return "; ".join(lines)
