"""DHCP leases name the old MAC/IP; a clone asking for the same lease confuses servers."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("dhcp-client-state", default=True, summary="Remove DHCP client leases")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/var/lib/dhclient/*",
        "/var/lib/dhcp/*.leases",
        "/var/lib/dhcp/dhclient*",
        "/var/lib/NetworkManager/*.lease",
        "/var/lib/NetworkManager/dhclient-*",
        "/var/lib/dhcpcd/*.lease",
        "/var/lib/dhcpcd5/*.lease",
        "/var/lib/systemd/network/*.lease",
        "/run/systemd/netif/leases/*",
    )
