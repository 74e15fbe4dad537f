"""Clones sharing a machine-id share DHCP client ids and journal ids (virt-sysprep's trap).

Leave /etc/machine-id EMPTY (systemd's first-boot semantics: a new id is generated at boot),
never delete it (a missing file breaks read-only roots) and never write a fixed id.
/var/lib/dbus/machine-id becomes a symlink to /etc/machine-id, as systemd sets it up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagepipe.guest.seal import SealContext, register

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession


def check(s: GuestSession) -> list[str]:
    """Read back: /etc/machine-id holds no id (empty, or systemd's 'uninitialized')."""
    if not s.is_file("/etc/machine-id"):
        return []
    mid = s.read_text("/etc/machine-id").strip()
    return [] if mid in ("", "uninitialized") else [f"/etc/machine-id still holds an id ({mid})"]


@register(
    "machine-id",
    default=True,
    summary="Empty /etc/machine-id (new id on first boot); dbus id links to it",
    verify=check,
)
def perform(ctx: SealContext) -> None:
    ctx.truncate("/etc/machine-id")
    dbus = "/var/lib/dbus/machine-id"
    if ctx.session.is_file(dbus) and not ctx.session.is_symlink(dbus):
        ctx.rm(dbus)
        if not ctx.dry_run:
            ctx.g.ln_s("/etc/machine-id", dbus)
