"""Clones sharing a machine-id share DHCP client ids and journal ids (virt-sysprep's trap).

Leave /etc/machine-id EMPTY (systemd's first-boot semantics: a new id is generated at boot),
never delete it (a missing file breaks read-only roots) and never write a fixed id.
/var/lib/dbus/machine-id becomes a symlink to /etc/machine-id, as systemd sets it up.
"""

from __future__ import annotations

from imagepipe.seal import SealContext, register


@register(
    "machine-id",
    default=True,
    summary="Empty /etc/machine-id (new id on first boot); dbus id links to it",
)
def perform(ctx: SealContext) -> None:
    ctx.truncate("/etc/machine-id")
    dbus = "/var/lib/dbus/machine-id"
    if ctx.session.is_file(dbus) and not ctx.session.is_symlink(dbus):
        ctx.rm(dbus)
        if not ctx.dry_run:
            ctx.g.ln_s("/etc/machine-id", dbus)
