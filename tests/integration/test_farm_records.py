"""The farm's bookkeeping on a real redis-server, and publishers taking turns: fast tests
(seconds, no appliance) of the pieces test_farm.py exercises end to end.

- claim / reap / finish: one taker per attempt, a lost build moves to the next attempt once
  and is sent again with its retry recorded, a late duplicate of an old attempt never runs;
- two builds of one recipe publishing two versions at once into one template store: they
  take turns on the lock, `latest` ends at a complete version, both versions are whole.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.farm_helpers import ENV, Redis, wait_for
from tests.integration.pipeline_helpers import make_qcow2

pytestmark = [pytest.mark.farm]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = Redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server.url
    finally:
        server.stop()


def test_claim_reap_finish(redis_url: str) -> None:
    from imagepipe.farm import records
    from imagepipe.farm.broker import redis_client

    r = redis_client(redis_url)
    payload = {"build_id": "b-1", "batch": "b", "attempt": 1, "queue": "q", "recipe": "web"}
    records.create(r, "b-1", "b", "web", "web.yaml", "q", payload)
    sent: list[dict[str, Any]] = []
    assert records.claim(r, "b-1", 1, "w1") == "ok"
    assert records.claim(r, "b-1", 1, "w2") == "claimed"  # a redelivery of the same attempt
    records.heartbeat(r, "b-1", "w1", stage="guest", n=3, m=5)
    assert records.reap(r, sent.append) == [] and not sent  # alive: nothing to do
    r.delete(records.key("alive", "b-1"))  # w1's heartbeat expired: w1 is lost
    assert records.reap(r, sent.append) == ["b-1"]
    assert records.reap(r, sent.append) == []  # only one reaper wins
    assert [p["attempt"] for p in sent] == [2]
    rec = records.get(r, "b-1")
    assert rec["state"] == "queued" and rec["attempt"] == "2"
    assert rec["retries"][0]["worker"] == "w1" and rec["retries"][0]["stage"] == "guest"
    assert records.claim(r, "b-1", 1, "w3") == "superseded"  # the old message, handed back
    assert records.claim(r, "b-1", 2, "w2") == "ok"
    records.finish(r, "b-1", True, {"ok": True, "worker": "w2"})
    assert records.claim(r, "b-1", 2, "w3") == "done"
    r.delete(records.key("alive", "b-1"))
    assert records.reap(r, sent.append) == [] and len(sent) == 1
    events = [e for e in r.lrange(records.key("events", "b"), 0, -1)]
    assert any('"retried"' in e and '"w1"' in e for e in events)


def _recipe(d: Path, source: Path, publish: Path) -> Path:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    d.mkdir(parents=True)
    path = d / "web.yaml"
    path.write_text(
        "version: 1\nname: web\ndescription: two publishers\nsource:\n"
        f"  image: {{url: 'file://{source}', checksum: 'sha256:{digest}', format: qcow2}}\n"
        "seal: {operations: none}\noutputs:\n  - {format: qcow2}\n"
        f"publish:\n  local: {{dir: {publish}}}\n")
    return path


@pytest.mark.qemu
def test_two_publishers_of_one_recipe_take_turns(tmp_path: Path) -> None:
    publish = tmp_path / "shared-templates"
    (publish / "web").mkdir(parents=True)
    recipes = [_recipe(tmp_path / f"r{i}", make_qcow2(tmp_path / f"src{i}.qcow2",
                                                      data=f"version {i}\n".encode()), publish)
               for i in (1, 2)]
    lock = os.open(publish / ".web.publish.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.lockf(lock, fcntl.LOCK_EX)  # another machine is publishing web right now
    procs = []
    try:
        for i, recipe in enumerate(recipes):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "imagepipe", "build", str(recipe), "--store",
                 str(tmp_path / f"store{i}")], env=ENV, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True))
        logs = [tmp_path / f"store{i}" / "builds" / "web" for i in range(2)]
        wait_for(lambda: all(list(p.glob("*/logs/publish.local.log")) for p in logs), 120,
                 "both builds to reach publish.local")
        time.sleep(1)
        assert all(p.poll() is None for p in procs)  # both wait for the lock
        assert list((publish / "web").iterdir()) == []
    finally:
        os.close(lock)
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    versions = sorted(d for d in (publish / "web").iterdir()
                      if d.is_dir() and not d.is_symlink() and not d.name.startswith("."))
    assert len(versions) == 2
    for v in versions:  # each version whole: its SHA256SUMS matches its file
        sums = (v / "SHA256SUMS").read_text().split()
        assert hashlib.sha256((v / sums[1]).read_bytes()).hexdigest() == sums[0]
    latest = (publish / "web/latest").resolve()
    assert latest in versions and (latest / "manifest.json").is_file()
    assert not [x for x in (publish / "web").iterdir() if ".tmp" in x.name or
                x.name.startswith(".latest")]
