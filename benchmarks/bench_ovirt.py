"""oVirt upload: `imagepipe ovirt upload-disk` (checksum verification on) vs the unmodified
`ovirt-img upload-disk`, same image, same simulator + real ovirt-imageio daemon, one run each.

Image: 4 GiB virtual, sparse, 1 GiB of random data in 8 chunks (BENCH_SCALE shrinks both).
Each tool runs BENCH_REPEAT times (default 2), alternating who goes first, and the best wall
time counts (the machine is shared; the minimum is the least disturbed run), as bench_convert.
Prints wall times, the ratio imagepipe/ovirt-img (target <= 1.0) and both data rates. Every
uploaded disk is checked equal to the image with `qemu-img compare` (a fast wrong upload is
not a result).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MiB = 1 << 20


def _image(path: Path, scale: float) -> tuple[int, int]:
    size = int(4096 * scale) * MiB
    chunk = max(1, int(128 * scale)) * MiB
    with open(path, "wb") as f:
        f.truncate(size)
        for i in range(8):
            f.seek(i * (size // 8))
            remaining = chunk
            while remaining:
                n = min(remaining, 16 * MiB)
                f.write(os.urandom(n))
                remaining -= n
    return size, 8 * chunk


def _timed(argv: list[str]) -> float:
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(argv[:4])} ...\n"
                         f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed


def _check(sim: object, image: Path, name: str) -> None:
    disks = [d for d in sim.state()["disks"] if d["name"] == name]  # type: ignore[attr-defined]
    assert len(disks) == 1, disks
    subprocess.run(["qemu-img", "compare", str(image), disks[0]["path"]], check=True,
                   capture_output=True)


def main() -> int:
    from imagepipe.testing.ovirt_engine import EngineSimulator

    scale = float(os.environ.get("BENCH_SCALE", "1"))
    repeat = max(1, int(os.environ.get("BENCH_REPEAT", "2")))
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-ovirt-") as tmp:
        base = Path(tmp)
        image = base / "bench.raw"
        size, data = _image(image, scale)
        with EngineSimulator(base / "engine") as sim:
            common = ["--password-file", str(sim.password_file)]

            def ovirt_img(name: str) -> list[str]:
                return [str(bindir / "ovirt-img"), "upload-disk", "--engine-url", sim.url,
                        "--username", sim.username, *common, "--cafile", str(sim.ca_file),
                        "-s", "data1", "--name", name, str(image)]

            def imagepipe(name: str) -> list[str]:
                return [sys.executable, "-m", "imagepipe", "ovirt", "upload-disk", str(image),
                        "-s", "data1", "--name", name, "--engine", sim.url, *common,
                        "--ca-file", str(sim.ca_file)]

            runs: dict[str, list[float]] = {"ovirt-img": [], "imagepipe": []}
            tools = [("ovirt-img", ovirt_img), ("imagepipe", imagepipe)]
            for i in range(repeat):
                for label, argv in tools if i % 2 == 0 else tools[::-1]:
                    name = f"{label}-{i}"
                    runs[label].append(round(_timed(argv(name)), 2))
                    _check(sim, image, name)
    ref, ours = min(runs["ovirt-img"]), min(runs["imagepipe"])
    gib = size / (1 << 30)
    print(f"ovirt upload image: {gib:.2f} GiB virtual, {data / MiB:.0f} MiB data (raw, sparse)")
    print(f"ovirt upload runs (s): ovirt-img {runs['ovirt-img']}, imagepipe {runs['imagepipe']}")
    print(f"ovirt-img upload-disk: {ref:.2f} s ({data / MiB / ref:.0f} MiB/s of data)")
    print(f"imagepipe ovirt upload-disk (checksum verified): {ours:.2f} s "
          f"({data / MiB / ours:.0f} MiB/s of data)")
    print(f"ovirt upload ratio imagepipe/ovirt-img: {ours / ref:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
