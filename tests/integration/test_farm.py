"""The build farm for real: redis-server, three `imagepipe worker` processes with their own
stores, five small recipes (images served from 127.0.0.1, converts, one with guest work).

- the farm's `build --all --broker` gives the local `build --all` table and the same images;
- a pickle message is refused by the workers (a JSON twin of it does run: the control);
- a missing shared template store is named by the worker;
- a broker that is down, or goes away while the client waits: exit 1 within 30 s;
- a worker killed with SIGKILL in the middle of a guest stage: its recipe is rebuilt by
  another worker, the summary says so, nothing is published twice (runs last: it kills one).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import free_port
from tests.integration.farm_helpers import (
    ENV,
    Client,
    Redis,
    Worker,
    table,
    wait_for,
    write_recipes,
)
from tests.integration.pipeline_helpers import HttpServer

pytestmark = [pytest.mark.farm, pytest.mark.slow, pytest.mark.guestfs,
              pytest.mark.timeout(900), pytest.mark.qemu]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("farm")
    www = tmp / "www"
    www.mkdir()
    server = HttpServer(www)
    redis = Redis(tmp)
    workers: list[Worker] = []
    try:
        for i in (1, 2, 3):
            workers.append(Worker(redis.url, f"w{i}", tmp, via_env=i == 3))
        yield SimpleNamespace(tmp=tmp, www=www, url=redis.url, redis=redis, workers=workers,
                              base_url=server.url)
    finally:
        from tests.integration.farm_helpers import stop

        for w in workers:
            stop(w.proc)
        redis.stop()
        server.stop()


def _outputs(templates: Path, name: str) -> dict[str, Path]:
    latest = templates / name / "latest"
    return {p.name: p for p in latest.iterdir()  # the disk images only
            if p.name not in ("manifest.json", "SHA256SUMS", "seed.iso", "sbom.spdx.json")
            and not p.name.startswith(".")}  # e.g. the .imagepipe-published marker


def _fmt(path: Path) -> str:
    return {".raw": "raw", ".vhd": "vpc"}.get(path.suffix, path.suffix[1:])


def test_farm_build_all_matches_the_local_build_all(farm: SimpleNamespace) -> None:
    local = farm.tmp / "local"
    write_recipes(local, farm.www, farm.base_url, motd="one\n")
    res = subprocess.run([sys.executable, "-m", "imagepipe", "build", "--all", "recipes",
                          "--store", str(local / "store")], cwd=local, env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    want = table(res.stdout)

    remote = farm.tmp / "farm1"
    write_recipes(remote, farm.www, farm.base_url, motd="one\n")
    (remote / "templates").mkdir()
    client = Client(["build", "--all", "recipes", "--broker", farm.url], cwd=remote)
    rc, out = client.finish(timeout=600)
    err = "\n".join(client.lines)
    assert rc == 0, err[-3000:]
    assert table(out) == want and len(want) == 6, out
    assert "5 recipes, 5 ok, 0 failed" in out
    for state in ("queued sealed-b", r"started sealed-b on w", "sealed-b: stage 3/5 guest on w",
                  "done sealed-b on w"):
        assert client.wait_line(state, 1), err
    built_on = {line.split()[-1] for line in out.splitlines() if ": built on " in line}
    assert len(built_on) >= 2, out  # the work was spread
    for name in ("conv-a", "conv-b", "conv-c", "conv-d", "sealed-b"):
        mine, theirs = _outputs(remote / "templates", name), _outputs(local / "templates", name)
        assert mine.keys() == theirs.keys() and mine
        for fname, path in mine.items():
            if name.startswith("conv-"):
                cmp = subprocess.run(["qemu-img", "compare", "-f", _fmt(path), "-F",
                                      _fmt(path), str(path), str(theirs[fname])],
                                     capture_output=True, text=True)
                assert cmp.returncode == 0, f"{name}/{fname}: {cmp.stdout}{cmp.stderr}"
            else:  # guest work mounts the filesystem: its times differ, never its files
                assert _tree(path, farm.tmp / "t1") == _tree(theirs[fname], farm.tmp / "t2")


def _tree(image: Path, work: Path) -> dict[str, tuple[str, bytes]]:
    """Every file of the image's filesystem: path -> (mode, content), read with debugfs."""
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    (work / "root").mkdir(parents=True)
    raw = work / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-f", _fmt(image), "-O", "raw", str(image),
                    str(raw)], check=True)
    subprocess.run(["debugfs", "-R", f"rdump / {work / 'root'}", f"{raw}?offset=1048576"],
                   check=True, capture_output=True)
    out = {}
    for p in sorted((work / "root").rglob("*")):
        mode = oct(p.lstat().st_mode)
        out[str(p.relative_to(work / "root"))] = (mode, b"" if p.is_dir() or p.is_symlink()
                                                   else p.read_bytes())
    assert "etc/hostname" in out and "etc/os-release" in out
    return out


