"""Persistent-net rules pin eth0 to the old MAC: a clone's NIC becomes eth1 with no config."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagepipe.guest.seal import SealContext, register

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession

RULES = "/etc/udev/rules.d/70-persistent-net.rules"


def check(s: GuestSession) -> list[str]:
    """Read back: the persistent net rules are gone."""
    return [f"persistent net rules still present: {RULES}"] if s.exists(RULES) else []


@register(
    "udev-persistent-net",
    default=True,
    summary="Remove udev persistent network rules",
    verify=check,
)
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/etc/udev/rules.d/70-persistent-net.rules",
        "/etc/udev/rules.d/75-persistent-net-generator.rules",
    )
