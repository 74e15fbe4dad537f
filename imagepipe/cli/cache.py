"""`imagepipe cache ls|verify|gc`: look after the content-addressed store."""

from __future__ import annotations

from pathlib import Path

import click

from imagepipe import ui
from imagepipe.cli.common import examples
from imagepipe.cli.store_option import store_option


@click.group(epilog=examples("imagepipe cache ls", "imagepipe cache verify --delete",
                             "imagepipe cache gc --max-size 20G"))
def cache() -> None:
    """Inspect, verify and trim the build cache (the store)."""


@cache.command("ls", epilog=examples("imagepipe cache ls",
                                     "imagepipe --json cache ls --store /srv/cache"))
@store_option
def ls(store: Path | None) -> None:
    """List store entries, least recently used first."""
    from imagepipe.store import Store
    from imagepipe.store.maintenance import age, entries, human

    st = Store(store)
    items = sorted(entries(st), key=lambda e: e.last_used)
    lines = [f"{'kind':<8} {'size':>10}  {'last used':<10} {'entry':<26} label"]
    for e in items:
        name = e.path.name[:24]
        lines.append(f"{e.kind:<8} {human(e.size):>10}  {age(e.last_used):<10} {name:<26} "
                     f"{e.label}")
    total = sum(e.size for e in items)
    lines.append(f"{len(items)} entries, {human(total)} in {st.root}")
    ui.result("\n".join(lines), store=str(st.root), total=total,
              entries=[e.to_dict(st.root) for e in items])


@cache.command(epilog=examples("imagepipe cache verify", "imagepipe cache verify --delete"))
@store_option
@click.option("--delete", is_flag=True, help="Remove corrupt entries (unless a build holds them).")
def verify(store: Path | None, delete: bool) -> None:
    """Re-hash every entry; report (and exit 1 on) corrupt ones."""
    from imagepipe.errors import ImagepipeError
    from imagepipe.store import Store
    from imagepipe.store.maintenance import entries, remove_entry
    from imagepipe.store.maintenance import verify as check

    st = Store(store)
    bad = check(st)
    n = len(entries(st))
    for path, problem in bad:
        ui.info(f"CORRUPT {path}: {problem}")
        if delete:
            top = _entry_of(st.root, path)
            ui.info(f"  {'removed' if remove_entry(st, top) else 'held by a build, kept'}: {top}")
    ui.result(f"{n} entries checked, {len(bad)} corrupt", checked=n,
              corrupt=[{"path": str(p), "problem": m} for p, m in bad])
    if bad and not delete:
        raise ImagepipeError(f"{len(bad)} corrupt store entr{'y' if len(bad) == 1 else 'ies'}",
                             "run `imagepipe cache verify --delete` to remove them")


def _entry_of(root: Path, path: Path) -> Path:
    parts = path.relative_to(root).parts
    return root.joinpath(*parts[: 3 if parts[0] == "objects" else 2])


@cache.command(epilog=examples("imagepipe cache gc --max-size 20G --dry-run",
                              "imagepipe cache gc --max-size 50G"))
@store_option
@click.option("--max-size", required=True, metavar="SIZE",
              help="Trim the store to at most this size (e.g. 20G), least recently used first.")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def gc(store: Path | None, max_size: str, dry_run: bool) -> None:
    """Remove least recently used entries; never one a running build holds."""
    from imagepipe.store import Store
    from imagepipe.store.maintenance import gc as collect
    from imagepipe.store.maintenance import human, parse_size

    st = Store(store)
    removed, held = collect(st, parse_size(max_size), dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for e in removed:
        ui.info(f"{verb} {e.kind} {e.path.name[:24]} {e.label} ({human(e.size)})")
    for e in held:
        ui.info(f"kept {e.path.name[:24]} {e.label}: in use by a running build")
    freed = sum(e.size for e in removed)
    ui.result(f"{verb} {len(removed)} entries, {human(freed)}; {len(held)} held by builds",
              removed=[e.to_dict(st.root) for e in removed] if not dry_run else [],
              would_remove=[e.to_dict(st.root) for e in removed] if dry_run else [],
              held=[e.to_dict(st.root) for e in held], freed=freed)
