"""Clones sharing LVM PV/VG UUIDs collide when two disks meet in one host."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("lvm-uuids", default=True, summary="Give LVM physical and volume groups new UUIDs")
def perform(ctx: SealContext) -> None:
    if not ctx.g.vgs():
        return
    ctx.edited.setdefault(ctx.current, []).append("lvm: pv/vg uuids")
    if not ctx.dry_run:
        ctx.g.pvchange_uuid_all()
        ctx.g.vgchange_uuid_all()
