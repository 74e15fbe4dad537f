"""yum's uuid identifies one machine to repositories; clones must each get their own."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("yum-uuid", default=True, summary="Remove the yum UUID (/var/lib/yum/uuid)")
def perform(ctx: SealContext) -> None:
    ctx.rm("/var/lib/yum/uuid")
