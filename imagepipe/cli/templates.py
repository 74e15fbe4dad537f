"""`imagepipe templates ls [NAME] [--dir DIR]`: the local template store (publish: local)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from imagepipe import ui


@click.group()
def templates() -> None:
    """The local template store that `publish: local` fills."""


@templates.command("ls")
@click.argument("name", required=False)
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("templates"), show_default=True, help="The template store.")
def ls(name: str | None, root: Path) -> None:
    """List templates (NAME: only that one) with their versions, newest first."""
    from imagepipe.errors import InputError

    if not root.is_dir():
        raise InputError(f"no template store at {root}", "publish a build or pass --dir")
    names = [name] if name else sorted(d.name for d in root.iterdir()
                                       if d.is_dir() and not d.name.startswith("."))
    rows: list[dict[str, Any]] = []
    for n in names:
        base = root / n
        if not base.is_dir():
            raise InputError(f"no template {n!r} in {root}")
        latest = (base / "latest").resolve().name if (base / "latest").exists() else None
        for v in _versions(base):
            rows.append(_row(n, v, latest))
    lines = [f"{'name':<16} {'version':<18} {'latest':<6} {'built':<20} outputs"]
    for r in rows:
        lines.append(f"{r['name']:<16} {r['version']:<18} {'*' if r['latest'] else '':<6} "
                     f"{r['built_at'] or '?':<20} {', '.join(r['outputs'])}")
    ui.result("\n".join(lines) if rows else f"no templates in {root}", templates=rows)


def _versions(base: Path) -> list[Path]:
    dirs = [d for d in base.iterdir()
            if d.is_dir() and not d.is_symlink() and not d.name.startswith(".")]
    return sorted(dirs, key=lambda d: d.stat().st_mtime, reverse=True)


def _row(name: str, version: Path, latest: str | None) -> dict[str, Any]:
    try:
        m = json.loads((version / "manifest.json").read_text())
    except (OSError, ValueError):
        m = {}
    outputs = [Path(o["path"]).name for o in m.get("outputs", [])]
    return {"name": name, "version": version.name, "latest": version.name == latest,
            "path": str(version), "built_at": m.get("built_at"), "outputs": outputs,
            "recipe_sha256": (m.get("recipe") or {}).get("sha256")}
