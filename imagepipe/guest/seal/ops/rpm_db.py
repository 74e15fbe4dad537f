"""Berkeley DB environment files of rpm are host-specific and break rpm on a clone."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("rpm-db", default=True, summary="Remove rpm database environment files (__db.*)")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/var/lib/rpm/__db.*")
