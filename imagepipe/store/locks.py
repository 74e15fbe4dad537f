"""fcntl locks for the store: the per-recipe build lock and per-entry holds.

Why flock (not pid files): the kernel drops a flock when its process dies, including kill -9
and power loss, so a crashed build can never leave a lock or a hold behind. A running build
keeps a shared lock on every store entry it uses; `cache gc` must win an exclusive, non-blocking
lock on an entry before it removes it, so it never removes what a build is using.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType

from imagepipe.errors import ImagepipeError


class LockBusy(ImagepipeError):
    """Another process holds the lock and the caller asked not to wait."""


def try_flock(fd: int, exclusive: bool) -> bool:
    """Take a non-blocking flock; False if someone else holds a conflicting one."""
    try:
        fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise


class BuildLock(AbstractContextManager["BuildLock"]):
    """Exclusive lock of one recipe's builds. The lock file records the holder's pid.

    `wait=True`: if busy, call `on_wait(holder_pid)` once and block until free.
    `wait=False`: raise LockBusy at once, naming the holder.
    """

    def __init__(self, path: Path, name: str, *, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.path = path
        self.name = name
        self.wait = wait
        self.on_wait = on_wait
        self.fd: int | None = None

    def __enter__(self) -> BuildLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            if not try_flock(fd, exclusive=True):
                holder = _read_holder(fd)
                if not self.wait:
                    raise LockBusy(f"another build of {self.name!r} is running ({holder})",
                                   "wait for it to finish, or run without --no-wait to queue")
                if self.on_wait:
                    self.on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid unknown"


class Holds:
    """Shared locks on store entries a build uses, released together on close.

    `hold(path)` returns False if the entry vanished (gc removed it) before the lock was
    taken; callers then treat the entry as a cache miss.
    """

    def __init__(self) -> None:
        self._fds: dict[str, int] = {}

    def hold(self, path: Path) -> bool:
        key = str(path)
        if key in self._fds:
            return True
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # gc holds LOCK_EX only for a moment
            st_now = os.stat(path)
            st_fd = os.fstat(fd)
            if (st_now.st_ino, st_now.st_dev) != (st_fd.st_ino, st_fd.st_dev):
                os.close(fd)
                return False
        except FileNotFoundError:
            os.close(fd)
            return False
        self._fds[key] = fd
        return True

    def release(self, path: Path) -> None:
        fd = self._fds.pop(str(path), None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def __enter__(self) -> Holds:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
