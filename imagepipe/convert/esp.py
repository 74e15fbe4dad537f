"""Does a disk image have an EFI system partition? (Presets for UEFI-only platforms ask.)

Why: Hyper-V generation 2 VMs boot only with UEFI; a disk without an ESP (MBR + extlinux, a
BIOS-only install) converts fine and then never boots there. Reading the partition table costs
one `qemu-img dd` of the first 34 sectors (any input format) and a parse: no appliance.
"""

from __future__ import annotations

import struct
import tempfile
import uuid
from pathlib import Path

from imagepipe.errors import InputError
from imagepipe.tools.run import run

ESP_GUID = uuid.UUID("C12A7328-F81F-11D2-BA4B-00A0C93EC93B")
SECTOR = 512
MBR_ESP = 0xEF


def partition_kinds(head: bytes) -> tuple[str | None, list[str]]:
    """(table type "gpt" | "dos" | None, partition type names) from a disk's first sectors.
    GPT types are GUID strings (upper case), MBR types two hex digits."""
    if len(head) < SECTOR or head[510:512] != b"\x55\xaa":
        return None, []
    if head[SECTOR:SECTOR + 8] == b"EFI PART":
        entries_lba, count, size = struct.unpack_from("<QII", head, SECTOR + 72)
        types = []
        for i in range(count):
            off = entries_lba * SECTOR + i * size
            if off + 16 > len(head):
                break
            guid = uuid.UUID(bytes_le=head[off:off + 16])
            if guid.int:
                types.append(str(guid).upper())
        return "gpt", types
    mbr = [head[446 + 16 * i + 4] for i in range(4)]
    return "dos", [f"{t:02x}" for t in mbr if t]


def has_esp(head: bytes) -> bool:
    table, types = partition_kinds(head)
    if table == "gpt":
        return str(ESP_GUID).upper() in types
    return f"{MBR_ESP:02x}" in types


def read_head(src: Path, fmt: str, sectors: int = 34) -> bytes:
    """The first `sectors` sectors of the guest disk in `src` (any format qemu-img reads)."""
    with tempfile.TemporaryDirectory(prefix="imagepipe-head-") as tmp:
        out = Path(tmp) / "head.raw"
        run(["qemu-img", "dd", "-f", fmt, "-O", "raw", f"bs={SECTOR}", f"count={sectors}",
             f"if={src}", f"of={out}"], timeout=60)
        return out.read_bytes()


def require_uefi_bootable(src: Path, fmt: str, preset: str, platform: str) -> None:
    """Refuse (InputError, exit 2) to write `preset` from a partitioned disk with no EFI system
    partition. A disk with no partition table at all (a data disk, a test pattern) is not
    judged: there is nothing to tell its firmware by."""
    head = read_head(src, fmt)
    table, _ = partition_kinds(head)
    if table is not None and not has_esp(head):
        raise InputError(
            f"{src}: preset {preset!r} is for {platform}, which boots only with UEFI, but the "
            f"disk has no EFI system partition (partition table: {table})",
            "build the image with disk.firmware: hybrid or uefi, or use a preset for a "
            "BIOS platform")
