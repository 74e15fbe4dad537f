"""`imagepipe build --all [DIR]`: every recipe, independent recipes in parallel.

Why one subprocess per recipe (Packer's parallel builds): a recipe that crashes, hangs in a
library or is interrupted cannot take the others down, each build gets its own log file, and
the summary is read from each build's `--json` result event rather than scraped from text.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from imagepipe import ui


@dataclass
class BatchResult:
    recipe: Path
    ok: bool
    seconds: float
    rerun: int | None = None
    stages: int | None = None
    outputs: list[str] = field(default_factory=list)
    error: str = ""
    log: Path | None = None
    published: str | None = None  # the new local version, None when nothing was published
    changes: dict[str, Any] | None = None  # package changes vs the previous version
    would_run: list[str] | None = None  # a dry run's plan: the stages a build would run


def discover(root: Path) -> list[Path]:
    """Recipes under `root`: YAML files with `name:` and `source:` (or `extends:`); fragments
    (e.g. recipes/base/*.yaml, which lack required keys) and unreadable files are skipped."""
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        if path.suffix not in (".yaml", ".yml") or any(p.startswith(".") for p in path.parts):
            continue
        try:
            data = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            data = None  # a broken recipe with a name is still built (and reported failed)
            if "name:" not in path.read_text(errors="replace"):
                continue
            found.append(path)
            continue
        if isinstance(data, dict) and "name" in data and ("source" in data or "extends" in data):
            found.append(path)
    return found


def run_all(recipes: list[Path], *, jobs: int, build_args: list[str],
            log_dir: Path | None) -> list[BatchResult]:
    """Build each recipe in its own process. `log_dir` None (a dry run): one at a time, each
    plan shown on stderr, nothing written."""
    if log_dir is None:
        jobs = 1
    else:
        log_dir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        try:
            return list(pool.map(lambda r: _one(r, build_args, log_dir), recipes))
        except BaseException:
            _forward_interrupt()  # then the pool waits while each child cleans up
            raise


_children: set[subprocess.Popen[str]] = set()
_children_lock = threading.Lock()


def _forward_interrupt() -> None:
    """Pass the signal that stopped us (SIGTERM if none) to every child build: a SIGTERM sent
    to this process alone must stop them too (a terminal's Ctrl-C already reached them; a
    second SIGINT is only noted by their signal handler)."""
    from imagepipe import interrupts

    sig = interrupts.received() or signal.SIGTERM
    with _children_lock:
        for proc in _children:
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass


def _run_child(argv: list[str], stderr: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run, with the child registered for _forward_interrupt and killed by the
    kernel if this process is killed (PR_SET_PDEATHSIG, as tools.run does)."""
    from imagepipe.tools.run import dies_with_parent

    proc = subprocess.Popen(dies_with_parent(argv), stdout=subprocess.PIPE, stderr=stderr,
                            text=True)
    with _children_lock:
        _children.add(proc)
    try:
        out, _ = proc.communicate()
    finally:
        with _children_lock:
            _children.discard(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, None)


def _one(recipe: Path, build_args: list[str], log_dir: Path | None) -> BatchResult:
    log = log_dir / f"{recipe.stem}.log" if log_dir else None
    argv = [sys.executable, "-m", "imagepipe", "--json", "build", str(recipe), *build_args]
    ui.info(f"build {recipe}" + (f" (log: {log})" if log else ""))
    start = time.monotonic()
    # Not tools.run.run(): that starts a new session, so the terminal's Ctrl-C would not reach
    # the child builds (they run from worker threads, which never see KeyboardInterrupt to
    # kill them). In our process group each child gets SIGINT and cleans up after itself.
    if log is None:  # dry run: the child's plan lines are relayed, its result parsed
        proc = _run_child(argv + ["--dry-run"], None)
    else:
        with open(log, "w") as err:
            proc = _run_child(argv, err)
    seconds = time.monotonic() - start
    result: dict[str, Any] = {}
    error = ""
    for line in proc.stdout.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "result":
            result = event
        elif event.get("event") == "error":
            error = str(event.get("message", ""))
        elif log is None and event.get("event") in ("info", "warning"):
            (ui.info if event["event"] == "info" else ui.warn)(str(event.get("message", "")))
    ok = proc.returncode == 0
    if not ok and not error:
        error = f"exit code {proc.returncode}"
    ui.info(f"{'done' if ok else 'FAILED'} {recipe.name} in {seconds:.1f}s")
    published, changes = _published(result.get("publish") or {})
    return BatchResult(recipe, ok, seconds, result.get("rerun_count"),
                       result.get("stage_count"),
                       [o.get("path", "") for o in result.get("outputs", [])],
                       error.splitlines()[0] if error else "", log, published, changes,
                       result.get("rerun") if result.get("dry_run") else None)


def _published(publish: dict[str, Any]) -> tuple[str | None, dict[str, Any] | None]:
    """(what was published, its package changes) from a build's publish records: a new local
    version, else a new oVirt template version; (None, None) when nothing new was published."""
    local, ovirt = publish.get("local") or {}, publish.get("ovirt") or {}
    if local and not local.get("unchanged"):
        return str(local.get("version")), local.get("changes")
    if ovirt and not ovirt.get("reused"):
        what = f"oVirt {ovirt.get('template_name')}"
        if ovirt.get("version_number"):
            what += f" v{ovirt['version_number']} ({ovirt.get('version_name')})"
        return what, ovirt.get("changes")
    return None, None


def summary(results: list[BatchResult]) -> str:
    """The table at the end of `build --all`; a dry run's shows each plan (what would run)."""
    dry = any(r.would_run is not None for r in results)
    rows = [("recipe", "result", "seconds", "rerun", "would run" if dry else "outputs")]
    for r in results:
        rerun = "-" if r.rerun is None else f"{r.rerun}/{r.stages}"
        if not r.ok:
            state, outs = "FAILED", r.error[:70]
        elif r.would_run is not None:
            state = "would build" if r.would_run else "up to date"
            outs = ", ".join(r.would_run) or "nothing (all cached)"
        else:
            state, outs = "ok", ", ".join(Path(o).name for o in r.outputs)
        rows.append((r.recipe.stem, state, f"{r.seconds:.1f}", rerun, outs))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in rows]
    failed = sum(not r.ok for r in results)
    if dry:
        todo = sum(bool(r.ok and r.would_run) for r in results)
        lines.append(f"{len(results)} recipes (dry run): {todo} would build, "
                     f"{len(results) - failed - todo} up to date, {failed} failed")
    else:
        lines.append(f"{len(results)} recipes, {len(results) - failed} ok, {failed} failed")
    lines += package_summary(results)
    return "\n".join(lines)


def package_summary(results: list[BatchResult]) -> list[str]:
    """For each recipe that published a new version: its package changes vs the previous."""
    from imagepipe.inventory.diff import changed_count, package_lines

    lines = []
    for r in results:
        if not (r.ok and r.published):
            continue
        ch = r.changes
        if ch is None:
            lines.append(f"{r.recipe.stem} {r.published}: first published version")
        elif not ch.get("known", True):
            lines.append(f"{r.recipe.stem} {r.published}: package changes unknown (the "
                         "previous version has no package list)")
        else:
            lines.append(f"{r.recipe.stem} {r.published}: {changed_count(ch)} packages changed")
            lines += package_lines(ch, indent="    ")
    return (["published:"] + ["  " + line for line in lines]) if lines else []
