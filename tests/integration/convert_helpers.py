"""Small real images for the conversion tests (built with qemu-img, data at a few offsets)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

MiB = 1 << 20

# (offset, bytes): data at the start, across a 64 KiB cluster boundary, mid-disk, last sector.
PATTERN = [(0, b"MBR!" * 128), (65536 - 100, os.urandom(300)), (3 * MiB + 12345, os.urandom(5000)),
           (4 * MiB - 512, b"\xab" * 512)]
SIZE = 4 * MiB
EXT = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vhd", "vhdx": "vhdx", "vdi": "vdi"}
DRIVER = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx",
          "vdi": "vdi"}
CREATE = {"vhd": ["-o", "subformat=dynamic,force_size=on"]}


def make_raw(path: Path, size: int = SIZE, pattern: list[tuple[int, bytes]] | None = None) -> Path:
    """A sparse raw file of `size` with bytes written at the given offsets only."""
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, data in pattern if pattern is not None else PATTERN:
            f.seek(offset)
            f.write(data)
    return path


def to_format(raw: Path, fmt: str, out: Path) -> Path:
    """Convert with bare qemu-img (the reference), independent of imagepipe."""
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", DRIVER[fmt], *CREATE.get(fmt, []),
                    str(raw), str(out)], check=True, capture_output=True)
    return out


def identical(a: Path, fmt_a: str, b: Path, fmt_b: str) -> bool:
    """qemu-img compare plus equal virtual sizes: the guest sees the very same disk.

    (`compare -s` would also fail on different allocation, which formats legitimately differ in.)
    """
    if virtual_size(a, fmt_a) != virtual_size(b, fmt_b):
        return False
    res = subprocess.run(["qemu-img", "compare", "-f", DRIVER[fmt_a], "-F", DRIVER[fmt_b],
                          str(a), str(b)], capture_output=True, text=True)
    assert res.returncode in (0, 1), res.stderr
    return res.returncode == 0


def virtual_size(path: Path, fmt: str) -> int:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-f", DRIVER[fmt], str(path)],
                         check=True, capture_output=True, text=True).stdout
    return int(json.loads(out)["virtual-size"])


def listing(d: Path) -> list[str]:
    """Every name in a directory, hidden temp files included."""
    return sorted(os.listdir(d))
