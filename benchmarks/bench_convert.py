"""`imagepipe convert` against bare `qemu-img convert` on the same sparse raw.

Default: an 8 GiB sparse raw holding 3 GiB of data (BENCH_SCALE=0.1 for a quick try), to qcow2
and to vmdk, verification off; each tool runs BENCH_REPEAT times (default 3), alternating, and
the best wall time counts (the machine is shared; the minimum is the least disturbed run).
Also: verification's own cost (check + compare + sha256, measured as verify-on minus
verify-off), and `imagepipe --version` wall time.
Targets: ratio <= 1.10; --version < 0.3 s.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GiB = 1 << 30
MiB = 1 << 20
IMAGEPIPE = [sys.executable, "-m", "imagepipe"]


def make_source(path: Path, size: int, data: int) -> None:
    """`data` bytes of random content in 6 extents spread over a sparse file of `size`."""
    chunk = os.urandom(min(64 * MiB, data))
    extents = 6
    per = data // extents
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(extents):
            f.seek(i * (size // extents))
            left = per
            while left > 0:
                n = min(left, len(chunk))
                f.write(chunk[:n])
                left -= n


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def settle(dst: Path) -> None:
    """Untimed: flush and delete an output, so its pending writeback cannot slow the next run
    (otherwise whichever tool runs second pays for the first one's dirty pages)."""
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    dst.unlink()


def best(times: list[float]) -> float:
    return min(times)


def qemu_img_then_fsync(argv: list[str], dst: Path) -> float:
    """Bare qemu-img plus the fsync imagepipe does before publishing: equal durability."""
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    return time.perf_counter() - start


def bench_target(src: Path, work: Path, fmt: str, repeat: int) -> None:
    dst = work / f"out.{fmt}"
    bare = ["qemu-img", "convert", "-f", "raw", "-O", fmt, str(src), str(dst)]
    ours = [*IMAGEPIPE, "convert", str(src), str(dst), "--no-verify"]
    verified = [*IMAGEPIPE, "convert", str(src), str(dst)]
    runs: dict[str, list[float]] = {"qemu-img": [], "imagepipe": [], "synced": [],
                                    "verified": []}
    pair = [("qemu-img", bare), ("imagepipe", ours)]
    for i in range(repeat):
        for name, argv in pair if i % 2 == 0 else pair[::-1]:  # alternate who goes first
            runs[name].append(timed(argv))
            settle(dst)
        runs["synced"].append(qemu_img_then_fsync(bare, dst))
        settle(dst)
    runs["verified"].append(timed(verified))
    settle(dst)
    q, ip, v = best(runs["qemu-img"]), best(runs["imagepipe"]), best(runs["verified"])
    qs = best(runs["synced"])
    ratio = ip / q
    print(f"convert_{fmt}_ratio: {ratio:.3f} (imagepipe {ip:.2f} s / qemu-img {q:.2f} s, "
          f"best of {repeat}; target <= 1.10){'' if ratio <= 1.10 else '  MISSED'}", flush=True)
    print(f"convert_{fmt}_ratio_same_durability: {ip / qs:.3f} (imagepipe {ip:.2f} s / "
          f"qemu-img + fsync {qs:.2f} s; imagepipe fsyncs before the rename)", flush=True)
    print(f"convert_{fmt}_verify_cost: {v - ip:.2f} s (+{(v - ip) / ip * 100:.0f}% over "
          f"--no-verify: qemu-img check + compare + sha256 in parallel)", flush=True)


def bench_version() -> None:
    times = [timed([*IMAGEPIPE, "--version"]) for _ in range(7)]
    med = statistics.median(times)
    print(f"imagepipe_version_wall: {med:.3f} s (median of 7; target < 0.3 s)"
          f"{'' if med < 0.3 else '  MISSED'}", flush=True)


def main() -> int:
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    size, data = int(8 * GiB * scale) // MiB * MiB, int(3 * GiB * scale) // MiB * MiB
    bench_version()
    work = Path(tempfile.mkdtemp(prefix="bench-convert-", dir=os.environ.get("BENCH_DIR")))
    try:
        src = work / "src.raw"
        start = time.perf_counter()
        make_source(src, size, data)
        print(f"source: {size / GiB:.2f} GiB sparse raw, {data / GiB:.2f} GiB data "
              f"(written in {time.perf_counter() - start:.1f} s)", flush=True)
        for fmt in ("qcow2", "vmdk"):
            bench_target(src, work, fmt, repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
