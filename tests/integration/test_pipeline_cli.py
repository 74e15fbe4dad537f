"""`imagepipe build` / `build --all` / `templates ls` as a user runs them (subprocess)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from imagepipe.store import Store
from tests.conftest import run_cli
from tests.integration.pipeline_helpers import HttpServer, make_qcow2, sha256

pytestmark = pytest.mark.qemu


@pytest.fixture(scope="module")
def digest(http_root: Path) -> str:
    return sha256(make_qcow2(http_root / "cli.qcow2"))


def write_recipe(path: Path, name: str, url: str, digest: str, outputs: str = "qcow2, vdi",
                 extra: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    outs = ", ".join(f"{{format: {f.strip()}}}" for f in outputs.split(","))
    path.write_text(f"""version: 1
name: {name}
description: pipeline CLI test
source:
  image: {{url: "{url}", checksum: "{digest}"}}
seal: {{operations: none}}
outputs: [{outs}]
publish: {{local: {{dir: {path.parent / 'templates'}, keep: 1}}}}
{extra}""")
    return path


def result_event(stdout: str) -> dict[str, object]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return next(e for e in reversed(events) if e["event"] == "result")


def test_build_summary_rebuild_and_templates(tmp_path: Path, server: HttpServer,
                                             digest: str) -> None:
    recipe = write_recipe(tmp_path / "r" / "cli.yaml", "cli", f"{server.url}/cli.qcow2", digest)
    store = str(tmp_path / "store")
    r = run_cli("build", str(recipe), "--store", store)
    assert r.returncode == 0, r.stderr
    published = tmp_path / "r" / "templates" / "cli"
    assert "outputs:" in r.stdout and str(published) in r.stdout
    assert "manifest:" in r.stdout and "logs:" in r.stdout
    assert len(r.stdout.splitlines()) < 25  # one screen
    r = run_cli("--json", "build", str(recipe), "--store", store, "--explain")
    assert r.returncode == 0, r.stderr
    res = result_event(r.stdout)
    assert res["rerun"] == ["publish.local"] and res["stage_count"] == 5
    assert all(Path(str(o["path"])).exists() for o in res["outputs"])  # type: ignore[union-attr]
    r = run_cli("templates", "ls", "cli", "--dir", str(tmp_path / "r" / "templates"))
    assert r.returncode == 0 and "cli.qcow2, cli.vdi" in r.stdout and "*" in r.stdout
    r = run_cli("build", str(recipe), "--store", store, "--dry-run")
    assert r.returncode == 0 and "dry run" in r.stderr and "cached" in r.stderr


def test_no_wait_fails_cleanly_while_locked(tmp_path: Path, server: HttpServer,
                                            digest: str) -> None:
    recipe = write_recipe(tmp_path / "cli.yaml", "locked", f"{server.url}/cli.qcow2", digest)
    store = Store(tmp_path / "store")
    with store.build_lock("locked"):
        r = run_cli("build", str(recipe), "--store", str(store.root), "--no-wait")
    assert r.returncode == 1 and "another build of 'locked' is running" in r.stderr
    assert server.log() == []


def test_bad_recipe_path_is_exit_2(tmp_path: Path) -> None:
    r = run_cli("build", str(tmp_path / "nope.yaml"), "--store", str(tmp_path / "s"))
    assert r.returncode == 2 and "nope.yaml" in r.stderr


def test_build_all_parallel_one_failing(tmp_path: Path, server: HttpServer, digest: str) -> None:
    recipes = tmp_path / "recipes"
    url = f"{server.url}/cli.qcow2"
    write_recipe(recipes / "one.yaml", "one", url, digest, "qcow2")
    write_recipe(recipes / "two.yaml", "two", url, digest, "vdi, vmdk")
    write_recipe(recipes / "broken.yaml", "broken", url, "sha256:" + "0" * 64, "qcow2")
    (recipes / "base").mkdir()
    (recipes / "base" / "debian.yaml").write_text("disk: {size: 2G}\n")  # a fragment
    r = run_cli("build", "--all", str(recipes), "--jobs", "3", "--store",
                str(tmp_path / "store"))
    assert r.returncode == 1, r.stderr
    table = r.stdout
    assert "debian" not in table
    lines = {line.split()[0]: line for line in table.splitlines()[1:4]}
    assert "ok" in lines["one"] and "one.qcow2" in lines["one"]
    assert "ok" in lines["two"] and "two.vdi, two.vmdk" in lines["two"]
    assert "FAILED" in lines["broken"] and "checksum mismatch" in lines["broken"]
    assert "3 recipes, 2 ok, 1 failed" in table and "broken" in r.stderr
    assert (recipes / "templates" / "two" / "latest" / "two.vmdk").exists()
    assert re.search(r"^  one \S+: first published version$", table, re.M)  # new version
    r = run_cli("build", "--all", str(recipes), "--store", str(tmp_path / "store"))
    assert r.returncode == 1
    assert "published:" not in r.stdout  # nothing new was published
    again = {line.split()[0]: line for line in r.stdout.splitlines()[1:4]}
    assert " 1/4 " in again["one"] and " 1/5 " in again["two"]  # only publish.local ran


def test_build_all_dry_run_shows_every_plan_and_writes_nothing(tmp_path: Path,
                                                               server: HttpServer,
                                                               digest: str) -> None:
    recipes = tmp_path / "recipes"
    write_recipe(recipes / "a.yaml", "a", f"{server.url}/cli.qcow2", digest, "qcow2")
    write_recipe(recipes / "b.yaml", "b", f"{server.url}/cli.qcow2", digest, "vdi")
    r = run_cli("build", "--all", str(recipes), "--dry-run", "--store", str(tmp_path / "st"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("plan (dry run, nothing is changed)") == 2
    assert not (tmp_path / "st").exists() and server.log() == []
    assert "2 recipes (dry run): 2 would build, 0 up to date, 0 failed" in r.stdout
    assert " 4/4 " in r.stdout  # the summary shows each plan, not "ok" with rerun "-"


def test_ctrl_c_during_a_build_exits_130_and_keeps_only_the_resumable_part(
        tmp_path: Path, server: HttpServer, http_root: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import REPO
    from tests.integration.pipeline_helpers import random_file

    big = random_file(http_root / "slow.qcow2", 4 << 20, seed=21)
    server.fault("/slow.qcow2", "slow", rate=1 << 20)
    recipe = write_recipe(tmp_path / "slow.yaml", "slow", f"{server.url}/slow.qcow2", sha256(big))
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "imagepipe", "build", str(recipe), "--store",
                             str(store)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    part = store / "downloads" / (sha256(big).replace(":", "-") + ".part")
    deadline = time.monotonic() + 30
    while not part.exists() or part.stat().st_size < (1 << 20):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert [p.name for p in (store / "tmp").iterdir()] == []
    assert part.exists() and not list((store / "stages").iterdir())


def test_second_build_waits_for_the_lock_with_a_message(tmp_path: Path, server: HttpServer,
                                                        digest: str) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import REPO

    recipe = write_recipe(tmp_path / "w.yaml", "waiter", f"{server.url}/cli.qcow2", digest,
                          "qcow2")
    store = Store(tmp_path / "store")
    with store.build_lock("waiter"):
        proc = subprocess.Popen([sys.executable, "-m", "imagepipe", "build", str(recipe),
                                 "--store", str(store.root)], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.0)
        assert proc.poll() is None  # still waiting
        assert server.log() == []
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"waiting for another build of waiter (pid {os.getpid()}" in err
    assert "outputs:" in out
