"""Getting a finished image onto disk durably, and cheaply.

Why: "no half-written output" needs fsync before the rename, or a power cut can leave DST
named but empty. But fsync after qemu-img finishes means waiting for gigabytes of dirty page
cache to reach the disk (measured here: +0.5-1.5 s on a 1 s, 3 GiB conversion). Asking the
kernel to start writeback *while* qemu-img writes (sync_file_range WRITE, non-blocking for
qemu-img) overlaps the two, so the final fsync has almost nothing left to do.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

SYNC_FILE_RANGE_WRITE = 2
INTERVAL = 0.25


def _sync_file_range() -> Any:
    """libc's sync_file_range, or None where it does not exist (non-Linux)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
        fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        return fn
    except (OSError, AttributeError):
        return None


class EarlyWriteback:
    """While active, periodically start writeback of `path` (once it exists) in a thread."""

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> EarlyWriteback:
        fn = _sync_file_range()
        if fn is not None:
            self._thread = threading.Thread(target=self._loop, args=(fn,), name="writeback",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self, fn: Any) -> None:
        fd = None
        try:
            while not self._stop.wait(self.interval):
                if fd is None:
                    try:
                        fd = os.open(self.path, os.O_RDONLY)
                    except FileNotFoundError:
                        continue
                fn(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
        finally:
            if fd is not None:
                os.close(fd)


__all__ = ["EarlyWriteback"]
