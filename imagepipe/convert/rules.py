"""Facts read from an image file's own headers, and the rules outputs must satisfy.

Why read the bytes ourselves: a preset's promise ("Azure accepts this", "ESXi imports this")
is about the file, not about the options we passed. Checking the header, footer or descriptor
of the file we wrote catches a qemu-img that ignored or changed an option, and the same
functions tell `imagepipe info` the subformat qemu-img does not report (vhd, vdi).
Each rule returns a list of problems (empty = fine); none raises on a malformed file.
"""

from __future__ import annotations

import os
import re
import struct
import uuid
from collections.abc import Callable
from pathlib import Path

from imagepipe.formats import vhd_footer

MiB = 1 << 20
Rule = Callable[[Path], list[str]]

VDI_TYPES = {1: "dynamic", 2: "fixed"}
VDI_SIGNATURE = 0xBEDA107F


def _read(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(size)


# ---- facts -------------------------------------------------------------------------------

def vmdk_descriptor(path: Path) -> dict[str, str]:
    """Key/values of a sparse vmdk's embedded descriptor (createType, ddb.adapterType, ...)."""
    head = _read(path, 0, 512)
    if head[:4] == b"KDMV":
        offset, size = struct.unpack("<QQ", head[28:44])
        text = _read(path, offset * 512, size * 512)
    else:  # a plain-text descriptor file
        text = head + _read(path, 512, 64 * 1024)
    values = {}
    for m in re.finditer(rb'^\s*([\w.]+)\s*=\s*"?([^"\r\n]*)"?', text.split(b"\0")[0], re.M):
        values[m.group(1).decode()] = m.group(2).decode(errors="replace")
    return values


def vdi_type(path: Path) -> str | None:
    head = _read(path, 0x40, 16)
    if len(head) < 16 or struct.unpack("<I", head[:4])[0] != VDI_SIGNATURE:
        return None
    return VDI_TYPES.get(struct.unpack("<I", head[12:16])[0], "unknown")


_VHDX_METADATA_REGION = uuid.UUID("8B7CA206-4790-4B9A-B8FE-575F050F886E").bytes_le
_VHDX_FILE_PARAMETERS = uuid.UUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B").bytes_le


def vhdx_type(path: Path) -> str | None:
    """`fixed` or `dynamic` from the VHDX File Parameters metadata (LeaveBlocksAllocated bit),
    `differencing` if it has a parent; None if the structures are not found."""
    regions = _read(path, 192 * 1024, 64 * 1024)
    if regions[:4] != b"regi":
        return None
    count = struct.unpack("<I", regions[8:12])[0]
    for i in range(min(count, 2047)):
        entry = regions[16 + 32 * i:48 + 32 * i]
        if entry[:16] != _VHDX_METADATA_REGION:
            continue
        offset = struct.unpack("<Q", entry[16:24])[0]
        table = _read(path, offset, 64 * 1024)
        if table[:8] != b"metadata":
            return None
        items = struct.unpack("<H", table[10:12])[0]
        for j in range(min(items, 2047)):
            item = table[32 + 32 * j:64 + 32 * j]
            if item[:16] == _VHDX_FILE_PARAMETERS:
                item_offset = struct.unpack("<I", item[16:20])[0]
                flags = struct.unpack("<I", _read(path, offset + item_offset + 4, 4))[0]
                return "differencing" if flags & 2 else "fixed" if flags & 1 else "dynamic"
    return None


def qcow2_header(path: Path) -> dict[str, int] | None:
    head = _read(path, 0, 112)
    if head[:4] != b"QFI\xfb" or len(head) < 72:
        return None
    version = struct.unpack(">I", head[4:8])[0]
    out = {"version": version, "incompatible": 0, "compression_type": 0}
    if version >= 3 and len(head) >= 105:
        out["incompatible"] = struct.unpack(">Q", head[72:80])[0]
        header_length = struct.unpack(">I", head[100:104])[0]
        if header_length > 104:
            out["compression_type"] = head[104]
    return out


def subformat(path: Path, fmt: str) -> str | None:
    """A short description of the variant: `compat 1.1`, `streamOptimized`, `fixed`, ..."""
    try:
        if fmt == "qcow2":
            h = qcow2_header(path)
            if h is None:
                return None
            text = "compat 1.1" if h["version"] >= 3 else "compat 0.10"
            return text + (", zstd" if h["compression_type"] == 1 else "")
        if fmt == "vmdk":
            return vmdk_descriptor(path).get("createType")
        if fmt == "vhd":
            footer = vhd_footer(path)
            return str(footer["disk_type"]) if footer else None
        if fmt == "vdi":
            return vdi_type(path)
        if fmt == "vhdx":
            return vhdx_type(path)
    except OSError:
        return None
    return None


# ---- rules -------------------------------------------------------------------------------

def qcow2_valid(path: Path) -> list[str]:
    """qcow2 header magic"""
    return [] if qcow2_header(path) else ["no qcow2 header (magic QFI\\xfb) at offset 0"]


def qcow2_v3(path: Path) -> list[str]:
    """qcow2 version 3 (compat 1.1)"""
    h = qcow2_header(path)
    if h is None:
        return qcow2_valid(path)
    return [] if h["version"] == 3 else [f"qcow2 version {h['version']}, expected 3 (compat 1.1)"]


def qcow2_zstd(path: Path) -> list[str]:
    """qcow2 header declares zstd compression"""
    h = qcow2_header(path)
    if h is None or h["compression_type"] != 1 or not h["incompatible"] & (1 << 3):
        return ["qcow2 header does not declare zstd compression"]
    return []


def vmdk_valid(path: Path) -> list[str]:
    """vmdk descriptor with a createType"""
    d = vmdk_descriptor(path)
    return [] if "createType" in d else ["no vmdk descriptor with a createType"]


def vmdk_create_type(expected: str, adapter: str | None = None) -> Rule:
    def rule(path: Path) -> list[str]:
        d = vmdk_descriptor(path)
        problems = []
        if d.get("createType") != expected:
            problems.append(f"vmdk createType is {d.get('createType')!r}, expected {expected!r}")
        if adapter and d.get("ddb.adapterType") != adapter:
            problems.append(f"vmdk adapter is {d.get('ddb.adapterType')!r}, expected {adapter!r}")
        return problems

    rule.__doc__ = f"vmdk createType {expected}" + (f", adapter {adapter}" if adapter else "")
    return rule


def vhd_valid(path: Path) -> list[str]:
    """VHD footer 'conectix' present"""
    return [] if vhd_footer(path) else ["no VHD footer ('conectix' in the last 512 bytes)"]


def vhd_azure(path: Path) -> list[str]:
    """fixed VHD, footer present, size a whole MiB, file = size + 512"""
    footer = vhd_footer(path)
    if footer is None:
        return vhd_valid(path)
    problems = []
    size = int(footer["current_size"])
    if footer["disk_type"] != "fixed":
        problems.append(f"VHD disk type is {footer['disk_type']}, Azure needs fixed")
    if size % MiB:
        problems.append(f"virtual size {size} is not a whole number of MiB")
    if os.path.getsize(path) != size + 512:
        problems.append(f"file size {os.path.getsize(path)} is not virtual size {size} + 512")
    return problems


def vhdx_valid(path: Path) -> list[str]:
    """vhdx signature"""
    return [] if _read(path, 0, 8) == b"vhdxfile" else ["no 'vhdxfile' signature at offset 0"]


def vhdx_dynamic(path: Path) -> list[str]:
    """vhdx signature, dynamic (File Parameters metadata)"""
    problems = vhdx_valid(path)
    kind = vhdx_type(path)
    if kind != "dynamic":
        problems.append(f"vhdx type is {kind or 'unreadable'}, expected dynamic")
    return problems


def vdi_valid(path: Path) -> list[str]:
    """VDI signature"""
    return [] if vdi_type(path) else ["no VDI signature 0xbeda107f at offset 0x40"]


# Structural rule every output of a format must pass, preset or not.
FORMAT_RULES: dict[str, Rule] = {
    "qcow2": qcow2_valid, "vmdk": vmdk_valid, "vhd": vhd_valid, "vhdx": vhdx_valid,
    "vdi": vdi_valid,
}
