"""A new user's repros on real tools (qemu-img, blkid, the engine simulator + imageio):
non-images refused, convert spoken as qemu-img, one --force rule, fetch of local paths,
the simulator with a relative --dir, and the `build --all --dry-run` plan."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.qemu


def _raw(path: Path, size: str = "4M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), size], check=True)
    return path


def test_convert_refuses_a_text_file_unless_told_raw(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    r = run_cli("convert", str(notes), str(tmp_path / "out.qcow2"))
    assert r.returncode == 2 and "not a disk image" in r.stderr and "-f raw" in r.stderr
    assert not (tmp_path / "out.qcow2").exists()
    r = run_cli("convert", "-f", "raw", str(notes), str(tmp_path / "out.qcow2"))
    assert r.returncode == 0, r.stderr
    # a zeroed disk without an image name is refused too; one named .img is accepted
    bare = _raw(tmp_path / "disk")
    assert run_cli("convert", str(bare), str(tmp_path / "b.qcow2")).returncode == 2
    img = _raw(tmp_path / "disk.img")
    assert run_cli("convert", str(img), str(tmp_path / "c.qcow2")).returncode == 0


def test_convert_speaks_qemu_img(tmp_path: Path) -> None:
    src = _raw(tmp_path / "disk.img")
    out = tmp_path / "disk.qcow2"
    r = run_cli("convert", "-f", "raw", "-O", "qcow2", "-c", str(src), "-o", str(out),
                "--options", "cluster_size=128k")
    assert r.returncode == 0, r.stderr
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["format"] == "qcow2" and info["cluster-size"] == 128 * 1024
    # -o exists: refused without --force, whatever the spelling of the output
    r = run_cli("convert", str(src), "-o", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr
    assert run_cli("convert", str(src), "-o", str(out), "--force").returncode == 0
    # old scripts: -o KEY=VAL with a positional DST still means a qemu-img option
    old = tmp_path / "old.qcow2"
    r = run_cli("convert", str(src), str(old), "-o", "cluster_size=65536")
    assert r.returncode == 0 and "write --options cluster_size=65536" in r.stderr
    # -f that contradicts the content is refused
    r = run_cli("convert", "-f", "raw", str(out), str(tmp_path / "x.raw"))
    assert r.returncode == 2 and "the content is qcow2" in r.stderr


def test_guest_output_refused_before_any_launch(tmp_path: Path) -> None:
    src = _raw(tmp_path / "disk.raw")
    out = tmp_path / "sealed.raw"
    out.write_bytes(b"keep me")
    for argv in (["seal", str(src), "-o", str(out)],
                 ["customize", str(src), "-o", str(out), "--run", "true"]):
        start = time.monotonic()
        r = run_cli(*argv)
        assert r.returncode == 2 and "already exists (pass --force" in r.stderr, r.stderr
        assert time.monotonic() - start < 10  # no appliance was launched
    assert out.read_bytes() == b"keep me"


def test_fetch_local_paths_and_bad_input(tmp_path: Path, store: Path) -> None:
    r = run_cli("fetch", str(tmp_path / "nosuch.qcow2"), "--insecure-no-checksum",
                "--store", str(store))
    assert r.returncode == 2 and "no such file" in r.stderr
    assert "downloaded" not in r.stderr and "mirrors:" not in r.stderr
    r = run_cli("fetch", "ftp://example.org/x.qcow2", "--insecure-no-checksum",
                "--store", str(store))
    assert r.returncode == 2 and "unsupported scheme" in r.stderr
    src = tmp_path / "local.bin"
    src.write_bytes(os.urandom(4096))
    out = tmp_path / "copy.bin"
    r = run_cli("fetch", str(src), "--insecure-no-checksum", "--store", str(store),
                "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()
    assert "was downloaded without checksum verification" in r.stderr
    r = run_cli("fetch", str(src), "--insecure-no-checksum", "--store", str(store),
                "-o", str(out))
    assert r.returncode == 2 and "already exists" in r.stderr


def test_upload_disk_refuses_a_text_file_before_any_network(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image\n")
    env = {"OVIRT_PASSWORD": "x", "HOME": str(tmp_path)}
    # port 9 (discard) on localhost: a connection attempt would fail differently (exit 1)
    r = run_cli("ovirt", "upload-disk", str(notes), "-s", "data1",
                "--engine", "https://127.0.0.1:9/ovirt-engine/api", "--insecure", env=env)
    assert r.returncode == 2 and "not a disk image" in r.stderr, r.stderr


@pytest.mark.ovirt
def test_simulator_with_a_relative_dir_accepts_uploads(tmp_path: Path) -> None:
    from tests.integration.ovirt_helpers import make_image

    # a long directory is refused at start (unix socket paths are limited to 107 bytes)
    deep = tmp_path / ("d" * 60)
    deep.mkdir()
    r = subprocess.run([sys.executable, "-m", "imagepipe.testing.ovirt_engine", "--dir", "sim"],
                       cwd=deep, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "too long" in r.stderr
    short = Path(tempfile.mkdtemp(prefix="sim-", dir="/tmp"))  # pytest's tmp_path is too long
    proc = subprocess.Popen([sys.executable, "-m", "imagepipe.testing.ovirt_engine",
                             "--dir", "sim", "--delay", "0.1"], cwd=short,
                            stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout is not None
        facts = {}
        while "password_file" not in facts:
            line = proc.stdout.readline()
            assert line, "the simulator exited"
            key, _, value = line.partition(": ")
            facts[key] = value.strip()
        image = make_image(tmp_path / "small.qcow2", size=8 << 20, chunks=((1, 1),))
        r = run_cli("--json", "ovirt", "upload-disk", str(image), "-s", "data1",
                    "--engine", facts["url"], "--ca-file", facts["ca_file"],
                    "--password-file", facts["password_file"],
                    env={"HOME": str(tmp_path)}, timeout=90)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout.splitlines()[-1])["checksum"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        shutil.rmtree(short, ignore_errors=True)


def test_build_all_dry_run_shows_each_plan(tmp_path: Path, store: Path) -> None:
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    shutil.copy(REPO / "recipes" / "httpd.yaml", recipes)
    shutil.copytree(REPO / "recipes" / "httpd", recipes / "httpd")
    if (REPO / "recipes" / "base").is_dir():
        shutil.copytree(REPO / "recipes" / "base", recipes / "base")
    r = run_cli("build", "--all", str(recipes), "--dry-run", "--store", str(store),
                cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "httpd: plan (dry run" in r.stderr  # the child's plan lines are relayed
    row = next(line for line in r.stdout.splitlines() if line.startswith("httpd "))
    assert "would build" in row and "base.bootstrap" in row, r.stdout
    rerun, stages = next(c for c in row.split() if "/" in c).split("/")
    assert rerun == stages != "0"  # an empty store: every stage of the plan would run
    assert "(dry run): 1 would build" in r.stdout
