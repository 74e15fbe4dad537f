"""File digests: the one chunked file hasher the store, the converter, the OVA writer and
stage keys all use.

Why one place: reading into one reused buffer in big chunks is what makes hashing fast here
(hashlib releases the GIL on large buffers, so threads hash in parallel, e.g. the converter's
sha256 next to `qemu-img compare`), and a `cancel` event lets a failed verification stop the
read at once. Kept free of imports from other imagepipe packages so anything may use it.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from imagepipe.errors import Interrupted

CHUNK = 4 << 20


def file_digest(path: Path, algo: str = "sha256", *, chunk: int = CHUNK,
                cancel: threading.Event | None = None) -> str:
    """Hex digest of a file's bytes; raises Interrupted as soon as `cancel` is set."""
    h = hashlib.new(algo)
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            if cancel is not None and cancel.is_set():
                raise Interrupted("checksum cancelled")
            h.update(view[:n])
    return h.hexdigest()
