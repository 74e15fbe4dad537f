"""Writing a file so a crash never leaves a half-written output under the final name.

Why one module: every command that produces a file (convert, guest -o, bootstrap, the rootfs
disk, the NoCloud seed ISO, the remastered installer ISO, the store) must write a temp
sibling, fsync it, rename it into place and fsync the directory. The order matters and is easy
to get subtly wrong, so it lives here once.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from imagepipe.errors import InputError


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refuse_overwrite(dst: Path, force: bool) -> None:
    """The one rule for every command that writes a file the user named (convert, seal /
    inject / customize -o, seed-iso -o, fetch -o): an existing file is replaced only with
    --force. Checked before any work, so nothing runs for minutes and then fails;
    `publish(force=False)` enforces it again, race-free, when the file is renamed into place.
    """
    refuse_special(dst)
    if not force and (dst.exists() or dst.is_symlink()):
        raise InputError(f"{dst}: already exists", "pass --force to replace it")


def refuse_special(dst: Path) -> None:
    """Raise InputError if DST exists and is not a regular file (a device node, a FIFO, a
    socket, a directory, or a symlink to one). Why: `--force` means "replace my old output",
    never "turn /dev/null into a disk image" or unlink a FIFO another program reads."""
    import stat

    try:
        st = os.stat(dst)  # follows a symlink: what it points at is what the user named
    except FileNotFoundError:
        return  # nothing there (or a dangling symlink, which the rename replaces)
    except OSError as exc:
        raise InputError(f"{dst}: cannot check the destination: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        kind = ("a directory" if stat.S_ISDIR(st.st_mode) else "a device node"
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a FIFO"
                if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise InputError(f"{dst}: is {kind}; imagepipe only replaces regular files",
                         "write to a regular file path instead")


def publish(tmp: Path, dst: Path, force: bool) -> None:
    """fsync the file, move it to DST without clobbering (unless force), fsync the directory.
    Never replaces anything but a regular file (see `refuse_special`)."""
    fsync_path(tmp)
    refuse_special(dst)
    if force:
        os.replace(tmp, dst)
    else:
        try:
            os.link(tmp, dst)  # fails if DST appeared meanwhile: never clobber
        except FileExistsError:
            raise InputError(f"{dst}: already exists", "pass --force to replace it") from None
        except OSError:  # a filesystem without hard links
            if dst.exists():
                raise InputError(f"{dst}: already exists", "pass --force") from None
            os.rename(tmp, dst)
        else:
            os.unlink(tmp)
    fsync_path(dst.parent)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
