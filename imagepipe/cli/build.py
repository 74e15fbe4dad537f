"""`imagepipe build RECIPE [options]` and `imagepipe build --all [DIR]`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples
from imagepipe.cli.farm import broker_options, queue_option
from imagepipe.cli.store_option import store_option
from imagepipe.cli.variables import as_args, collect, var_options


@click.command(epilog=examples(
    "imagepipe build recipes/httpd.yaml",
    "imagepipe build recipes/httpd.yaml --dry-run --explain",
    "imagepipe build recipes/httpd.yaml --force test.boot",
    "imagepipe --json build --all recipes/ -j 2"))
@click.argument("target", required=False, metavar="RECIPE | --all [DIR]",
                type=click.Path(path_type=Path))
@click.option("--all", "build_all", is_flag=True,
              help="Build every recipe under DIR (default: recipes/), in parallel.")
@store_option
@click.option("--explain", is_flag=True, help="Say for every stage: cached, or why it reran.")
@click.option("--dry-run", is_flag=True, help="Print the plan (cached or not); change nothing.")
@click.option("--from", "from_stage", metavar="STAGE", help="Rerun this stage and all after it.")
@click.option("--force", multiple=True, metavar="STAGE", help="Rerun this stage (repeatable).")
@click.option("--keep-on-failure", is_flag=True,
              help="Keep the failed stage's work dir (its path is printed).")
@click.option("--no-wait", is_flag=True,
              help="Fail at once if another build of the recipe is running (with --broker: "
                   "queue the recipes and exit).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="Parallel converts in a build (default: the core count); with --all, "
              "recipes at a time (default: half the cores, at least 2).")
@click.option("--offline", is_flag=True,
              help="Do not ask package mirrors: reuse the last resolved package set.")
@var_options
@broker_options
@queue_option
@click.option("--publish-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Publish locally into DIR instead of publish.local.dir (farm workers get "
                   "the submitter's resolved dir).")
def build(target: Path | None, build_all: bool, store: Path | None, explain: bool,
          dry_run: bool, from_stage: str | None, force: tuple[str, ...],
          keep_on_failure: bool, no_wait: bool, jobs: int | None, offline: bool,
          variables: tuple[str, ...], var_files: tuple[Path, ...], broker: str | None,
          broker_file: Path | None, queue: str, publish_dir: Path | None) -> None:
    """Build the images a recipe describes (cached stages are not rerun).

    Bootstrapped bases resolve their package set first (one index check per repository):
    an unchanged set rebuilds nothing, a changed version rebuilds and publishes a new version
    (`--explain` names the packages).

    With --broker the recipes are sent to the build farm (`imagepipe worker`) instead; the
    summary and exit codes are the same. --no-wait then only queues them."""
    from imagepipe.errors import InputError

    values = collect(variables, var_files)  # bad --var / --var-file: exit 2 before anything
    if broker or broker_file:
        if values or offline:
            raise InputError("--var, --var-file and --offline are not sent to farm workers",
                             "put the values in the recipe, or build locally")
        _build_farm(target, build_all, broker, broker_file, queue, no_wait)
        return
    if build_all:
        extra = as_args(variables, var_files) + (["--offline"] if offline else [])
        _build_all(target or Path("recipes"), store, jobs, explain, dry_run, no_wait, extra)
        return
    if target is None:
        raise InputError("give a RECIPE file, or --all [DIR]")
    from imagepipe.pipeline import BuildOptions, load
    from imagepipe.pipeline import build as run_build

    recipe, digest = load(target, values)
    if publish_dir is not None and recipe.publish.local is not None:
        import dataclasses

        local = dataclasses.replace(recipe.publish.local, dir=publish_dir.absolute())
        recipe = dataclasses.replace(recipe,
                                     publish=dataclasses.replace(recipe.publish, local=local))
    _kernel_check(recipe, store)
    opts = BuildOptions(store=store, explain=explain, dry_run=dry_run, from_stage=from_stage,
                        force=force, keep_on_failure=keep_on_failure, wait=not no_wait,
                        jobs=jobs or 0, offline=offline)
    report = run_build(recipe, opts, digest)
    if dry_run:
        return
    m = report.manifest
    ui.result(_summary(report), recipe=recipe.name, ok=report.ok,
              seconds=round(report.seconds, 3), rerun_count=len(report.rerun),
              stage_count=len(report.records), rerun=report.rerun,
              outputs=m.get("outputs", []), manifest=str(report.manifest_path),
              build_dir=str(report.build_dir), publish=m.get("publish", {}))


def _build_farm(target: Path | None, build_all: bool, broker: str | None,
                broker_file: Path | None, queue: str, no_wait: bool) -> None:
    from imagepipe.cli.farm import broker_url
    from imagepipe.errors import InputError
    from imagepipe.farm.client import run

    url = broker_url(broker, broker_file)
    if build_all:
        from imagepipe.pipeline.batch import discover

        root = target or Path("recipes")
        if not root.is_dir():
            raise InputError(f"no recipe directory {root}", "give the directory: build --all DIR")
        recipes = discover(root)
        if not recipes:
            raise InputError(f"no recipes found under {root}")
        ui.info(f"sending {len(recipes)} recipes from {root} to the farm (queue {queue})")
    elif target is None:
        raise InputError("give a RECIPE file, or --all [DIR]")
    else:
        if not target.is_file():
            raise InputError(f"recipe not found: {target}")
        recipes = [target]
    run(url, recipes, queue, single=not build_all, no_wait=no_wait)


def _kernel_check(recipe: Any, store: Path | None) -> None:
    """Refuse (exit 2) outputs whose platform hardware the recipe's kernel cannot drive."""
    from imagepipe.bases.kernelcheck import check_or_warn
    from imagepipe.errors import RecipeError

    problems = check_or_warn(recipe, store)
    if problems:
        raise RecipeError(problems)


