"""Size limits on what imagepipe reads from users and servers, in one place.

Why limits at all: a recipe, a cloud-config or a download is input from someone else. Without
a cap a 50 MB YAML file costs seconds and hundreds of MB before any error, and an endless HTTP
body fills the store's disk. Each limit is far above any real use and produces a clear error
naming the number; docs/security.md lists them.
"""

from __future__ import annotations

MAX_RECIPE_BYTES = 1 << 20  # a recipe (or meta-data / network-config YAML): 1 MiB
MAX_USER_DATA_BYTES = 1 << 20  # a cloud-config: 1 MiB (clouds cap it at 16-64 KiB)
MAX_DOWNLOAD_BYTES = 64 << 30  # a download without `max_size`: 64 GiB
MAX_PASSWORD_FILE_BYTES = 4096  # an engine password file


def human(n: float) -> str:
    """1048576 -> '1.0 MiB' (limits in messages are powers of two)."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
