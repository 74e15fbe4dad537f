"""Stopping boot-test VMs whose imagepipe was killed with -9.

Why a sweep: every other child of imagepipe dies with it (tools.run sets PR_SET_PDEATHSIG),
but the boot test's qemu runs `-daemonize`d (see tools/qemu.py), and a daemon is nobody's
child, so the kernel cannot stop it for us, and qemu 7.2 has no exit-with-parent option.
Each VM's short temp dir (`/tmp/ip-qmp-*`: QMP socket and pidfile) therefore holds an `owner`
file with imagepipe's pid; `sweep()` (run by every build through Store.clean_stale) stops the
VM of every such dir whose owner is gone, and removes the dir.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile
from pathlib import Path

PREFIX = "ip-qmp-"
OWNER = "owner"


def mark_owner(sockdir: Path) -> None:
    """Record this process as the owner of the VM whose files live in `sockdir`."""
    (sockdir / OWNER).write_text(f"{os.getpid()}\n")


def pid_alive(pid: int) -> bool:
    """True while a process `pid` exists (also one of another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _ours(pid: int, sockdir: Path) -> bool:
    """`pid` is a live qemu started with a pidfile in `sockdir` (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X") and b"qemu" in cmdline and str(sockdir).encode() in cmdline


def _still_ours(sockdir: Path, pid: int) -> bool:
    return _ours(pid, sockdir)


def sweep(tmp: Path | None = None) -> list[Path]:
    """Stop orphaned boot-test VMs and remove their dirs; return the dirs removed."""
    from imagepipe.tools.run import stop_pid

    removed = []
    for sockdir in Path(tmp or tempfile.gettempdir()).glob(PREFIX + "*"):
        try:
            owner = int((sockdir / OWNER).read_text().strip())
        except (OSError, ValueError):
            continue  # no owner file: not ours to judge
        if pid_alive(owner):
            continue
        try:
            pid = int((sockdir / "qemu.pid").read_text().strip())
        except (OSError, ValueError):
            pid = None
        if pid is not None and _ours(pid, sockdir):
            stop_pid(pid, functools.partial(_still_ours, sockdir), term_wait=2)
        shutil.rmtree(sockdir, ignore_errors=True)
        removed.append(sockdir)
    return removed
