"""The guest CLI chain (inject -> customize -> seal, each with -o), read back independently with
debugfs; the input image is never modified; lint failure and Ctrl-C leave no output.
(The `guest` stage runs through the engine in test_guest_stage.py.)"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml

from imagepipe.testing.fixtures import make_debian_fixture
from tests.conftest import run_cli

from .guest_helpers import SEALABLE, read_back

pytestmark = [pytest.mark.guestfs, pytest.mark.qemu]

USER_DATA = "#cloud-config\npackages: [apache2]\nruncmd:\n  - [systemctl, start, apache2]\n"


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_cli_chain(tmp_path: Path) -> None:
    src = make_debian_fixture(tmp_path / "in.img", dict(SEALABLE), busybox=True)
    before = _sha(src)
    ud = tmp_path / "ud.yaml"
    ud.write_text(USER_DATA)
    a, b, c = tmp_path / "a.img", tmp_path / "b.img", tmp_path / "c.img"
    r = run_cli("inject", str(src), "--user-data", str(ud), "--hostname", "web1", "-o", str(a))
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "customize",
        str(a),
        "-o",
        str(b),
        "--write",
        "/etc/one:1",
        "--write",
        "/etc/two:2",
        "--run",
        "echo ran > /etc/ran",
    )
    assert r.returncode == 0, r.stderr
    r = run_cli("--json", "seal", str(b), "-o", str(c))
    assert r.returncode == 0, r.stderr
    assert '"files_removed"' in r.stdout
    assert _sha(src) == before  # the input is never modified
    assert read_back(c, "/var/lib/cloud/seed/nocloud/user-data") == USER_DATA.encode()
    meta = yaml.safe_load(read_back(c, "/var/lib/cloud/seed/nocloud/meta-data") or b"")
    assert meta["local-hostname"] == "web1" and meta["instance-id"].startswith("iid-")
    assert read_back(c, "/etc/one") == b"1" and read_back(c, "/etc/two") == b"2"
    assert read_back(c, "/etc/ran") == b"ran\n"
    assert read_back(c, "/etc/ssh/ssh_host_rsa_key") is None
    assert read_back(c, "/etc/machine-id") == b""
    assert read_back(c, "/var/lib/cloud/instance/obj.pkl") is None
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_lint_failure(tmp_path: Path) -> None:
    src = make_debian_fixture(
        tmp_path / "in.img",
        {
            "etc/network/interfaces": "auto eth0\niface eth0 inet static\n",
            "var/log/syslog": "x\n",
            "etc/machine-id": "abc\n",
        },
    )
    out = tmp_path / "out.img"
    before = _sha(src)
    r = run_cli("seal", str(src), "--dry-run", "--operations", "none,machine-id,logfiles")
    assert r.returncode == 0, r.stderr
    assert "(edit) /etc/machine-id" in r.stdout and "/var/log/syslog" in r.stdout
    assert "ssh-hostkeys" not in r.stdout
    assert _sha(src) == before  # read-only
    r = run_cli("seal", str(src), "-o", str(tmp_path / "x.qcow2"))
    assert r.returncode == 2 and "keeps the input's format (raw)" in r.stderr
    r = run_cli("seal", str(src), "-o", str(out), "--accel", "tcg")
    assert r.returncode == 1
    assert "/etc/network/interfaces:2" in r.stderr and "--allow-static-ip" in r.stderr
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))


def _qemu_on(path: Path) -> list[int]:
    """PIDs of processes whose command line mentions `path` (a leaked appliance)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmd and "qemu-system" in cmd:
                pids.append(int(d.name))
    return pids


def test_ctrl_c_cleans_up(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    src = make_debian_fixture(tmp_path / "in.img", dict(SEALABLE))
    before = _sha(src)
    out = tmp_path / "out.img"
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagepipe", "seal", str(src), "-o", str(out), "--accel", "tcg"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not _qemu_on(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _qemu_on(tmp_path), "the appliance never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    time.sleep(0.5)
    assert not _qemu_on(tmp_path)
    assert not out.exists() and not list(tmp_path.glob(".*.tmp"))
    assert _sha(src) == before
