"""Running a plan: skip what the store has, run the rest level by level, commit atomically.

Why levels and threads: the only independent stages of a build are the converts of its outputs;
they run in a thread pool bounded by the core count (each is one qemu-img process, so the GIL is
not in the way). Every stage runs under its own ExitStack inside the build's, so a failure or
Ctrl-C closes what the stage opened, removes its work dir (or keeps it with --keep-on-failure),
and never commits a partial result.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.activity import activity
from imagepipe.artifact import Artifact, hash_json
from imagepipe.errors import ImagepipeError
from imagepipe.pipeline import explain
from imagepipe.pipeline.manifest import StageRecord
from imagepipe.pipeline.plan import Node
from imagepipe.recipe.model import Recipe
from imagepipe.stages.base import StageContext
from imagepipe.store import Store
from imagepipe.store.integrity import verify_inputs
from imagepipe.tools.run import CANCEL


class StageFailed(ImagepipeError):
    """A stage crashed with an unexpected (non-imagepipe) error."""


@dataclass
class Engine:
    recipe: Recipe
    store: Store
    build_dir: Path
    previous: Mapping[str, Any]
    forced: set[str] = field(default_factory=set)
    keep_on_failure: bool = False
    jobs: int = 1
    explain: bool = False
    dry_run: bool = False
    results: dict[str, Artifact] = field(default_factory=dict)
    records: list[StageRecord] = field(default_factory=list)
    materials: dict[str, Any] = field(default_factory=dict)
    manifest: Mapping[str, Any] = field(default_factory=dict)
    unknown: set[str] = field(default_factory=set)  # dry run: outputs known only by running

    # -- deciding ----------------------------------------------------------------------------
    def decide(self, node: Node) -> tuple[dict[str, Artifact] | None, dict[str, Any] | None,
                                          Artifact | None, str]:
        """(inputs, key material, cached artifact, reason) for a node whose inputs are done."""
        missing = [src for src in node.inputs.values() if src not in self.results]
        if missing:
            if any(src in self.unknown for src in missing):
                self.unknown.add(node.id)
                return None, None, None, f"decided when {missing[0]} has run (its output " \
                                         "is only known then)"
            return None, None, None, f"input {missing[0]} is rebuilt first"
        inputs = {slot: self.results[src] for slot, src in node.inputs.items()}
        material = node.stage.key_material(inputs)
        key = hash_json(material)
        prev = self.previous.get(node.id)
        if node.id in self.forced:
            return inputs, material, None, "forced (--force/--from)"
        if not node.stage.cache_enabled():
            peek = getattr(node.stage, "peek", None)
            if self.dry_run and peek is not None:
                try:
                    seen = peek(self.store)
                except ImagepipeError as exc:
                    ui.warn(f"{node.id}: cannot tell without running it: {exc}")
                    seen = None
                if seen is not None:
                    return inputs, material, seen, "runs every build; its result is stored " \
                                                   "(same digest)"
            self.unknown.add(node.id)
            return inputs, material, None, "runs every build (outside effects or unverified " \
                                           "source)"
        hit = self.store.get_stage(key)
        if hit is not None:
            return inputs, material, hit, "cached"
        return inputs, material, None, explain.reason(prev, material)

    def say(self, node: Node, reason: str, key: str | None) -> None:
        short = key[:12] if key else "?"
        state = ("cached" if reason == "cached" else reason
                 if reason.startswith(("runs ", "decided ")) else f"rerun because {reason}")
        line = f"  {node.id:<18} {short:<12} {state}"
        if self.explain or self.dry_run:
            ui.info(line)
        else:
            ui.detail(line)

    # -- running -----------------------------------------------------------------------------
    def run_level(self, level: list[Node]) -> None:
        todo: list[tuple[Node, dict[str, Artifact], dict[str, Any], str]] = []
        for node in level:
            inputs, material, hit, reason = self.decide(node)
            key = hash_json(material) if material is not None else None
            self.say(node, reason, key)
            if material is not None:
                self.materials[node.id] = {"key": key, "material": material}
            if hit is not None:
                self.results[node.id] = hit
                self.records.append(self._record(node, key, reason == "cached", 0.0,
                                                 inputs or {}, hit, reason))
            elif not self.dry_run:
                assert inputs is not None and material is not None
                todo.append((node, inputs, material, reason))
        try:
            if len(todo) == 1:
                self._execute(*todo[0])
            elif todo:
                self._parallel(todo)
        finally:
            order = {n.id: i for i, n in enumerate(level)}
            done = [r for r in self.records if r.id in order]
            self.records[len(self.records) - len(done):] = sorted(done, key=lambda r: order[r.id])

    def _parallel(self, todo: list[tuple[Node, dict[str, Artifact], dict[str, Any], str]]) -> None:
        CANCEL.clear()  # a previous interrupted build in this process must not cancel this one
        pool = ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(todo))),
                                  thread_name_prefix="stage")
        ordered = sorted(todo, key=lambda item: -item[0].stage.cost_hint())  # longest first
        futures = [pool.submit(self._execute, *item) for item in ordered]
        try:
            done, pending = wait(futures, return_when=FIRST_EXCEPTION)
            for f in pending:
                f.cancel()
            wait(futures)
        except BaseException:
            for f in futures:
                f.cancel()
            CANCEL.set()  # stages waiting on a VM in worker threads stop now, not at timeout
            kill_child_groups()
            pool.shutdown(wait=True)
            raise
        pool.shutdown(wait=True)
        for f in futures:
            if not f.cancelled() and f.exception() is not None:
                raise f.exception()  # type: ignore[misc]

    def _execute(self, node: Node, inputs: dict[str, Artifact], material: dict[str, Any],
                 reason: str) -> None:
        key = hash_json(material)
        log_path = self.build_dir / "logs" / f"{node.id}.log"
        work = self.store.workdir(node.id)
        start = time.monotonic()
        try:
            # shown as running until its result is stored (hashing GiBs takes a while)
            with activity(node.id):
                with ExitStack() as stack:
                    ctx = StageContext(recipe=self.recipe, store=self.store, workdir=work.path,
                                       build_dir=self.build_dir, stage_id=node.id, key=key,
                                       log_path=log_path, exit_stack=stack,
                                       keep_on_failure=self.keep_on_failure,
                                       jobs=self.jobs, manifest=self.manifest)
                    ctx.log.info("stage %s (%s v%s) key %s: %s", node.id, node.stage.name,
                                 node.stage.version, key, reason)
                    stack.enter_context(thread_log_capture(ctx.log))
                    ui.info(f"running {node.id}")
                    inputs_intact = verify_inputs(self.store, _input_files(inputs))
                    with ui.stage(node.id, key=key[:12]):
                        art = node.stage.run(ctx, inputs)
                    inputs_intact()  # a corrupt input fails the stage: never committed
                    if CANCEL.is_set():  # interrupted meanwhile: never commit (signal model)
                        raise KeyboardInterrupt
                ui.phase("storing the result")
                stored = self.store.commit_stage(
                    key, work, art, label=node.id,
                    replace=node.id in self.forced or not node.stage.cache_enabled(),
                    inputs={s: a.digest for s, a in inputs.items()})
        except BaseException as exc:
            self._failed(node, work, log_path, exc)
            if isinstance(exc, (ImagepipeError, KeyboardInterrupt, SystemExit)):
                raise
            raise StageFailed(f"stage {node.id} crashed: {type(exc).__name__}: {exc}",
                              f"details in {log_path}") from exc
        seconds = time.monotonic() - start
        ui.info(f"done {node.id} in {seconds:.1f}s")
        self.results[node.id] = stored
        self.records.append(self._record(node, key, False, seconds, inputs, stored, reason))

    def _failed(self, node: Node, work: Any, log_path: Path, exc: BaseException) -> None:
        from imagepipe import redact

        with open(log_path, "a", encoding="utf-8") as log:
            log.write(redact.urls("".join(traceback.format_exception(exc))))
        if self.keep_on_failure and work.path.exists():
            kept = self.build_dir / f"failed-{node.id}"
            os.rename(work.path, kept)
            work.release(remove=False)
            ui.info(f"kept the work dir of failed stage {node.id}: {kept}")
        else:
            work.release()
        if not isinstance(exc, KeyboardInterrupt):
            ui.warn(f"stage {node.id} failed; log: {log_path}")

    @staticmethod
    def _record(node: Node, key: str | None, cached: bool, seconds: float,
                inputs: Mapping[str, Artifact], art: Artifact, reason: str) -> StageRecord:
        return StageRecord(id=node.id, stage=node.stage.name, version=node.stage.version,
                           key=key, cached=cached, seconds=seconds,
                           inputs={s: a.digest for s, a in inputs.items()}, artifact=art,
                           reason=reason)


def _input_files(inputs: Mapping[str, Artifact]) -> list[Path]:
    """Every file a stage's inputs hand it (their digests are checked while it runs)."""
    out: list[Path] = []
    for art in inputs.values():
        out += ([art.path] if art.path is not None else []) + list(art.files.values())
    return out


