"""What the farm knows about each build, kept in Redis next to the queue.

Keys (prefix `imagepipe:farm:`), all expiring after a week unless said otherwise:
- `build:ID` (hash): recipe, batch, state (queued/started/done/failed), attempt, worker,
  stage, n, m, times, result (JSON) and retries (JSON list of lost attempts);
- `payload:ID`: the task as sent (bundle included), so a lost build can be sent again;
- `claim:ID:ATTEMPT`: the worker that took this attempt (SET NX: one taker per attempt);
- `alive:ID`: the worker running the build; 20 s TTL, renewed every 3 s while it runs;
- `events:BATCH` (list): the JSON events a waiting `build --broker` streams;
- `running` (set): the builds claimed and not finished, which the reaper watches;
- `builds` (sorted set by queue time) and `worker:NAME` (hash, 20 s TTL) for `farm status`.

Why our own liveness record and not only the broker's visibility timeout: Redis hands an
unacknowledged message back only after the visibility timeout, which must be longer than the
longest build (or running builds would be handed out twice). A lost worker is instead seen by
its `alive:ID` key expiring (20 s); any live worker or waiting client then moves the build to
the next attempt in one Lua script (only one of them can win) and sends it again. The old
message, if Redis ever hands it back, finds its attempt superseded and is dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

PREFIX = "imagepipe:farm:"
KEEP = 7 * 24 * 3600  # seconds records are kept
ALIVE_TTL = 20  # seconds without a heartbeat before a build counts as lost
HEARTBEAT = 3.0  # seconds between heartbeats

# KEYS: build, claim, alive, running. ARGV: attempt, worker, now, alive ttl, keep.
_CLAIM = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state == 'done' or state == 'failed' then return state end
if redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then return 'superseded' end
if not redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[5]) then return 'claimed' end
redis.call('SET', KEYS[3], ARGV[2], 'EX', ARGV[4])
redis.call('HSET', KEYS[1], 'state', 'started', 'worker', ARGV[2], 'started_at', ARGV[3],
           'stage', '', 'n', 0)
redis.call('SADD', KEYS[4], KEYS[1])
return 'ok'
"""

# KEYS: build, alive, running. ARGV: now. Moves a started build whose heartbeat stopped to
# the next attempt; returns the new attempt number, or 0 if the build is not lost.
_REAP = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
if redis.call('HGET', KEYS[1], 'state') ~= 'started' then
  redis.call('SREM', KEYS[3], KEYS[1])
  return 0
end
redis.call('SREM', KEYS[3], KEYS[1])
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt')) + 1
local retries = cjson.decode(redis.call('HGET', KEYS[1], 'retries') or '[]')
table.insert(retries, {attempt = attempt - 1, worker = redis.call('HGET', KEYS[1], 'worker'),
                       stage = redis.call('HGET', KEYS[1], 'stage'), lost_at = ARGV[1]})
redis.call('HSET', KEYS[1], 'state', 'queued', 'attempt', attempt, 'worker', '',
           'stage', '', 'n', 0, 'retries', cjson.encode(retries))
return attempt
"""


def key(kind: str, *parts: object) -> str:
    return PREFIX + kind + ("" if not parts else ":" + ":".join(str(p) for p in parts))


def create(r: Any, build_id: str, batch: str, recipe: str, path: str, queue: str,
           payload: dict[str, Any]) -> None:
    now = time.time()
    pipe = r.pipeline()
    pipe.hset(key("build", build_id), mapping={
        "id": build_id, "batch": batch, "recipe": recipe, "path": path, "queue": queue,
        "state": "queued", "attempt": 1, "worker": "", "stage": "", "n": 0, "m": 0,
        "queued_at": now, "retries": "[]"})
    pipe.expire(key("build", build_id), KEEP)
    pipe.set(key("payload", build_id), json.dumps(payload), ex=KEEP)
    pipe.zadd(key("builds"), {build_id: now})
    pipe.zremrangebyscore(key("builds"), 0, now - KEEP)
    pipe.execute()


def get(r: Any, build_id: str) -> dict[str, Any]:
    rec: dict[str, Any] = r.hgetall(key("build", build_id))
    for field in ("result", "retries"):
        if rec.get(field):
            rec[field] = json.loads(rec[field])
    return rec


def event(r: Any, batch: str, **data: Any) -> None:
    """Append an event for whoever follows this batch."""
    data.setdefault("time", round(time.time(), 3))
    pipe = r.pipeline()
    pipe.rpush(key("events", batch), json.dumps(data))
    pipe.expire(key("events", batch), KEEP)
    pipe.execute()


def claim(r: Any, build_id: str, attempt: int, worker: str) -> str:
    """'ok' if this worker now runs `attempt` of the build, else why not."""
    return str(r.eval(_CLAIM, 4, key("build", build_id), key("claim", build_id, attempt),
                      key("alive", build_id), key("running"), attempt, worker, time.time(),
                      ALIVE_TTL, KEEP))


def heartbeat(r: Any, build_id: str, worker: str, **fields: Any) -> None:
    pipe = r.pipeline()
    pipe.set(key("alive", build_id), worker, ex=ALIVE_TTL)
    if fields:
        pipe.hset(key("build", build_id), mapping=fields)
    pipe.execute()


def finish(r: Any, build_id: str, ok: bool, result: dict[str, Any]) -> None:
    """Record the outcome (a late duplicate after a retry records the same outcome)."""
    pipe = r.pipeline()
    pipe.hset(key("build", build_id), mapping={
        "state": "done" if ok else "failed", "finished_at": time.time(),
        "result": json.dumps(result)})
    pipe.delete(key("alive", build_id))
    pipe.srem(key("running"), key("build", build_id))
    pipe.execute()


def reap(r: Any, send: Callable[[dict[str, Any]], None],
         say: Callable[[str], None] | None = None) -> list[str]:
    """Send again every started build whose worker stopped its heartbeat; their ids."""
    now = time.time()
    moved = []
    for build_key in r.smembers(key("running")):
        build_id = build_key[len(key("build", "")):]
        attempt = int(r.eval(_REAP, 3, build_key, key("alive", build_id), key("running"), now))
        if not attempt:
            continue
        rec = get(r, build_id)
        lost = rec["retries"][-1] if rec.get("retries") else {}
        payload = json.loads(r.get(key("payload", build_id)) or "{}")
        payload["attempt"] = attempt
        event(r, rec.get("batch", ""), build=build_id, recipe=rec.get("recipe"),
              state="retried", attempt=attempt, lost_worker=lost.get("worker"),
              lost_stage=lost.get("stage"))
        if say:
            say(f"{rec.get('recipe')}: worker {lost.get('worker')} was lost during "
                f"{lost.get('stage') or 'start'}; queued again (attempt {attempt})")
        send(payload)
        moved.append(build_id)
    return moved


def worker_alive(r: Any, name: str, info: dict[str, Any]) -> None:
    pipe = r.pipeline()
    pipe.hset(key("worker", name), mapping={k: str(v) for k, v in info.items()})
    pipe.expire(key("worker", name), ALIVE_TTL)
    pipe.execute()


def workers(r: Any) -> list[dict[str, Any]]:
    out = []
    for k in r.scan_iter(match=key("worker", "*"), count=100):
        info = r.hgetall(k)
        if info:
            out.append(info)
    return sorted(out, key=lambda w: w.get("name", ""))


def recent(r: Any, since: float) -> list[dict[str, Any]]:
    ids = r.zrangebyscore(key("builds"), since, "+inf")
    return [rec for rec in (get(r, i) for i in ids) if rec]
