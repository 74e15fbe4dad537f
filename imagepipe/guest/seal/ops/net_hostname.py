"""A hostname baked into ifcfg files would be sent by every clone (the seed: set per VM)."""

from __future__ import annotations

import re

from imagepipe.guest.seal import SealContext, register


def _strip(text: str) -> str:
    return re.sub(r"(?m)^(HOSTNAME|DHCP_HOSTNAME)=.*\n?", "", text)


@register("net-hostname", default=True, summary="Remove HOSTNAME/DHCP_HOSTNAME from ifcfg files")
def perform(ctx: SealContext) -> None:
    for path in ctx.session.glob("/etc/sysconfig/network-scripts/ifcfg-*"):
        ctx.edit(path, _strip)
