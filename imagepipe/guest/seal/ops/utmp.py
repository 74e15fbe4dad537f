"""Login records of the build machine (who was logged in) make no sense on a clone."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("utmp", default=True, summary="Remove utmp login records")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/var/run/utmp", "/run/utmp")
