"""`imagepipe build --broker`: send recipe bundles to the farm, follow them, sum them up.

The summary table and exit codes are the local `build --all`'s (imagepipe.pipeline.batch), so
a nightly job can switch between one machine and a farm by adding `--broker`. Following a
batch reads its event list in Redis; a lost worker is noticed here too (records.reap), so a
waiting client re-sends a lost build even if every other worker is busy building.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.farm import TASK_NAME, records
from imagepipe.farm.broker import BrokerError, redact
from imagepipe.pipeline.batch import BatchResult, summary

BROKER_GRACE = 15.0  # seconds a lost broker may take to come back while we wait
POLL = 0.5


@dataclass
class Job:
    path: Path
    build_id: str = ""
    name: str = ""
    error: str = ""  # could not be sent (bad recipe, bundle too large)
    state: str = ""
    worker: str = ""
    retries: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)


def sender(app: Any) -> Callable[[dict[str, Any]], None]:
    """A function sending one payload as the build task to its queue (JSON, few retries)."""

    def send(payload: dict[str, Any]) -> None:
        app.send_task(TASK_NAME, args=[payload], queue=payload["queue"],
                      serializer="json", retry=True,
                      retry_policy={"max_retries": 2, "interval_start": 0,
                                    "interval_step": 1, "interval_max": 2})

    return send


def submit(url: str, recipes: list[Path], queue: str, *, single: bool) -> tuple[str, list[Job]]:
    """Bundle every recipe and queue it. `single`: a bad recipe is an InputError (exit 2);
    with --all it becomes a failed row, as in the local `build --all`."""
    from imagepipe.farm.broker import make_app, ping
    from imagepipe.farm.bundle import make_bundle

    r = ping(url)
    app = make_app(url)
    send = sender(app)
    batch = uuid.uuid4().hex[:12]
    jobs = []
    for i, path in enumerate(recipes):
        job = Job(path)
        jobs.append(job)
        try:
            bundle = make_bundle(path)
        except (InputError, OSError) as exc:
            if single:
                raise
            job.error, job.state = str(exc).splitlines()[0], "failed"
            ui.warn(f"{path}: not sent: {job.error}")
            continue
        job.name, job.build_id = bundle["name"], f"{batch}-{i + 1}"
        payload = {"build_id": job.build_id, "batch": batch, "attempt": 1, "queue": queue,
                   "recipe": job.name, "bundle": bundle, "publish_dir": _publish_dir(path)}
        try:
            records.create(r, job.build_id, batch, job.name, str(path), queue, payload)
            records.event(r, batch, build=job.build_id, recipe=job.name, state="queued")
            send(payload)
        except Exception as exc:
            raise BrokerError(f"lost the broker {redact(url)} while queueing: {exc}") from None
        job.state = "queued"
        _show({"recipe": job.name, "state": "queued", "build": job.build_id}, jobs)
    return batch, jobs


def _publish_dir(path: Path) -> str | None:
    """The recipe's publish.local.dir as an absolute path resolved here, on the submitting
    machine (a relative dir means: next to the recipe); None if it does not publish locally."""
    from imagepipe.recipe.load import load_recipe

    local = load_recipe(path).publish.local
    return str(Path(local.dir).absolute()) if local is not None else None


def wait(url: str, batch: str, jobs: list[Job]) -> list[Job]:
    """Stream the batch's events until every build is done or failed."""
    from imagepipe.farm.broker import make_app, redis_client

    r = redis_client(url)
    send = sender(make_app(url))
    offset, down_since = 0, 0.0
    by_id = {j.build_id: j for j in jobs if j.build_id}
    while any(j.state not in ("done", "failed") for j in by_id.values()):
        try:
            events = r.lrange(records.key("events", batch), offset, -1)
            offset += len(events)
            for raw in events:
                _apply(json.loads(raw), by_id, jobs)
            records.reap(r, send)
            down_since = 0.0
        except Exception as exc:
            if not _broker_error(exc):
                raise
            down_since = down_since or time.monotonic()
            if time.monotonic() - down_since > BROKER_GRACE:
                raise BrokerError(f"lost the broker {redact(url)}: {exc}",
                                  "queued builds go on when it is back; see them with "
                                  "`imagepipe farm status`") from None
        time.sleep(POLL)
    for job in by_id.values():
        job.result = records.get(r, job.build_id).get("result") or {}
    return jobs


