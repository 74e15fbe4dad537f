"""Nothing half-written: Ctrl-C, SIGTERM and failures leave neither DST nor a temp file, no
qemu-img keeps running; sparse inputs stay sparse."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.integration.convert_helpers import identical, listing, make_raw

pytestmark = pytest.mark.qemu  # every test here runs the real qemu-img

MiB = 1 << 20


def _qemu_img_procs(marker: str) -> list[int]:
    """PIDs of processes whose command line mentions `marker` (our temp dir)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-img" in cmd and marker in cmd:
            pids.append(int(pid))
    return pids


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 GiB sparse raw with 192 MiB of random data: slow enough to compress with zlib that a
    signal lands mid-conversion."""
    d = tmp_path_factory.mktemp("big")
    chunk = os.urandom(16 * MiB)
    return make_raw(d / "big.raw", size=1 << 30,
                    pattern=[(i * 80 * MiB, chunk) for i in range(12)])


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_conversion_leaves_nothing(big: Path, tmp_path: Path, sig: int) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "imagepipe", "convert", str(big),
                             str(out_dir / "disk.qcow2"), "--compress", "--options",
                             "compression_type=zlib"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not any(n.endswith(".imagepipe-tmp") for n in listing(out_dir)):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "temp file never appeared"
            time.sleep(0.05)
        time.sleep(0.5)  # qemu-img is now writing
        assert proc.poll() is None, "conversion finished before the signal; make it slower"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130), (out, err)
    assert "interrupted" in err
    assert listing(out_dir) == []
    assert _qemu_img_procs(str(out_dir)) == []


def test_tool_failure_leaves_nothing(big: Path, tmp_path: Path) -> None:
    """qemu-img fails mid-write (file size limit: EFBIG): exit 1, nothing left behind."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * MiB, 64 * MiB))

    res = subprocess.run([sys.executable, "-m", "imagepipe", "convert", str(big),
                          str(out_dir / "disk.qcow2")], cwd=REPO, capture_output=True, text=True,
                         preexec_fn=limit, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "qemu-img convert" in res.stderr  # the failed command, ready to paste
    assert listing(out_dir) == []


def test_sparse_stays_sparse(tmp_path: Path) -> None:
    """A 4 GiB raw holding 100 MiB of data converts without writing 4 GiB."""
    chunk = os.urandom(25 * MiB)
    src = make_raw(tmp_path / "sparse.raw", size=4 << 30,
                   pattern=[(i * (1 << 30), chunk) for i in range(4)])
    for dst, extra in ((tmp_path / "out.raw", ["--no-checksum"]), (tmp_path / "out.qcow2", [])):
        res = run_cli("convert", str(src), str(dst), *extra)
        assert res.returncode == 0, res.stderr
        allocated = dst.stat().st_blocks * 512
        assert allocated < 110 * MiB, (dst, allocated)
        assert dst.suffix != ".raw" or dst.stat().st_size == 4 << 30
        assert identical(src, "raw", dst, dst.suffix[1:])
