"""Resume a broken upload inside the same transfer: resend only the segments that differ.

Why: the most common complaint about upstream uploads is that a dropped connection at 90 %
restarts from zero. When the transfer is still usable (still `transferring`, or paused by the
system and resumable, which makes the engine add the ticket again), we compare the image with
the remote disk segment by segment and send only what is missing or different. The full
checksum comparison that follows still decides; if it fails, the caller falls back to a fresh
upload, so resuming can never produce a wrong disk.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.targets.ovirt.connection import EngineConfig

SEGMENT = 64 << 20
CHUNK = 8 << 20


def _ranges(extents: Any, size: int) -> list[tuple[int, int, bool]]:
    """(start, length, zero) per SEGMENT-aligned piece of the extents."""
    out = []
    for ext in extents:
        start, end = ext.start, ext.start + ext.length
        while start < end:
            stop = min(end, (start // SEGMENT + 1) * SEGMENT, size)
            out.append((start, stop - start, bool(ext.zero)))
            start = stop
    return out


def _digest(read: Any, start: int, length: int, buf: bytearray) -> str:
    h = hashlib.sha256()
    pos = start
    while pos < start + length:
        n = min(CHUNK, start + length - pos)
        view = memoryview(buf)[:n]
        read(pos, view)
        h.update(view)
        pos += n
    return h.hexdigest()


def resend_differing(image: Path, url: str, cfg: EngineConfig) -> tuple[int, int]:
    """Make the remote disk equal to `image`; returns (bytes resent, bytes compared)."""
    from ovirt_imageio import client

    from imagepipe.targets.ovirt import imageio_private as private

    private.require_tested("resuming an upload")
    info = private.image_info(image)
    size = int(info["virtual-size"])
    sent = compared = 0
    buf = bytearray(CHUNK)
    cafile = str(cfg.ca_file) if cfg.ca_file else None
    with private.open_local_image(image, info["format"]) as src, \
            client.ImageioClient(url, cafile=cafile, secure=not cfg.insecure) as dst:
        remote_zero = _ranges(dst.extents("zero"), size)

        def local_read(offset: int, view: memoryview) -> None:
            src.seek(offset)
            src.readinto(view)

        def remote_read(offset: int, view: memoryview) -> None:
            dst.read(offset, view)

        for start, length, zero in _ranges(src.extents("zero"), size):
            if zero:
                # Never sent as data: only clear it if the remote has data there.
                if any(z is False and s < start + length and start < s + n
                       for s, n, z in remote_zero):
                    dst.zero(start, length)
                continue
            compared += length
            if _digest(local_read, start, length, buf) == _digest(remote_read, start, length, buf):
                continue
            pos = start
            while pos < start + length:
                n = min(CHUNK, start + length - pos)
                view = memoryview(buf)[:n]
                local_read(pos, view)
                dst.write(pos, view)
                pos += n
            sent += length
        dst.flush()
    ui.info(f"resumed the upload: resent {sent >> 20} MiB of {compared >> 20} MiB of data")
    return sent, compared
