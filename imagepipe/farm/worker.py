"""`imagepipe worker`: a Celery worker that builds recipe bundles with the local pipeline.

Each task unpacks its bundle into a fresh directory under the worker's store and runs the same
`imagepipe --json build RECIPE` a user runs, as a child process (like the local `build --all`:
a crashing build cannot take the worker down, and its `--json` events give the stage N/M
progress sent back to the client). The pool is threads: the work happens in the child, and a
worker killed with SIGKILL takes its builds with it (each child gets SIGKILL when its parent
thread dies), the way a machine that is gone would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.farm import BROKER_ENV, TASK_NAME, records
from imagepipe.farm.broker import ping, redact
from imagepipe.tools.run import dies_with_parent


@dataclass
class WorkerSettings:
    url: str
    name: str
    store: Path
    queue: str
    concurrency: int

    @property
    def log_root(self) -> Path:
        return self.store / "builds" / "_farm"


def check_tools() -> dict[str, str]:
    """The versions of the tools builds need; ImagepipeError naming what is missing."""
    from imagepipe.stages.base import tool_version
    from imagepipe.tools.run import require

    require("qemu-img")
    found = {"qemu-img": tool_version("qemu-img")}
    try:
        import guestfs  # noqa: F401
    except ImportError:
        raise ImagepipeError("libguestfs' Python binding (guestfs) is missing on this worker",
                             "apt-get install python3-guestfs libguestfs-tools, and create "
                             "the venv with --system-site-packages") from None
    require("guestfish")
    found["libguestfs"] = tool_version("guestfish")
    return found


def check_publish_dir(path: str, worker: str) -> None:
    """The shared template store must exist here and be writable (really: NFS may lie to
    access(2)), or the build fails before any work with a message saying so."""
    d = Path(path)
    if not d.is_dir():
        raise InputError(f"publish.local.dir {d} does not exist on worker {worker}",
                         "every worker must see the same template store: mount the shared "
                         "directory (NFS or similar) at this path")
    probe = d / f".imagepipe-write-test-{socket.gethostname()}-{os.getpid()}-{time.time_ns()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise InputError(f"publish.local.dir {d} is not writable on worker {worker}: "
                         f"{exc.strerror}", "mount the shared template store read-write for "
                         "the user the worker runs as") from None


def build_payload(s: WorkerSettings, payload: dict[str, Any]) -> dict[str, Any]:
    """Run one task: claim the attempt, build, record the outcome. Never raises for a failed
    build (the outcome is in the record); a task that is not ours to run returns at once."""
    from imagepipe.farm.broker import redis_client

    r = redis_client(s.url)
    build_id, batch = str(payload["build_id"]), str(payload["batch"])
    attempt = int(payload.get("attempt", 1))
    got = records.claim(r, build_id, attempt, s.name)
    if got != "ok":
        ui.info(f"skip {build_id} attempt {attempt}: {got}")
        return {"skipped": got}
    name = str(payload.get("recipe", "?"))
    records.event(r, batch, build=build_id, recipe=name, state="started", worker=s.name,
                  attempt=attempt)
    ui.info(f"build {name} ({build_id}, attempt {attempt})")
    stop = threading.Event()
    beat = threading.Thread(target=_beat, args=(r, build_id, s.name, stop), daemon=True)
    beat.start()
    work = s.store / "farm" / f"{build_id}.{attempt}.{os.getpid()}"
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        result = _build(s, r, payload, work)
    except Exception as exc:  # a bad bundle, a missing publish dir: a failed build
        result = {"ok": False, "error": str(exc), "seconds": 0.0}
    finally:
        stop.set()
        shutil.rmtree(work, ignore_errors=True)
    result["worker"] = s.name
    records.finish(r, build_id, bool(result.get("ok")), result)
    records.event(r, batch, build=build_id, recipe=name, worker=s.name,
                  state="done" if result.get("ok") else "failed",
                  error=result.get("error", ""), seconds=result.get("seconds"))
    ui.info(f"{'done' if result.get('ok') else 'FAILED'} {name} ({build_id})")
    return {"ok": bool(result.get("ok"))}


def _beat(r: Any, build_id: str, worker: str, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            records.heartbeat(r, build_id, worker)
        except Exception as exc:  # the broker is away: the build goes on, Celery notices
            ui.warn(f"heartbeat for {build_id}: {exc}")
        stop.wait(records.HEARTBEAT)


def _build(s: WorkerSettings, r: Any, payload: dict[str, Any], work: Path) -> dict[str, Any]:
    from imagepipe.farm.bundle import unpack
    from imagepipe.pipeline.plan import flat, make_plan
    from imagepipe.recipe.load import load_recipe

    build_id, batch = str(payload["build_id"]), str(payload["batch"])
    recipe_path = unpack(payload.get("bundle"), work)
    publish_dir = payload.get("publish_dir")
    if publish_dir:
        check_publish_dir(str(publish_dir), s.name)
    recipe = load_recipe(recipe_path)
    plan = [n.id for n in flat(make_plan(recipe))]
    log_dir = s.log_root / batch
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{recipe_path.stem}.log"
    argv = [sys.executable, "-m", "imagepipe", "--json", "build", str(recipe_path),
            "--store", str(s.store)]
    if publish_dir:
        argv += ["--publish-dir", str(publish_dir)]
    start = time.monotonic()
    result: dict[str, Any] = {}
    error = ""
    with open(log, "w") as err:
        # The broker URL stays with the worker: the build is local (never sent back to the
        # farm), and the password never reaches a child's environment.
        env = {k: v for k, v in os.environ.items() if k != BROKER_ENV}
        # SIGKILLed by the kernel when the worker thread that started it dies, so a killed
        # worker leaves no build running unseen.
        proc = subprocess.Popen(dies_with_parent(argv), stdout=subprocess.PIPE, stderr=err,
                                text=True, env=env, cwd=recipe_path.parent)
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            kind = ev.get("event")
            if kind == "stage" and ev.get("status") == "start" and ev.get("name") in plan:
                n = plan.index(ev["name"]) + 1
                records.heartbeat(r, build_id, s.name, stage=ev["name"], n=n, m=len(plan))
                records.event(r, batch, build=build_id, recipe=recipe.name, state="stage",
                              worker=s.name, stage=ev["name"], n=n, m=len(plan))
            elif kind == "result":
                result = ev
            elif kind == "error":
                error = str(ev.get("message", ""))
        rc = proc.wait()
    ok = rc == 0
    if not ok and not error:
        error = f"exit code {rc}"
    return {"ok": ok, "seconds": round(time.monotonic() - start, 3),
            "rerun": result.get("rerun_count"), "stages": result.get("stage_count"),
            "outputs": [o.get("path", "") for o in result.get("outputs", [])],
            "publish": result.get("publish", {}), "error": error.splitlines()[0] if error else "",
            "log": f"{s.name}:{log}"}


def _liveness(s: WorkerSettings, app: Any, stop: threading.Event) -> None:
    """Say this worker is alive (for `farm status`) and send again the builds of lost workers."""
    from imagepipe.farm.broker import redis_client
    from imagepipe.farm.client import sender

    r = redis_client(s.url)
    send = sender(app)
    info = {"name": s.name, "host": socket.gethostname(), "pid": os.getpid(),
            "queue": s.queue, "concurrency": s.concurrency, "store": str(s.store),
            "since": round(time.time())}
    while not stop.is_set():
        try:
            records.worker_alive(r, s.name, info)
            records.reap(r, send, say=ui.info)
        except Exception as exc:
            ui.warn(f"liveness: {exc}")
        stop.wait(records.HEARTBEAT)


def run_worker(s: WorkerSettings) -> int:
    """Check the broker, the tools and the store, then consume the queue until stopped."""
    from imagepipe.farm.broker import make_app

    ping(s.url)
    tools = check_tools()
    s.store.mkdir(parents=True, exist_ok=True)
    s.log_root.mkdir(parents=True, exist_ok=True)
    ui.info(f"worker {s.name}: broker {redact(s.url)}, queue {s.queue}, "
            f"concurrency {s.concurrency}")
    ui.info(f"worker {s.name}: local store {s.store}, build logs {s.log_root}/BATCH/RECIPE.log")
    ui.info(f"worker {s.name}: " + ", ".join(f"{k} {v}" for k, v in tools.items()))
    app = make_app(s.url)

    def build(payload: dict[str, Any]) -> dict[str, Any]:
        return build_payload(s, payload)

    app.task(name=TASK_NAME, acks_late=True)(build)
    stop = threading.Event()
    live = threading.Thread(target=_liveness, args=(s, app, stop), daemon=True)
    live.start()
    worker = app.Worker(hostname=f"{s.name}@{socket.gethostname()}", queues=[s.queue],
                        concurrency=s.concurrency, pool="threads", loglevel="INFO",
                        without_gossip=True, without_mingle=True, without_heartbeat=True,
                        quiet=True)
    try:
        worker.start()
    finally:
        stop.set()
    rc = int(worker.exitcode or 0)
    if rc:
        ping(s.url)  # a lost broker: BrokerError says so (exit 1); systemd starts us again
    return rc