def test_a_pickle_message_is_refused_and_never_runs(farm: SimpleNamespace) -> None:
    from celery import Celery

    from imagepipe.farm import TASK_NAME, records
    from imagepipe.farm.broker import redis_client

    r = redis_client(farm.url)
    sender = Celery(broker=farm.url, set_as_current=False)
    for build_id, serializer in (("pickled-1", "pickle"), ("json-1", "json")):
        payload = {"build_id": build_id, "batch": "evil", "attempt": 1, "queue": "imagepipe",
                   "recipe": "evil", "bundle": {"format": 1, "recipe": "/etc/cron.d/x",
                                                "files": {"/etc/cron.d/x": {"data": ""}}}}
        records.create(r, build_id, "evil", "evil", "evil.yaml", "imagepipe", payload)
        sender.send_task(TASK_NAME, args=[payload], queue="imagepipe", serializer=serializer)
    wait_for(lambda: r.hget(records.key("build", "json-1"), "state") == "failed", 60,
             "the JSON control message to run")
    wait_for(lambda: any("untrusted content of type pickle" in w.text()
                         for w in farm.workers), 30, "a worker to refuse the pickle message")
    assert r.hget(records.key("build", "pickled-1"), "state") == "queued"
    assert not r.exists(records.key("claim", "pickled-1", 1))
    assert r.llen("imagepipe") == 0  # refused, not left for another worker to try
    failed = records.get(r, "json-1")["result"]
    assert "is absolute" in failed["error"]  # and the JSON one could not escape its work dir
    assert not Path("/etc/cron.d/x").exists()


def test_the_worker_names_a_missing_shared_template_store(farm: SimpleNamespace) -> None:
    d = farm.tmp / "nopub"
    write_recipes(d, farm.www, farm.base_url, motd="one\n")
    client = Client(["build", "recipes/conv-a.yaml", "--broker", farm.url], cwd=d)
    rc, out = client.finish(timeout=120)
    err = "\n".join(client.lines)
    assert rc == 1, err
    assert f"publish.local.dir {d / 'templates'} does not exist on worker w" in err
    assert "1 recipes, 0 ok, 1 failed" in out


def test_no_wait_queues_and_farm_status_follows(farm: SimpleNamespace) -> None:
    d = farm.tmp / "nowait"
    write_recipes(d, farm.www, farm.base_url, motd="one\n")
    (d / "templates").mkdir()
    client = Client(["build", "recipes/conv-b.yaml", "--broker", farm.url, "--no-wait"], cwd=d)
    rc, out = client.finish(timeout=60)
    assert rc == 0 and "queued 1 of 1 recipes as batch" in out, (out, client.lines)
    batch = out.split("as batch ")[1].split()[0]

    def status() -> str:
        res = subprocess.run([sys.executable, "-m", "imagepipe", "farm", "status", "--broker",
                              farm.url], capture_output=True, text=True, env=ENV, timeout=60)
        assert res.returncode == 0, res.stderr
        return res.stdout

    wait_for(lambda: re.search(rf"conv-b +{batch}-1 on w\d in [\d.]+s", status()) is not None,
             120,
             "farm status to show the build finished")
    text = status()
    assert "workers (3 alive):" in text and "  w1 " in text
    assert text.index(f"{batch}-1") > text.index("finished (")


