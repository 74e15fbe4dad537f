"""Run the selected seal operations, then read the image back to prove the seal holds.

Why verify by reading back: an operation that silently did nothing (a glob that missed, a
guard that skipped) would ship an unsealed template. Each operation that can be checked
registers its own read-back (`register(..., verify=...)`), so adding an operation and its
check is one module; only the operations that ran are checked and reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError
from imagepipe.guest.seal import SealContext, operations, select
from imagepipe.guest.seal.lints import LintReport, run_lints
from imagepipe.tools.guestfs import GuestSession


@dataclass
class SealReport:
    """What one seal run applied, skipped (wrong OS) and removed/edited, per operation."""

    operations: list[str]
    skipped: list[str]
    files_removed: int
    removed: dict[str, list[str]]
    edited: dict[str, list[str]]
    dry_run: bool

    def to_json(self) -> dict[str, Any]:
        """The full record (`imagepipe seal --dry-run --json`)."""
        return {
            "operations": self.operations,
            "skipped": self.skipped,
            "files_removed": self.files_removed,
            "removed": self.removed,
            "edited": self.edited,
            "dry_run": self.dry_run,
        }

    def summary(self) -> dict[str, Any]:
        """The manifest's `seal` record: names and counts, not every removed path."""
        return {k: self.to_json()[k] for k in ("operations", "skipped", "files_removed")}


@dataclass
class Verification:
    """The read-back checks that ran (one per applied operation that registered one)."""

    checks: list[str] = field(default_factory=list)
    verified: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"verified": self.verified, "checks": self.checks}


@dataclass
class SealCheck:
    """seal -> lints -> verify, as the CLI and the build stage both record it."""

    seal: SealReport
    lints: LintReport
    verification: Verification

    def to_json(self) -> dict[str, Any]:
        return {
            "seal": self.seal.summary(),
            "lints": self.lints.to_json(),
            "verification": self.verification.to_json(),
        }


def seal(session: GuestSession, spec: str = "defaults", *, dry_run: bool = False) -> SealReport:
    """Apply the operations `spec` selects; return what was applied/removed."""
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
    return SealReport(applied, skipped, n_removed, ctx.removed, ctx.edited, dry_run)


def verify(session: GuestSession, applied: list[str]) -> Verification:
    """Run the read-back of every applied operation; raise ImagepipeError naming what is still
    there."""
    ops = operations()
    checked = [name for name in applied if ops[name].verify is not None]
    failures: list[str] = []
    for name in checked:
        check = ops[name].verify
        assert check is not None
        failures += check(session)
    if failures:
        raise ImagepipeError(
            "seal verification failed:\n  " + "\n  ".join(failures),
            "this is a bug in a seal operation; please report it",
        )
    return Verification(checks=checked)


def seal_and_check(
    session: GuestSession,
    spec: str = "defaults",
    *,
    allow_static_ip: bool = False,
    allow_password: bool = False,
) -> SealCheck:
    """Seal, lint the sealed guest (LintError, exit 1) and read it back (ImagepipeError): the
    one sequence `imagepipe seal` and a build's guest stage both run."""
    sealed = seal(session, spec)
    ui.phase("template lints")
    lints = run_lints(session, allow_static_ip=allow_static_ip, allow_password=allow_password)
    ui.phase("verifying the sealed image")
    return SealCheck(sealed, lints, verify(session, sealed.operations))
