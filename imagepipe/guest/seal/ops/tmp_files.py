"""Temporary files of the build (installer leftovers, sockets) start every clone dirty."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("tmp-files", default=True, summary="Empty /tmp and /var/tmp (directories kept)")
def perform(ctx: SealContext) -> None:
    ctx.empty_dir("/tmp")
    ctx.empty_dir("/var/tmp")
