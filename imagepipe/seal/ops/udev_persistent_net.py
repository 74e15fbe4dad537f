"""Persistent-net rules pin eth0 to the old MAC: a clone's NIC becomes eth1 with no config."""

from __future__ import annotations

from imagepipe.seal import SealContext, register


@register("udev-persistent-net", default=True, summary="Remove udev persistent network rules")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/etc/udev/rules.d/70-persistent-net.rules",
        "/etc/udev/rules.d/75-persistent-net-generator.rules",
    )
