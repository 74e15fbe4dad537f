"""`imagepipe build --all [DIR]`: every recipe, independent recipes in parallel.

Why one subprocess per recipe (Packer's parallel builds): a recipe that crashes, hangs in a
library or is interrupted cannot take the others down, each build gets its own log file, and
the summary is read from each build's `--json` result event rather than scraped from text.
"""

from __future__ import annotations

import functools
import json
import os
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
    from imagepipe.tools.run import die_with_parent

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            preexec_fn=functools.partial(die_with_parent, os.getpid()))
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
    if log is None:
        argv.remove("--json")
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
    ok = proc.returncode == 0
    if not ok and not error:
        error = f"exit code {proc.returncode}"
    ui.info(f"{'done' if ok else 'FAILED'} {recipe.name} in {seconds:.1f}s")
    return BatchResult(recipe, ok, seconds, result.get("rerun_count"),
                       result.get("stage_count"),
                       [o.get("path", "") for o in result.get("outputs", [])],
                       error.splitlines()[0] if error else "", log)


def summary(results: list[BatchResult]) -> str:
    rows = [("recipe", "result", "seconds", "rerun", "outputs")]
    for r in results:
        rerun = "-" if r.rerun is None else f"{r.rerun}/{r.stages}"
        outs = ", ".join(Path(o).name for o in r.outputs) if r.ok else r.error[:70]
        rows.append((r.recipe.stem, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}", rerun, outs))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths, strict=True)) + "  " + row[4]
             for row in rows]
    failed = sum(not r.ok for r in results)
    lines.append(f"{len(results)} recipes, {len(results) - failed} ok, {failed} failed")
    return "\n".join(lines)
