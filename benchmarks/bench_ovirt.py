"""oVirt upload: `imagepipe ovirt upload-disk` (checksum verification on) vs the unmodified
`ovirt-img upload-disk`, same image, same simulator + real ovirt-imageio daemon, one run each.

Image: 4 GiB virtual, sparse, 1 GiB of random data in 8 chunks (BENCH_SCALE shrinks both).
Prints wall times, the ratio imagepipe/ovirt-img (target <= 1.0) and both data rates. Each
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
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory(prefix="bench-ovirt-") as tmp:
        base = Path(tmp)
        image = base / "bench.raw"
        size, data = _image(image, scale)
        with EngineSimulator(base / "engine") as sim:
            common = ["--password-file", str(sim.password_file)]
            ref = _timed([str(bindir / "ovirt-img"), "upload-disk", "--engine-url", sim.url,
                          "--username", sim.username, *common, "--cafile", str(sim.ca_file),
                          "-s", "data1", "--name", "ref", str(image)])
            _check(sim, image, "ref")
            ours = _timed([sys.executable, "-m", "imagepipe", "ovirt", "upload-disk",
                           str(image), "-s", "data1", "--name", "ours", "--engine", sim.url,
                           *common, "--ca-file", str(sim.ca_file)])
            _check(sim, image, "ours")
    gib = size / (1 << 30)
    print(f"ovirt upload image: {gib:.2f} GiB virtual, {data / MiB:.0f} MiB data (raw, sparse)")
    print(f"ovirt-img upload-disk: {ref:.2f} s ({data / MiB / ref:.0f} MiB/s of data)")
    print(f"imagepipe ovirt upload-disk (checksum verified): {ours:.2f} s "
          f"({data / MiB / ours:.0f} MiB/s of data)")
    print(f"ovirt upload ratio imagepipe/ovirt-img: {ours / ref:.2f} (target <= 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
