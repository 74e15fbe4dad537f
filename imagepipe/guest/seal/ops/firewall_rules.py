"""Off by default: custom firewall rules may be intended template content."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register(
    "firewall-rules", default=False, summary="Remove custom firewall rules (iptables, firewalld)"
)
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/etc/sysconfig/iptables",
        "/etc/sysconfig/ip6tables",
        "/etc/firewalld/services/*",
        "/etc/firewalld/zones/*",
        "/etc/iptables/rules.v*",
    )
