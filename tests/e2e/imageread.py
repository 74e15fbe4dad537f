"""Read files back from built images with libguestfs: one read-only appliance for many disks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagepipe.tools.guestfs import new_handle


def read_files(images: list[Path], paths: list[str]) -> list[dict[str, str | None]]:
    """For each image (its root: the ext4 partition, after a BIOS boot partition and an ESP on
    hybrid disks): path -> text (None if absent)."""
    g: Any = new_handle()
    try:
        for img in images:
            g.add_drive_opts(str(img), readonly=True)
        g.launch()
        devices = g.list_devices()
        out: list[dict[str, str | None]] = []
        for dev in devices:
            parts = [p for p in g.list_partitions() if p.startswith(dev)]
            roots = [p for p in parts if g.vfs_type(p) == "ext4"]
            g.mount_ro(roots[0] if roots else parts[0] if parts else dev, "/")
            out.append({p: g.cat(p) if g.is_file(p) else None for p in paths})
            g.umount_all()
        return out
    finally:
        g.shutdown()
        g.close()


def dpkg_status(text: str) -> dict[str, str]:
    """name -> version of every installed package in a dpkg status file."""
    out: dict[str, str] = {}
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line[:1].isspace() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            out[fields["Package"]] = fields["Version"]
    return out
