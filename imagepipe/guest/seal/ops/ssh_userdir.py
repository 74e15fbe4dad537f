"""Keys and known_hosts of the build's users must not give access to every clone."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("ssh-userdir", default=True, summary="Remove ~/.ssh of root and users")
def perform(ctx: SealContext) -> None:
    for home in ("/root", *ctx.session.glob("/home/*")):
        ctx.rm(f"{home}/.ssh")