class _ThreadForward(logging.Handler):
    """Forwards `imagepipe.*` records emitted by one thread to a stage's file logger."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__(logging.DEBUG)
        self.target = target
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.target.handle(record)


@contextmanager
def thread_log_capture(target: logging.Logger) -> Iterator[None]:
    """Every command tools.run() starts from this thread (logged at debug level with
    shlex.join) also lands in the stage's log file. The console keeps its configured level:
    root handlers without a level of their own get the root logger's level first."""
    root = logging.getLogger()
    for h in root.handlers:
        if h.level == logging.NOTSET:
            h.setLevel(root.level)
    ours = logging.getLogger("imagepipe")
    if ours.getEffectiveLevel() > logging.DEBUG:
        ours.setLevel(logging.DEBUG)
    handler = _ThreadForward(target)
    ours.addHandler(handler)
    try:
        yield
    finally:
        ours.removeHandler(handler)


def kill_child_groups() -> None:
    """SIGTERM the process groups of our children (tools.run starts each in its own session),
    so threads blocked on a long qemu-img return at once when the build is interrupted; a
    child that leads no group (the libguestfs appliance, forked by the library in our group)
    gets the SIGTERM itself, so a worker blocked in `launch()` returns too."""
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == me:
            pid = int(entry.name)
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:  # not a group leader: libguestfs's appliance qemu
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            except PermissionError:
                pass
