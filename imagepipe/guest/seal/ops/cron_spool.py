"""Per-user cron and at jobs belong to the original machine, not to every clone."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("cron-spool", default=True, summary="Remove user cron and at jobs (/var/spool/cron, at)")
def perform(ctx: SealContext) -> None:
    for d in ("/var/spool/cron/crontabs", "/var/spool/cron/atjobs", "/var/spool/at"):
        ctx.empty_dir(d)
    for path in ctx.session.glob("/var/spool/cron/*"):  # RHEL: one file per user
        if ctx.session.is_file(path):
            ctx.rm(path)
