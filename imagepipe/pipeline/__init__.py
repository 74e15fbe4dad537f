"""`imagepipe build`: plan -> stage ids -> skip the cached prefix -> run -> manifest.

One ExitStack holds everything a build acquires (the recipe's build lock, the store holds,
each stage's resources), so a failure or Ctrl-C releases all of it. The build directory
(store/builds/<recipe>/<time>/) keeps the per-stage logs, manifest.json and SHA256SUMS.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.activity import activity
from imagepipe.cache_root import default_root
from imagepipe.errors import ImagepipeError
from imagepipe.pipeline import explain
from imagepipe.pipeline.manifest import StageRecord, build_manifest, write
from imagepipe.pipeline.plan import flat, make_plan, select
from imagepipe.pipeline.runner import Engine
from imagepipe.recipe.model import Recipe
from imagepipe.store import Store

KEEP_BUILD_DIRS = 20


@dataclass
class BuildOptions:
    store: Path | None = None
    explain: bool = False
    dry_run: bool = False
    from_stage: str | None = None
    force: tuple[str, ...] = ()
    keep_on_failure: bool = False
    wait: bool = True
    jobs: int = 0  # 0 = the number of cores
    offline: bool = False  # reuse the last resolved package set, never ask the mirror


@dataclass
class BuildReport:
    recipe: str
    ok: bool
    seconds: float
    records: list[StageRecord] = field(default_factory=list)
    build_dir: Path | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_path: Path | None = None
    error: str | None = None

    @property
    def rerun(self) -> list[str]:
        return [r.id for r in self.records if not r.cached]


def load(path: Path, variables: dict[str, str] | None = None) -> tuple[Recipe, str]:
    """The validated recipe (every problem reported at once, exit 2) and its digest;
    `variables` are the CLI's --var / --var-file values."""
    from imagepipe.recipe.load import load_recipe, recipe_digest

    if not Path(path).is_file():
        from imagepipe.errors import InputError
        from imagepipe.recipe.find import suggest_recipe

        raise InputError(f"recipe not found: {path}", suggest_recipe(Path(path)))
    recipe = load_recipe(Path(path), variables=variables)
    return recipe, recipe_digest(recipe)


def build(recipe: Recipe, opts: BuildOptions, recipe_sha256: str | None = None) -> BuildReport:
    """Build `recipe`. Raises on failure (after writing what is known to the build dir)."""
    from imagepipe.apt import resolve as apt_resolve

    start = time.time()
    apt_resolve.configure(opts.store, offline=opts.offline)  # where the plan's resolve looks
    levels = make_plan(recipe)  # fails here if a needed stage is not installed
    forced: set[str] = set()
    for name in opts.force:
        forced.update(select(levels, name))
    if opts.from_stage:
        ids = [n.id for n in flat(levels)]
        first = min(ids.index(i) for i in select(levels, opts.from_stage))
        forced.update(ids[first:])
    jobs = opts.jobs or os.cpu_count() or 1
    if opts.dry_run:
        return _dry_run(recipe, levels, opts, forced, jobs, start)
    store = Store(opts.store)
    with ExitStack() as stack:
        with activity(recipe.name):  # a wait for another build's lock is shown too
            stack.enter_context(store.build_lock(
                recipe.name, wait=opts.wait, on_wait=lambda who: _waiting(recipe.name, who)))
        stack.callback(store.holds.close)
        store.clean_stale()
        builds = store.builds_dir(recipe.name)
        build_dir = builds / (f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"
                              f"-{secrets.token_hex(2)}")
        (build_dir / "logs").mkdir(parents=True)
        _prune(builds)
        engine = Engine(recipe, store, build_dir, explain.load_previous(builds / "last.json"),
                        forced=forced, keep_on_failure=opts.keep_on_failure, jobs=jobs,
                        explain=opts.explain)
        if opts.explain:
            ui.info(f"{recipe.name}: stage plan")
        report = BuildReport(recipe.name, False, 0.0, engine.records, build_dir)
        try:
            for level in levels:
                if level[0].stage.name.startswith("publish."):
                    engine.manifest = _manifest(engine, recipe, recipe_sha256, start)
                engine.run_level(level)
            report.ok = True
        except BaseException as exc:
            report.error = str(exc) or ("interrupted" if isinstance(exc, KeyboardInterrupt)
                                        else type(exc).__name__)
            raise
        finally:
            explain.save(builds / "last.json", str(recipe.path), engine.materials)
            report.manifest = _manifest(engine, recipe, recipe_sha256, start,
                                        error=report.error)
            report.manifest_path = write(build_dir, report.manifest)
            report.seconds = time.time() - start
    return report


def _manifest(engine: Engine, recipe: Recipe, sha: str | None, start: float,
              error: str | None = None) -> dict[str, Any]:
    from imagepipe.stages.base import tool_version

    tools: dict[str, str] = {}
    tools["qemu-img"] = tool_version("qemu-img")
    for mat in engine.materials.values():
        tools.update(mat["material"].get("tools", {}))
    if any(r.stage == "guest" for r in engine.records):
        tools["libguestfs"] = tool_version("guestfish")
    m = build_manifest(recipe=recipe, recipe_sha256=sha, records=engine.records, tools=tools,
                       build_dir=engine.build_dir, started=start)
    local = m["publish"].get("local") or {}
    for out in m["outputs"]:
        name = Path(out["store_path"]).name
        if name in local.get("files", {}):
            out["path"] = local["files"][name]
    m["result"] = "failed" if error else "ok"
    if error:
        m["error"] = error
    return m


def _dry_run(recipe: Recipe, levels: list[Any], opts: BuildOptions, forced: set[str],
             jobs: int, start: float) -> BuildReport:
    """Print the plan; read the store without changing it (no lock, no holds kept)."""
    root = (opts.store or default_root()).expanduser().absolute()
    ui.info(f"{recipe.name}: plan (dry run, nothing is changed)")
    if not (root / "stages").is_dir():
        ui.info(f"  (store {root} is empty)")
    store = Store.readonly(root)
    prev = explain.load_previous(root / "builds" / _safe_name(recipe.name) / "last.json")
    engine = Engine(recipe, store, root, prev, forced=forced, jobs=jobs, dry_run=True)
    try:
        for level in levels:
            engine.run_level(level)
    finally:
        store.holds.close()
    report = BuildReport(recipe.name, True, time.time() - start, engine.records)
    planned = [n.id for n in flat(levels)]
    cached = [r.id for r in engine.records]
    would_run = [sid for sid in planned if sid not in cached]
    ui.result(None, recipe=recipe.name, dry_run=True, plan=planned, cached=cached,
              rerun=would_run, rerun_count=len(would_run), stage_count=len(planned))
    return report


def _waiting(name: str, who: str) -> None:
    ui.info(f"waiting for another build of {name} ({who})")
    ui.phase(f"waiting for another build ({who})")


def _safe_name(name: str) -> str:
    from imagepipe.store import _safe

    return _safe(name)


def _prune(builds: Path) -> None:
    dirs = sorted((d for d in builds.iterdir() if d.is_dir()), key=lambda d: d.stat().st_mtime)
    for old in dirs[:-KEEP_BUILD_DIRS]:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["BuildOptions", "BuildReport", "ImagepipeError", "build", "load"]
