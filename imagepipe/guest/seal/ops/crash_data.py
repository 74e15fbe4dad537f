"""Kernel crash dumps are large and contain memory of the machine the template came from."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register(
    "crash-data", default=True, summary="Remove kernel crash dumps (/var/crash, /var/log/dump)"
)
def perform(ctx: SealContext) -> None:
    ctx.empty_dir("/var/crash")
    ctx.empty_dir("/var/log/dump")
