"""A MAC address pinned in network config stops a clone (new MAC) from getting a network."""

from __future__ import annotations

import re

from imagepipe.guest.seal import SealContext, register


def strip_ifcfg(text: str) -> str:
    return re.sub(r"(?m)^(HWADDR|UUID)=.*\n?", "", text)


def strip_nm(text: str) -> str:
    return re.sub(r"(?m)^(mac-address|cloned-mac-address|permanent-mac-address)=.*\n?", "", text)


def strip_netplan(text: str) -> str:
    """Drop `macaddress` from `match:`; a match left empty goes, with its `set-name`."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        return text
    changed = False
    for kind in ("ethernets", "wifis", "bonds", "bridges", "vlans"):
        for dev in ((data.get("network") or {}).get(kind) or {}).values():
            match = dev.get("match") if isinstance(dev, dict) else None
            if isinstance(match, dict) and "macaddress" in match:
                del match["macaddress"]
                changed = True
                if not match:
                    del dev["match"]
                    dev.pop("set-name", None)
            if isinstance(dev, dict) and "macaddress" in dev:
                del dev["macaddress"]
                changed = True
    return yaml.safe_dump(data, sort_keys=False) if changed else text


@register(
    "net-hwaddr",
    default=True,
    summary="Remove MAC addresses from ifcfg, NetworkManager and netplan configs",
)
def perform(ctx: SealContext) -> None:
    s = ctx.session
    for path in s.glob("/etc/sysconfig/network-scripts/ifcfg-*"):
        ctx.edit(path, strip_ifcfg)
    for path in s.glob("/etc/NetworkManager/system-connections/*"):
        ctx.edit(path, strip_nm)
    for path in s.glob("/etc/netplan/*.yaml") + s.glob("/etc/netplan/*.yml"):
        ctx.edit(path, strip_netplan)
