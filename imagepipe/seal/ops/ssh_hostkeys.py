"""Clones sharing SSH host keys can impersonate each other; cloud-init makes new ones."""

from __future__ import annotations

from imagepipe.seal import SealContext, register


@register("ssh-hostkeys", default=True, summary="Remove SSH host keys (regenerated on first boot)")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob("/etc/ssh/ssh_host_*")
