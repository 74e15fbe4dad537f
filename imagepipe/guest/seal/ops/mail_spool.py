"""Local mail of the build machine (cron output, bounces) is not template content."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("mail-spool", default=True, summary="Remove local mail (/var/spool/mail, /var/mail)")
def perform(ctx: SealContext) -> None:
    ctx.empty_dir("/var/spool/mail")
    ctx.empty_dir("/var/mail")
