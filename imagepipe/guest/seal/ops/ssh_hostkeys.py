"""Clones sharing SSH host keys can impersonate each other; cloud-init makes new ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagepipe.guest.seal import SealContext, register

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession


def check(s: GuestSession) -> list[str]:
    """Read back: no host key file is left."""
    return [f"SSH host key still present: {p}" for p in s.glob("/etc/ssh/ssh_host_*")]


@register(
    "ssh-hostkeys",
    default=True,
    summary="Remove SSH host keys (regenerated on first boot)",
    verify=check,
)
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/etc/ssh/ssh_host_*")
