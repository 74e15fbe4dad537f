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


@templates.command("diff")
@click.argument("name")
@click.argument("old", required=False)
@click.argument("new", required=False)
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("templates"), show_default=True, help="The template store.")
@click.option("--json", "as_json", is_flag=True, help="One JSON result (same as imagepipe --json).")
def diff(name: str, old: str | None, new: str | None, root: Path, as_json: bool) -> None:
    """What changed between two versions of template NAME: packages added, removed,
    upgraded and downgraded, output sizes, seal and lint changes.

    OLD and NEW default to the two newest versions; with only OLD, NEW is the newest.

    \b
    Example: imagepipe templates diff httpd
             imagepipe templates diff httpd 20261201-020000 20261202-020000 --json
    """
    from imagepipe.errors import InputError
    from imagepipe.inventory.diff import format_text, manifest_diff

    if as_json:
        ui.configure(json_mode=True, verbose=ui.settings.verbose, debug=ui.settings.debug)
    base = root / name
    if not base.is_dir():
        raise InputError(f"no template {name!r} in {root}", "list them: imagepipe templates ls")
    versions = [v.name for v in _versions(base)]
    if new is None:
        newest = [v for v in versions if v != old]
        if not newest:
            raise InputError(f"template {name!r} has only {len(versions)} version(s) in {root}",
                             "a diff needs two: publish another build first")
        new = newest[0]
    if old is None:
        older = versions[versions.index(new) + 1:] if new in versions else []
        if not older:
            raise InputError(f"no version of {name!r} older than {new}",
                             f"a diff needs two versions; {name} has: "
                             f"{', '.join(versions) or 'none'}")
        old = older[0]
    manifests = [_manifest(base, v, versions) for v in (old, new)]
    d = manifest_diff(*manifests)
    ui.result(format_text(d, f"{name} {old}", f"{name} {new}"), name=name, old=old, new=new,
              **d)


def _manifest(base: Path, version: str, known: list[str]) -> dict[str, Any]:
    from imagepipe.errors import InputError

    path = base / version / "manifest.json"
    if version not in known or not path.is_file():
        raise InputError(f"no version {version!r} of {base.name} in {base.parent}",
                         f"versions: {', '.join(known) or 'none'}")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise InputError(f"{path}: not a JSON manifest: {exc}") from None
    return data if isinstance(data, dict) else {}
