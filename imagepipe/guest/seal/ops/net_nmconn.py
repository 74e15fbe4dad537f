"""NetworkManager keyfiles of the build machine (ids, MACs, wifi secrets) are not for clones."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register(
    "net-nmconn",
    default=True,
    summary="Remove NetworkManager connection profiles (system-connections)",
)
def perform(ctx: SealContext) -> None:
    ctx.empty_dir("/etc/NetworkManager/system-connections")
