"""Run the selected seal operations, then read the image back to prove the seal holds.

Why verify by reading back: an operation that silently did nothing (a glob that missed, a
guard that skipped) would ship an unsealed template. Verification checks the outcomes the seed
cares about from the guest's files, independent of which operations ran.
"""

from __future__ import annotations

from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError
from imagepipe.seal import SealContext, operations, select
from imagepipe.tools.guestfs import GuestSession


def seal(session: GuestSession, spec: str = "defaults", *, dry_run: bool = False) -> dict[str, Any]:
    """Apply the operations `spec` selects; return what was applied/removed (manifest record)."""
    assert session.info is not None
    ops = operations()
    ctx = SealContext(session, dry_run=dry_run)
    applied, skipped = [], []
    for name in select(spec):
        op = ops[name]
        if session.info.type not in op.os:
            skipped.append(name)
            continue
        ctx.current = name
        ui.phase(f"seal: {name}")
        op.perform(ctx)
        applied.append(name)
    n_removed = sum(len(v) for v in ctx.removed.values())
    ui.detail(
        f"seal: {len(applied)} operations, {n_removed} files removed"
        + (" (dry run)" if dry_run else "")
    )
    return {
        "operations": applied,
        "skipped": skipped,
        "files_removed": n_removed,
        "removed": ctx.removed,
        "edited": ctx.edited,
        "dry_run": dry_run,
    }


def verify(session: GuestSession, applied: list[str]) -> dict[str, Any]:
    """Read the sealed guest back; raise ImagepipeError naming what is still there."""
    s = session
    failures: list[str] = []
    if "ssh-hostkeys" in applied:
        failures += [f"SSH host key still present: {p}" for p in s.glob("/etc/ssh/ssh_host_*")]
    if "machine-id" in applied and s.is_file("/etc/machine-id"):
        mid = s.read_text("/etc/machine-id").strip()
        if mid not in ("", "uninitialized"):
            failures.append(f"/etc/machine-id still holds an id ({mid})")
    if "cloud-init-state" in applied:
        for p in (
            "/var/lib/cloud/instance",
            "/var/lib/cloud/instances",
            "/var/lib/cloud/sem",
            "/var/lib/cloud/data",
        ):
            if s.is_symlink(p) or s.exists(p):
                failures.append(f"cloud-init instance state still present: {p}")
    if "udev-persistent-net" in applied and s.exists("/etc/udev/rules.d/70-persistent-net.rules"):
        failures.append(
            "persistent net rules still present: /etc/udev/rules.d/70-persistent-net.rules"
        )
    if failures:
        raise ImagepipeError(
            "seal verification failed:\n  " + "\n  ".join(failures),
            "this is a bug in a seal operation; please report it",
        )
    return {
        "verified": True,
        "checks": ["ssh-hostkeys", "machine-id", "cloud-init-state", "udev-persistent-net"],
    }
