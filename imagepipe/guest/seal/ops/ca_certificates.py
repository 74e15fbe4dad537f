"""Off by default: locally added CA certificates (not the distro bundle) of the build site."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("ca-certificates", default=False, summary="Remove locally added CA certificates")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/usr/local/share/ca-certificates/*", "/etc/pki/ca-trust/source/anchors/*")