def test_a_broker_down_or_gone_is_exit_1_within_30_s(farm: SimpleNamespace) -> None:
    d = farm.tmp / "down"
    write_recipes(d, farm.www, farm.base_url, motd="one\n")
    start = time.monotonic()
    client = Client(["build", "--all", "recipes", "--broker",
                     f"redis://127.0.0.1:{free_port()}/0"], cwd=d)
    rc, _ = client.finish(timeout=60)
    assert rc == 1 and time.monotonic() - start < 30
    assert any("cannot reach the broker" in line for line in client.lines), client.lines

    lonely = Redis(farm.tmp)  # a broker without workers: the client waits on its queue
    try:
        client = Client(["build", "recipes/conv-a.yaml", "--broker", lonely.url], cwd=d)
        client.wait_line("queued conv-a", 30)
        lonely.stop()
        start = time.monotonic()
        rc, _ = client.finish(timeout=60)
        assert rc == 1 and time.monotonic() - start < 30, client.lines
        assert any("lost the broker" in line for line in client.lines), client.lines
    finally:
        lonely.stop()


def test_a_worker_killed_mid_build_loses_nothing(farm: SimpleNamespace) -> None:
    remote = farm.tmp / "farm1"  # the same template store as the first farm run
    before = len(list((remote / "templates/sealed-b").glob("2*")))  # 0 if run alone
    (remote / "templates").mkdir(parents=True, exist_ok=True)
    recipes = write_recipes(farm.tmp / "farm2", farm.www, farm.base_url, motd="two\n")
    client = Client(["build", "--all", str(recipes), "--broker", farm.url], cwd=remote)
    victim_name = client.wait_line(r"sealed-b: stage \d/\d guest on (w\d)", 300).group(1)
    victim = next(w for w in farm.workers if w.name == victim_name)
    time.sleep(2)
    os.kill(victim.proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    victim.proc.wait(timeout=10)
    wait_for(lambda: not victim.builds_running(), 10, "the killed worker's build to die")
    client.wait_line(f"sealed-b: worker {victim_name} was lost during guest; queued again", 120)
    assert time.monotonic() - killed < 120
    rc, out = client.finish(timeout=600)
    err = "\n".join(client.lines)
    assert rc == 0, err[-3000:]
    assert "5 recipes, 5 ok, 0 failed" in out, out
    line = next(x for x in out.splitlines() if x.startswith("  sealed-b: built on "))
    rebuilt_on = line.split()[-1]
    assert f"retried 1x: worker {victim_name} was lost during guest" in line, out
    assert rebuilt_on != victim_name
    rebuild = float(next(x.split()[2] for x in out.splitlines() if x.startswith("sealed-b ")))
    assert time.monotonic() - killed < 120 + rebuild + 10
    # Nothing published twice: no recipe has two versions with the same content (vdi, vhd and
    # vhdx carry random ids, so their recipes may publish anew when rebuilt elsewhere; raw
    # output cannot), and the killed attempt published nothing: sealed-b has the first run's
    # version and this run's.
    for name in ("conv-a", "conv-b", "conv-c", "conv-d", "sealed-b"):
        versions = [p for p in (remote / "templates" / name).iterdir()
                    if p.is_dir() and not p.is_symlink() and not p.name.startswith(".")]
        sums = {(v / "SHA256SUMS").read_text() for v in versions}
        assert len(sums) == len(versions), versions
        assert len(versions) == {"conv-b": 1, "sealed-b": before + 1}.get(name, len(versions))
    motd = json.loads(((remote / "templates/sealed-b/latest") / "manifest.json").read_text())
    assert motd["result"] == "ok"
    farm.workers.remove(victim)