def _broker_error(exc: Exception) -> bool:
    import redis

    return isinstance(exc, (redis.exceptions.RedisError, OSError, BrokerError))


def _apply(ev: dict[str, Any], by_id: dict[str, Job], jobs: list[Job]) -> None:
    job = by_id.get(str(ev.get("build")))
    if job is None:
        return
    state = str(ev.get("state"))
    if state in ("started", "done", "failed"):
        job.worker = str(ev.get("worker") or job.worker)
    if state == "retried":
        job.retries.append(f"worker {ev.get('lost_worker')} was lost during "
                           f"{ev.get('lost_stage') or 'its start'}")
    if state in ("queued", "started", "done", "failed", "retried"):
        job.state = "queued" if state == "retried" else state
    if state != "queued":  # shown when it was sent
        _show(ev, jobs)


def _show(ev: dict[str, Any], jobs: list[Job]) -> None:
    state, name = ev.get("state"), ev.get("recipe")
    text = {"queued": f"queued {name}",
            "started": f"started {name} on {ev.get('worker')}",
            "stage": f"{name}: stage {ev.get('n')}/{ev.get('m')} {ev.get('stage')} "
                     f"on {ev.get('worker')}",
            "done": f"done {name} on {ev.get('worker')} in {ev.get('seconds')}s",
            "failed": f"FAILED {name} on {ev.get('worker')}: {ev.get('error')}",
            "retried": f"{name}: worker {ev.get('lost_worker')} was lost during "
                       f"{ev.get('lost_stage') or 'its start'}; queued again "
                       f"(attempt {ev.get('attempt')})"}.get(str(state))
    if text is None:
        return
    if ui.settings.json:
        ui.emit("farm", **{k: v for k, v in ev.items() if k != "time"})
    else:
        ui.info(text)


def results(jobs: list[Job]) -> list[BatchResult]:
    out = []
    for j in jobs:
        res = j.result
        ok = j.state == "done" and bool(res.get("ok"))
        out.append(BatchResult(j.path, ok, float(res.get("seconds") or 0.0), res.get("rerun"),
                               res.get("stages"), list(res.get("outputs") or []),
                               j.error or str(res.get("error") or ""), None))
    return out


def farm_summary(jobs: list[Job]) -> str:
    """The local `build --all` table, then where each recipe was built and any retries."""
    lines = [summary(results(jobs))]
    for j in jobs:
        if not j.build_id:
            continue
        where = f"  {j.path.stem}: built on {j.worker or '?'}"
        if j.retries:
            where += f", retried {len(j.retries)}x: " + "; ".join(j.retries) + \
                     f"; rebuilt on {j.worker}"
        lines.append(where)
    return "\n".join(lines)


def run(url: str, recipes: list[Path], queue: str, *, single: bool, no_wait: bool) -> None:
    """`build [--all] --broker`: queue, follow, summarise; exit 1 if any recipe failed."""
    batch, jobs = submit(url, recipes, queue, single=single)
    sent = [j for j in jobs if j.build_id]
    if no_wait:
        ui.result(f"queued {len(sent)} of {len(jobs)} recipes as batch {batch} on queue "
                  f"{queue}; follow them with `imagepipe farm status`",
                  batch=batch, queued=[{"recipe": str(j.path), "build": j.build_id}
                                       for j in sent])
        if len(sent) < len(jobs):
            raise ImagepipeError(f"{len(jobs) - len(sent)} recipes could not be queued")
        return
    wait(url, batch, jobs)
    res = results(jobs)
    ui.result(farm_summary(jobs), batch=batch, results=[
        {"recipe": str(r.recipe), "ok": r.ok, "seconds": round(r.seconds, 3), "rerun": r.rerun,
         "outputs": r.outputs, "error": r.error, "worker": j.worker, "retries": j.retries,
         "log": j.result.get("log")} for r, j in zip(res, jobs, strict=True)])
    failed = [r.recipe.name for r in res if not r.ok]
    if failed:
        raise ImagepipeError(f"{len(failed)} of {len(res)} recipes failed: {', '.join(failed)}",
                             "the logs are on the workers (see `log` per recipe with --json)")