def _summary(report: Any) -> str:
    from imagepipe.store.maintenance import human

    m = report.manifest
    lines = [f"{report.recipe}: built in {report.seconds:.1f}s "
             f"({len(report.rerun)} of {len(report.records)} stages run)"]
    for r in report.records:
        state = "cached" if r.cached else f"{r.seconds:6.1f}s"
        lines.append(f"  {r.id:<20} {state}{_boot_note(r)}")
    lines.append("outputs:")
    for o in m.get("outputs", []):
        sub = f"/{o['subformat']}" if o.get("subformat") else ""
        lines.append(f"  {o['path']}")
        name = o.get("format_name") or o.get("format")
        ratio = f" ({o['ratio_to_used']:.2f}x used)" if o.get("ratio_to_used") else ""
        lines.append(f"      {name}{sub}, virtual {human(o.get('virtual_size') or 0)}, "
                     f"file {human(o.get('file_size') or 0)}{ratio}, "
                     f"sha256 {str(o['sha256'])[:16]}…")
    used = (m.get("content") or {}).get("used_bytes")
    if used:
        lines.append(f"  guest data: {human(used)} used")
    inv, sbom = m.get("inventory"), m.get("sbom")
    if inv:
        where = f"; SBOM {report.build_dir}/{sbom['file']}" if sbom else ""
        lines.append(f"packages: {inv.get('count')} installed ({inv.get('database')}){where}")
    local = m.get("publish", {}).get("local")
    if local:
        state = " (unchanged, nothing copied)" if local.get("unchanged") else ""
        lines.append(f"published: {local['dir']}{state}")
    for w in m.get("warnings", []):
        lines.append(f"warning: {w}")
    lines.append(f"manifest: {report.manifest_path}")
    lines.append(f"logs: {report.build_dir}/logs/")
    return "\n".join(lines)


def _boot_note(record: Any) -> str:
    """A boot test's result beside its stage line, also when the stage was cached (its record
    is the stored result of the boot that proved this very image)."""
    meta = dict(record.artifact.metadata) if record.artifact is not None else {}
    if record.stage != "test.boot" or "passed" not in meta:
        return ""
    checks = ", ".join(c["name"] + ("" if c.get("seconds") is None else f" {c['seconds']}s")
                       if c.get("passed") else f"{c['name']} FAILED"
                       for c in meta.get("checks", []))
    return f"  boot test {'passed' if meta['passed'] else 'FAILED'}: {checks}"


def _build_all(root: Path, store: Path | None, jobs: int | None, explain: bool,
               dry_run: bool, no_wait: bool, extra: list[str]) -> None:
    import secrets
    import time

    from imagepipe.apt.resolve import BATCH_ENV
    from imagepipe.errors import ImagepipeError, InputError
    from imagepipe.pipeline.batch import discover, run_all, summary
    from imagepipe.store import Store

    if not root.is_dir():
        raise InputError(f"no recipe directory {root}", "give the directory: build --all DIR")
    recipes = discover(root)
    if not recipes:
        raise InputError(f"no recipes found under {root}")
    st = Store.readonly(store) if dry_run else Store(store)
    args = ["--store", str(st.root)]
    args += ["--explain"] if explain else []
    args += ["--no-wait"] if no_wait else []
    args += extra
    # Each repository's indices are checked once per batch, not once per recipe.
    os.environ.setdefault(BATCH_ENV, f"{time.time():.0f}-{secrets.token_hex(4)}")
    n = jobs or max(2, (os.cpu_count() or 2) // 2)
    log_dir = None if dry_run else (st.root / "builds" / "_all" /
                                    time.strftime("%Y%m%d-%H%M%S", time.gmtime()))
    ui.info(f"building {len(recipes)} recipes from {root}, {1 if dry_run else n} at a time")
    results = run_all(recipes, jobs=n, build_args=args, log_dir=log_dir)
    ui.result(summary(results), results=[
        {"recipe": str(r.recipe), "ok": r.ok, "seconds": round(r.seconds, 3), "rerun": r.rerun,
         "outputs": r.outputs, "error": r.error, "log": str(r.log),
         "published": r.published, "changes": r.changes} for r in results])
    failed = [r.recipe.name for r in results if not r.ok]
    if failed:
        raise ImagepipeError(f"{len(failed)} of {len(results)} recipes failed: "
                             f"{', '.join(failed)}", f"logs in {log_dir}" if log_dir else None)
