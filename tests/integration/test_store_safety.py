"""Store safety: gc never removes a held entry, verify finds corruption, build locks, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from imagepipe.hashing import file_digest
from imagepipe.stages.base import Artifact
from imagepipe.store import Store
from imagepipe.store.locks import LockBusy
from imagepipe.store.maintenance import entries, gc, verify
from tests.conftest import REPO, run_cli
from tests.integration.pipeline_helpers import HttpServer, make_qcow2, sha256


def _commit(store: Store, key: str, data: bytes, age: float = 0) -> Path:
    work = store.workdir("t")
    (work.path / "f.bin").write_bytes(data)
    art = store.commit_stage(key, work, Artifact(path=work.path / "f.bin"), label=key)
    assert art.path is not None
    entry = store.stage_path(key)
    t = time.time() - age
    os.utime(entry, (t, t))
    return entry


def test_gc_lru_never_removes_a_held_entry(tmp_path: Path) -> None:
    writer = Store(tmp_path / "s")
    old_held = _commit(writer, "a" * 64, b"1" * 100_000, age=300)
    old_free = _commit(writer, "b" * 64, b"2" * 100_000, age=200)
    newest = _commit(writer, "c" * 64, b"3" * 100_000, age=0)
    writer.holds.close()
    build = Store(tmp_path / "s")  # a running build holds entry a
    assert build.get_stage("a" * 64) is not None
    os.utime(old_held, (time.time() - 300,) * 2)
    collector = Store(tmp_path / "s")
    removed, held = gc(collector, max_size=150_000)
    assert [e.path for e in held] == [old_held]
    assert [e.path for e in removed] == [old_free, newest][: len(removed)]
    assert old_held.exists() and not old_free.exists()
    build.holds.close()
    removed, held = gc(collector, max_size=0)
    assert not held and not old_held.exists()
    r = run_cli("cache", "ls", "--store", str(tmp_path / "s"))
    assert r.returncode == 0 and "0 entries" in r.stdout


def test_gc_cli_reports_held(tmp_path: Path) -> None:
    s = Store(tmp_path / "s")
    _commit(s, "d" * 64, b"x" * 50_000)
    s.holds.close()
    holder = Store(tmp_path / "s")
    holder.get_stage("d" * 64)
    r = run_cli("cache", "gc", "--max-size", "0", "--store", str(tmp_path / "s"))
    assert r.returncode == 0 and "1 held by builds" in r.stdout
    holder.holds.close()
    r = run_cli("--json", "cache", "gc", "--max-size", "0", "--store", str(tmp_path / "s"))
    result = [json.loads(line) for line in r.stdout.splitlines()][-1]
    assert len(result["removed"]) == 1 and not result["held"]


def test_verify_reports_corrupt_entries(tmp_path: Path) -> None:
    s = Store(tmp_path / "s")
    entry = _commit(s, "e" * 64, b"good" * 1000)
    obj = tmp_path / "o"
    obj.write_bytes(b"object")
    digest = "sha256:" + file_digest(obj)
    s.put_object(obj, digest)
    assert verify(s) == []
    f = entry / "f.bin"
    os.chmod(f, 0o644)
    f.write_bytes(b"evil" * 1000)
    bad = verify(s)
    assert [p for p, _ in bad] == [f]
    r = run_cli("cache", "verify", "--store", str(tmp_path / "s"))
    assert r.returncode == 1 and "CORRUPT" in r.stderr and "f.bin" in r.stderr
    r = run_cli("cache", "verify", "--delete", "--store", str(tmp_path / "s"))
    assert r.returncode == 0 and "held by a build, kept" in r.stderr  # we still hold it
    s.holds.close()
    r = run_cli("cache", "verify", "--delete", "--store", str(tmp_path / "s"))
    assert r.returncode == 0 and not entry.exists()
    assert len(entries(Store(tmp_path / "s"))) == 1


def test_build_lock_waits_or_fails_cleanly(tmp_path: Path) -> None:
    s = Store(tmp_path / "s")
    messages: list[str] = []
    with s.build_lock("httpd"):
        busy = f"another build of 'httpd' is running \\(pid {os.getpid()}"
        with pytest.raises(LockBusy, match=busy):
            with s.build_lock("httpd", wait=False):
                pass
        with s.build_lock("other", wait=False):  # other recipes are not blocked
            pass
        got = threading.Event()

        def second() -> None:
            with s.build_lock("httpd", on_wait=messages.append):
                got.set()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not got.is_set() and messages and "pid" in messages[0]
    t.join(5)
    assert got.is_set()


@pytest.fixture(scope="module")
def source(http_root: Path) -> tuple[str, Path]:
    img = make_qcow2(http_root / "crash.qcow2")
    return sha256(img), img


@pytest.mark.qemu
def test_kill_9_mid_stage_then_rerun(tmp_path: Path, server: HttpServer,
                                     source: tuple[str, Path]) -> None:
    """A build killed while a stage writes leaves no entry; the rerun cleans up the stale work
    dir and gives exactly the result of an uninterrupted build."""
    spec = {"tmp": str(tmp_path), "url": f"{server.url}/crash.qcow2", "digest": source[0],
            "store": str(tmp_path / "store"), "outputs": [["qcow2", None], ["vdi", None]],
            "convert": "tests.integration.pipeline_stages:StallingConvert"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    flag = tmp_path / "stall"
    flag.touch()
    env = dict(os.environ, IMAGEPIPE_TEST_STALL=str(flag), PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "tests.integration.pipeline_runner", str(tmp_path / "spec.json")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not Path(str(flag) + ".reached").exists():
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = tmp_path / "store"
    stale = [p for p in (store / "tmp").iterdir() if p.is_dir()]
    assert stale and any(p.glob("*.partial") for p in stale)
    labels = [json.loads((e / "artifact.json").read_text())["label"]
              for e in (store / "stages").iterdir()]
    assert not any(lab.startswith("convert") for lab in labels)

    flag.unlink()
    env.pop("IMAGEPIPE_TEST_STALL")
    rerun = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    result = json.loads(rerun.stdout.splitlines()[-1])
    assert "fetch" not in result["rerun"] and "convert.qcow2" in result["rerun"]
    assert not [p for p in (store / "tmp").iterdir() if not p.name.startswith("trash")]

    spec["store"] = str(tmp_path / "clean-store")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    clean = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stderr
    ref = json.loads(clean.stdout.splitlines()[-1])
    # qcow2 output is byte-reproducible; vdi headers carry random UUIDs: compare guest data
    assert ref["outputs"][0]["sha256"] == result["outputs"][0]["sha256"]
    for a, b in zip(ref["outputs"], result["outputs"], strict=True):
        assert a["format"] == b["format"]
        r = subprocess.run(["qemu-img", "compare", a["path"], b["path"]], capture_output=True)
        assert r.returncode == 0, r.stdout


@pytest.mark.qemu
def test_ctrl_c_mid_stage_leaves_nothing(tmp_path: Path, server: HttpServer,
                                         source: tuple[str, Path]) -> None:
    spec = {"tmp": str(tmp_path), "url": f"{server.url}/crash.qcow2", "digest": source[0],
            "store": str(tmp_path / "store"), "outputs": [["qcow2", None], ["vdi", None]],
            "convert": "tests.integration.pipeline_stages:StallingConvert"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    flag = tmp_path / "stall"
    flag.touch()
    env = dict(os.environ, IMAGEPIPE_TEST_STALL=str(flag), PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "tests.integration.pipeline_runner",
                             str(tmp_path / "spec.json")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not Path(str(flag) + ".reached").exists():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    time.sleep(0.3)  # both converts are in their stall loop (parallel)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode != 0 and "KeyboardInterrupt" in err
    store = tmp_path / "store"
    assert list((store / "tmp").iterdir()) == []  # work dirs and their locks removed
    build_dir = next((store / "builds" / "t").glob("2*"))
    manifest = json.loads((build_dir / "manifest.json").read_text())
    assert manifest["result"] == "failed"
    assert not (tmp_path / "templates").exists()


def test_gc_of_a_referenced_object_removes_the_dangling_stage_entry(tmp_path: Path) -> None:
    s = Store(tmp_path / "s")
    obj = tmp_path / "o"
    obj.write_bytes(b"object" * 1000)
    digest = "sha256:" + file_digest(obj)
    stored = s.put_object(obj, digest)
    work = s.workdir("pass")
    s.commit_stage("f" * 64, work, Artifact(path=stored, kind="file"), label="pass-through")
    os.utime(stored, (time.time() - 100,) * 2)  # the object is the least recently used
    s.holds.close()
    removed, held = gc(Store(tmp_path / "s"), max_size=5000)  # room for the stage entry
    assert [e.path for e in removed] == [stored, s.stage_path("f" * 64)] and not held
    assert removed[1].label == "(refers to a removed entry)"
    assert verify(Store(tmp_path / "s")) == []


def test_objects_from_before_a_reboot_are_rehashed_once(tmp_path: Path) -> None:
    """put_object skips fsync and stamps the boot id; after a power loss (= another boot id)
    an intact object is re-hashed, fsynced and stamped durable, a torn one is removed."""
    s = Store(tmp_path / "s")
    good, torn = tmp_path / "good", tmp_path / "torn"
    good.write_bytes(b"g" * 10_000)
    torn.write_bytes(b"t" * 10_000)
    dg, dt = "sha256:" + file_digest(good), "sha256:" + file_digest(torn)
    pg, pt = s.put_object(good, dg), s.put_object(torn, dt)
    stamp = pg.with_name(pg.name + ".boot")
    assert stamp.read_text() == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    s.holds.close()
    for p in (pg, pt):  # "power loss": stamps from another boot; one file lost its data
        p.with_name(p.name + ".boot").write_text("an-older-boot")
    os.chmod(pt, 0o644)
    pt.write_bytes(b"\0" * 10_000)
    after = Store(tmp_path / "s")
    assert after.get_object(dg) == pg and stamp.read_text() == "durable"
    assert after.get_object(dt) is None and not pt.exists()
    assert [e.path for e in entries(after)] == [pg]  # stamps are not entries
