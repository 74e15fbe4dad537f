"""`make bench BENCH=farm`: the five farm-test recipes built locally and on the farm.

One private redis-server, `imagepipe worker` processes with fresh stores, the five small
recipes of tests/integration/test_farm.py (four convert-only, one with guest work; images
served from 127.0.0.1):
1. local `build --all --jobs 1` (the reference: one recipe at a time, no queue);
2. the farm with 1 worker: makespan, and the queue overhead per recipe = (makespan - the sum
   of the builds' own seconds) / 5: sending the bundle, a worker picking it up, unpacking,
   reporting back, the client noticing; target < 2 s;
3. the farm with 3 workers: makespan (on this 2-core machine expect no speed-up: the three
   workers share the same two cores).
Takes ~3-8 minutes here (one libguestfs launch per run).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def client(args: list[str], cwd: Path) -> tuple[float, dict[str, Any]]:
    from tests.integration.farm_helpers import ENV

    start = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "imagepipe", "--json", "build", *args],
                         cwd=cwd, env=ENV, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - start
    if res.returncode != 0:
        raise SystemExit(f"build failed (exit {res.returncode}):\n{res.stdout[-2000:]}"
                         f"{res.stderr[-2000:]}")
    events = [json.loads(x) for x in res.stdout.splitlines() if x.startswith("{")]
    return seconds, [e for e in events if e.get("event") == "result"][-1]


def farm_run(tmp: Path, www: Path, base_url: str, workers: int) -> tuple[float, float]:
    """(makespan, summed build seconds) of the five recipes on `workers` fresh workers."""
    from tests.integration.farm_helpers import Redis, Worker, stop, write_recipes

    d = tmp / f"farm{workers}"
    write_recipes(d, www, base_url, motd="bench\n")
    (d / "templates").mkdir()
    redis = Redis(tmp)
    started: list[Worker] = []
    try:
        for i in range(workers):
            started.append(Worker(redis.url, f"b{workers}-{i + 1}", d))
        makespan, result = client(["--all", "recipes", "--broker", redis.url], d)
    finally:
        for w in started:
            stop(w.proc)
        redis.stop()
    where = sorted({r["worker"] for r in result["results"]})
    print(f"  farm, {workers} worker(s): makespan {makespan:.1f} s (built on "
          f"{', '.join(where)})", flush=True)
    return makespan, sum(r["seconds"] for r in result["results"])


def main() -> int:
    sys.path.insert(0, str(REPO))
    from tests.integration.farm_helpers import write_recipes
    from tests.integration.pipeline_helpers import HttpServer

    with tempfile.TemporaryDirectory(prefix="bench-farm-") as t:
        tmp = Path(t)
        www = tmp / "www"
        www.mkdir()
        server = HttpServer(www)
        try:
            local = tmp / "local"
            write_recipes(local, www, server.url, motd="bench\n")
            local_s, local_res = client(["--all", "recipes", "--jobs", "1", "--store",
                                         str(local / "store")], local)
            local_sum = sum(r["seconds"] for r in local_res["results"])
            print(f"  local build --all --jobs 1: {local_s:.1f} s "
                  f"(builds {local_sum:.1f} s)", flush=True)
            one, one_sum = farm_run(tmp, www, server.url, 1)
            three, _ = farm_run(tmp, www, server.url, 3)
        finally:
            server.stop()
    n = 5
    overhead = (one - one_sum) / n
    local_overhead = (local_s - local_sum) / n
    print(f"farm makespan, 5 recipes: 1 worker {one:.1f} s, 3 workers {three:.1f} s "
          f"(ratio {three / one:.2f}; 2 cores: no speed-up expected)")
    print(f"local build --all --jobs 1: {local_s:.1f} s")
    print(f"queue overhead per recipe (1 worker, makespan - builds): {overhead:.2f} s "
          f"(local build --all's own per recipe: {local_overhead:.2f} s) (target < 2 s)")
    return 0 if overhead < 2 else 1
