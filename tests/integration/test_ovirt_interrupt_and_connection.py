"""Ctrl-C leaves nothing behind; the simulator runs as `python -m`; profile-file connection;
--insecure; the engine's pre-4.4.7 "finished transfer is gone" branch; no password in logs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.ovirt_helpers import (
    MiB,
    assert_clean,
    disk_ids,
    disk_path,
    engine_args,
    identical,
    make_image,
    ovirt,
)

pytestmark = pytest.mark.ovirt


def _start(sim, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, HOME=str(sim.base))
    return subprocess.Popen([sys.executable, "-m", "imagepipe", "ovirt", *args,
                             *engine_args(sim)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(cond, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _processes_using(path: Path) -> list[str]:
    """Command lines of live processes that mention `path` (a leaked qemu-nbd would)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(path) in cmd:
            found.append(cmd)
    return found


@pytest.mark.qemu
def test_ctrl_c_while_disk_locked(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img.qcow2")
    before = disk_ids(sim)
    sim.set_faults(disk_stuck_locked=3)
    proc = _start(sim, "upload-disk", str(image), "-s", "data1")
    _wait_for(lambda: len(disk_ids(sim) - before) == 1)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert_clean(sim, disks_before=before)


@pytest.mark.qemu
def test_ctrl_c_during_transfer(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "big.raw", fmt="raw", size=1024 * MiB,
                       chunks=tuple((i * 100, 40) for i in range(10)))
    before = disk_ids(sim)
    proc = _start(sim, "upload-disk", str(image), "-s", "data1")
    _wait_for(lambda: any(t["phase"] == "transferring" and t["active"]
                          for t in sim.state()["transfers"]) or proc.poll() is not None)
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 15, "Ctrl-C must not wait for the local checksum"
    assert_clean(sim, disks_before=before)
    assert _processes_using(image) == []


def test_simulator_as_module(tmp_path: Path) -> None:
    import shutil
    import tempfile

    # A short directory: unix socket paths under it must fit in 107 bytes (the simulator
    # refuses a deeper --dir, and pytest's tmp_path is deep).
    short = Path(tempfile.mkdtemp(prefix="sim-", dir="/tmp"))
    try:
        _simulator_as_module(short, tmp_path)
    finally:
        shutil.rmtree(short, ignore_errors=True)


def _simulator_as_module(base: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "imagepipe.testing.ovirt_engine", "--dir",
                             str(base / "s")], stdout=subprocess.PIPE, text=True)
    try:
        info = {}
        assert proc.stdout is not None
        while len(info) < 4:
            line = proc.stdout.readline()
            assert line, f"the simulator exited early ({proc.wait(timeout=10)})"
            key, _, value = line.partition(": ")
            info[key] = value.strip()
        assert info["url"].startswith("https://127.0.0.1:")
        env = dict(os.environ, OVIRT_URL=info["url"], OVIRT_PASSWORD_FILE=info["password_file"],
                   OVIRT_CA_FILE=info["ca_file"], HOME=str(tmp_path))
        ls = subprocess.run([sys.executable, "-m", "imagepipe", "ovirt", "templates", "ls"],
                            capture_output=True, text=True, env=env, timeout=60)
        assert ls.returncode == 0 and ls.stdout.startswith("Blank"), ls.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    # the daemon it started is gone: its control socket was removed on shutdown
    assert not (base / "s" / "imageio" / "run" / "control.sock").exists()


@pytest.mark.qemu
def test_profile_file_and_insecure(sim, tmp_path: Path) -> None:
    conf = sim.base / ".config" / "imagepipe"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "ovirt.yaml").write_text(
        f"default: sim\nprofiles:\n  sim:\n    url: {sim.url}\n"
        f"    password_file: {sim.password_file}\n    ca_file: {sim.ca_file}\n")
    env = dict(os.environ, HOME=str(sim.base))
    ls = subprocess.run([sys.executable, "-m", "imagepipe", "ovirt", "templates", "ls"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ls.returncode == 0 and "Blank" in ls.stdout, ls.stderr
    image = make_image(tmp_path / "img.qcow2")
    up = subprocess.run([sys.executable, "-m", "imagepipe", "ovirt", "upload-disk", str(image),
                         "-s", "data1", "--engine", sim.url, "--password-file",
                         str(sim.password_file), "--insecure", "--profile", "sim"],
                        capture_output=True, text=True, env=env, timeout=120)
    assert up.returncode == 0, up.stderr
    assert "TLS verification is off" in up.stderr


@pytest.mark.qemu
def test_finished_transfer_gone_and_no_password_in_logs(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img.qcow2")
    sim.set_faults(finished_transfer_404=True)
    proc, result = ovirt(sim, "upload-disk", str(image), "-s", "data1")
    assert proc.returncode == 0, proc.stderr
    assert identical(image, disk_path(sim, result["disk_id"]))
    ovirt_img = Path(sys.executable).parent / "ovirt-img"
    ref = subprocess.run([str(ovirt_img), "upload-disk", "--engine-url", sim.url, "--username",
                          sim.username, "--password-file", str(sim.password_file), "--cafile",
                          str(sim.ca_file), "-s", "data1", "--name", "old-engine", str(image)],
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    loud = subprocess.run([sys.executable, "-m", "imagepipe", "-vv", "--debug", "ovirt",
                           "upload-disk", str(image), "-s", "data1", *engine_args(sim)],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HOME=str(sim.base)))
    assert loud.returncode == 0, loud.stderr
    assert sim.password not in loud.stdout + loud.stderr


def test_wrong_ca_and_unreachable_engine(sim, tmp_path: Path) -> None:
    from imagepipe.testing.ovirt_engine.pki import make_pki

    other = make_pki(tmp_path / "other")
    env = dict(os.environ, HOME=str(sim.base))
    base = [sys.executable, "-m", "imagepipe", "ovirt", "templates", "ls",
            "--password-file", str(sim.password_file)]
    bad_ca = subprocess.run([*base, "--engine", sim.url, "--ca-file", str(other.ca_file)],
                            capture_output=True, text=True, env=env, timeout=60)
    assert bad_ca.returncode == 1
    assert "TLS verification failed" in bad_ca.stderr and "--ca-file" in bad_ca.stderr
    from tests.conftest import free_port

    down = subprocess.run([*base, "--engine", f"https://127.0.0.1:{free_port()}",
                           "--ca-file", str(sim.ca_file)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert down.returncode == 1 and "error:" in down.stderr and "Traceback" not in down.stderr
