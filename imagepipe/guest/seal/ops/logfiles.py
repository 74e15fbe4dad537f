"""Logs of the build machine leak hostnames, IPs and users, and make clones look old."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("logfiles", default=True, summary="Remove log files under /var/log (directories kept)")
def perform(ctx: SealContext) -> None:
    for path in ctx.session.files_under("/var/log"):
        ctx.rm(path)
    ctx.empty_dir("/var/log/journal")
