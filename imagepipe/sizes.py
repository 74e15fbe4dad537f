"""Byte sizes written by people (`8G`, `512MiB`, `1.5G`, `4096`), parsed in one way.

Why one place: a recipe's `disk.size` and `imagepipe cache gc --max-size` must read the same
text as the same number of bytes. Units are binary (K = 1024), as qemu-img and oVirt count;
each caller keeps its own validation and error message.
"""

from __future__ import annotations

UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_size(text: str) -> int:
    """'20G', '512MiB', '1.5K', '1024' -> bytes; raises ValueError if there is no number."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    num, unit = (t[:-1], t[-1]) if t and t[-1] in UNITS else (t, "")
    return int(float(num) * UNITS[unit])
