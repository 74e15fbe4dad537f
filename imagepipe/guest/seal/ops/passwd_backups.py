"""passwd-/shadow- backups keep old password hashes after the real files were cleaned."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("passwd-backups", default=True, summary="Remove /etc/passwd-, shadow-, group-, gshadow-")
def perform(ctx: SealContext) -> None:
    for name in ("passwd", "shadow", "group", "gshadow", "subuid", "subgid"):
        ctx.rm(f"/etc/{name}-")
