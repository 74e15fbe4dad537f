"""`imagepipe templates ls|show|rm`: the local template store (publish: local)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples


@click.group(epilog=examples("imagepipe templates ls", "imagepipe templates show httpd",
                             "imagepipe templates diff httpd",
                             "imagepipe templates rm httpd/20261130"))
def templates() -> None:
    """The local template store that `publish: local` fills."""


@templates.command("ls", epilog=examples("imagepipe templates ls",
                                         "imagepipe templates ls httpd --dir /srv/templates"))
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


@templates.command("diff", epilog=examples(
    "imagepipe templates diff httpd",
    "imagepipe templates diff httpd 20261201 20261202 --json"))
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
def _resolve(root: Path, ref: str, *, need_version: bool) -> tuple[str, Path]:
    """(name, version dir) for `NAME[/VERSION]` (VERSION may be `latest`)."""
    from imagepipe.errors import InputError

    name, _, version = ref.partition("/")
    base = root / name
    if not name or not base.is_dir():
        raise InputError(f"no template {name!r} in {root}", "see: imagepipe templates ls")
    if not version:
        if need_version:
            raise InputError(f"{ref}: give NAME/VERSION", f"see: imagepipe templates ls {name}")
        version = "latest"
    path = base / version
    if not path.is_dir() or version.startswith("."):
        raise InputError(f"no version {version!r} of {name!r} in {root}",
                         f"see: imagepipe templates ls {name}")
    return name, path.resolve() if version == "latest" else path


def _boot_summary(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The boot test's result as the manifest recorded it (also when the stage was cached)."""
    for st in manifest.get("stages", []):
        if st.get("stage") == "test.boot":
            rec = st.get("record") or {}
            return {"passed": rec.get("passed"), "cached": st.get("cached"),
                    "checks": [{"name": c.get("name"), "passed": c.get("passed"),
                                "seconds": c.get("seconds")} for c in rec.get("checks", [])]}
    return None


@templates.command("show", epilog=examples("imagepipe templates show httpd",
                                           "imagepipe templates show httpd/20261201 --dir /srv/t"))
@click.argument("ref", metavar="NAME[/VERSION]")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("templates"), show_default=True, help="The template store.")
def show(ref: str, root: Path) -> None:
    """Show one version (default: latest): recipe, build time, boot test, where each output is."""
    from imagepipe.store.maintenance import human

    name, path = _resolve(root, ref, need_version=False)
    m = json.loads((path / "manifest.json").read_text()) if (path / "manifest.json").is_file() \
        else {}
    rec = m.get("recipe") or {}
    boot = _boot_summary(m)
    outputs = [{"path": str(path / Path(o["path"]).name), "format": o.get("format_name")
                or o.get("format"), "virtual_size": o.get("virtual_size"),
                "file_size": o.get("file_size"), "sha256": o.get("sha256")}
               for o in m.get("outputs", [])]
    lines = [f"{name} {path.name}  ({path})",
             f"  recipe:   {rec.get('path', '?')} (sha256 {str(rec.get('sha256'))[:16]}…)",
             f"  built:    {m.get('built_at', '?')} in {m.get('seconds', '?')}s, "
             f"imagepipe {m.get('imagepipe_version', '?')}"]
    if boot is None:
        lines.append("  boot test: not run")
    else:
        checks = ", ".join(f"{c['name']} {'ok' if c['passed'] else 'FAILED'}"
                           for c in boot["checks"])
        lines.append(f"  boot test: {'passed' if boot['passed'] else 'FAILED'}"
                     f"{' (cached result)' if boot['cached'] else ''}: {checks}")
    lines.append("  outputs:")
    lines += [f"    {o['path']}  {o['format']}, virtual {human(o['virtual_size'] or 0)}, "
              f"file {human(o['file_size'] or 0)}" for o in outputs]
    ui.result("\n".join(lines), name=name, version=path.name, path=str(path),
              recipe=rec, built_at=m.get("built_at"), boot_test=boot, outputs=outputs)


@templates.command("rm", epilog=examples("imagepipe templates rm httpd/20261130",
                                         "imagepipe templates rm httpd/20261201 --force"))
@click.argument("ref", metavar="NAME/VERSION")
@click.option("--dir", "root", type=click.Path(file_okay=False, path_type=Path),
              default=Path("templates"), show_default=True, help="The template store.")
@click.option("--force", is_flag=True, help="Also remove the version `latest` points at "
              "(`latest` then points at the newest remaining version, or is removed).")
def rm(ref: str, root: Path, force: bool) -> None:
    """Remove one version of a template; never the one `latest` points at unless --force."""
    from imagepipe.errors import InputError

    name, path = _resolve(root, ref, need_version=True)
    base = root / name
    latest = base / "latest"
    is_latest = latest.exists() and latest.resolve() == path.resolve()
    if is_latest and not force:
        raise InputError(f"{name}/{path.name} is what {name}/latest points at",
                         "pass --force to remove it anyway")
    trash = base / f".rm-{path.name}"  # one rename: readers never see half a version
    os.rename(path, trash)
    if is_latest:
        _repoint_latest(base)
    shutil.rmtree(trash)
    ui.result(f"removed {name}/{path.name}", name=name, version=path.name, path=str(path),
              was_latest=is_latest)


def _repoint_latest(base: Path) -> None:
    """`latest` -> the newest remaining version (swapped by rename), or gone if none is left."""
    latest = base / "latest"
    left = _versions(base)
    if not left:
        latest.unlink()
        return
    tmp = base / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(left[0].name, tmp)
    os.replace(tmp, latest)
