"""The disk formats imagepipe reads and writes, as one table.

Why a table: every per-format fact — qemu's driver name (`vhd` is
qemu's `vpc`), file extensions, whether `qemu-img check` works, the options that make a
correct default image, which `-o` keys are safe to pass through — lives here, so the argv
builders, the converter and the docs read one source instead of `if/elif` chains.

`ova` is not a disk format but a container (an OVF descriptor plus a streamOptimized vmdk in a
tar); it is listed in CONTAINERS and written by `imagepipe.convert.ova.write_ova`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from imagepipe.errors import InputError


def _ro(d: dict[str, str] | None = None) -> Mapping[str, str]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class Format:
    """One disk format.

    `extensions`: names that claim this format (the first is the canonical one).
    `loose_extensions`: names commonly used for this format *and* others (`.img`), so they
    choose an output format but never count as a claim about an input's content.
    `create_options`: what imagepipe passes by default, so outputs are correct out of the box
    (vhd without force_size grows the disk by CHS rounding; vhdx fixed is larger than the disk).
    `option_keys`: the `-o` keys users may set; backing/data-file/encryption keys are left out
    on purpose (they make an output depend on other host files or secrets).
    """

    name: str
    driver: str
    extensions: tuple[str, ...]
    summary: str
    checkable: bool
    create_options: Mapping[str, str] = field(default_factory=_ro)
    option_keys: frozenset[str] = frozenset()
    loose_extensions: tuple[str, ...] = ()
    # Options added by --compress (None: the format cannot be compressed by qemu-img -c).
    compress_options: Mapping[str, str] | None = None

    @property
    def extension(self) -> str:
        return self.extensions[0]


_COMMON = frozenset({"preallocation", "extent_size_hint", "nocow"})

FORMATS: Mapping[str, Format] = MappingProxyType({
    f.name: f
    for f in (
        Format("raw", "raw", (".raw",), "plain bytes, sparse on disk", checkable=False,
               option_keys=_COMMON, loose_extensions=(".img",)),
        Format("qcow2", "qcow2", (".qcow2",), "QEMU/KVM, oVirt, OpenStack", checkable=True,
               create_options=_ro({"compat": "1.1"}),
               option_keys=_COMMON | {"compat", "cluster_size", "compression_type",
                                      "lazy_refcounts", "refcount_bits", "extended_l2"},
               compress_options=_ro({"compression_type": "zstd"})),
        Format("vmdk", "vmdk", (".vmdk",), "VMware ESXi, Workstation, Fusion", checkable=True,
               create_options=_ro({"subformat": "monolithicSparse"}),
               option_keys=_COMMON | {"subformat", "adapter_type", "hwversion", "compat6",
                                      "toolsversion", "zeroed_grain"},
               compress_options=_ro({"subformat": "streamOptimized"})),
        Format("vhd", "vpc", (".vhd",), "Hyper-V (gen 1), Azure, Virtual PC", checkable=False,
               create_options=_ro({"subformat": "dynamic", "force_size": "on"}),
               option_keys=_COMMON | {"subformat", "force_size"}),
        Format("vhdx", "vhdx", (".vhdx",), "Hyper-V", checkable=True,
               create_options=_ro({"subformat": "dynamic"}),
               option_keys=_COMMON | {"subformat", "block_size", "block_state_zero",
                                      "log_size"}),
        Format("vdi", "vdi", (".vdi",), "VirtualBox", checkable=True,
               option_keys=_COMMON | {"static"}),
    )
})

# Containers: outputs that wrap a disk; written by their own module, not by qemu-img.
CONTAINERS: Mapping[str, str] = MappingProxyType({
    "ova": "imagepipe.convert.ova:write_ova",
})
CONTAINER_EXTENSIONS: Mapping[str, str] = MappingProxyType({".ova": "ova"})

_BY_DRIVER = {f.driver: f for f in FORMATS.values()}
_ALIASES = {"vpc": "vhd", "img": "raw"}


def names() -> list[str]:
    """Every format name a user may pass to `--to`, containers included."""
    return [*FORMATS, *CONTAINERS]


def get(name: str) -> Format:
    """The format called `name` (qemu driver names such as `vpc` are accepted too)."""
    key = _ALIASES.get(name.lower(), name.lower())
    try:
        return FORMATS[key]
    except KeyError:
        raise InputError(f"unknown disk format {name!r}",
                         "choose one of: " + ", ".join(names())) from None


def by_driver(driver: str) -> Format | None:
    """Map qemu-img's `format` field (e.g. `vpc`) back to our format, or None if unsupported."""
    return _BY_DRIVER.get(driver)


def claimed_by_extension(path: Path) -> Format | None:
    """The format that `path`'s extension *claims* (strict extensions only; `.img` claims none)."""
    suffix = path.suffix.lower()
    for f in FORMATS.values():
        if suffix in f.extensions:
            return f
    return None


def output_by_extension(path: Path) -> str | None:
    """The output format (or container) that DST's extension selects, loose ones included."""
    suffix = path.suffix.lower()
    if suffix in CONTAINER_EXTENSIONS:
        return CONTAINER_EXTENSIONS[suffix]
    for f in FORMATS.values():
        if suffix in f.extensions or suffix in f.loose_extensions:
            return f.name
    return None


def is_container(name: str) -> bool:
    return name.lower() in CONTAINERS


VHD_TYPES = {2: "fixed", 3: "dynamic", 4: "differencing"}


def vhd_footer(path: Path) -> dict[str, int | str] | None:
    """The VHD footer (last 512 bytes) as {disk_type, current_size}, or None if absent.
    Here, with the format table, because both the safety probe (a raw file that is really a
    fixed VHD) and the output rules read it."""
    size = os.path.getsize(path)
    if size < 512:
        return None
    with open(path, "rb") as f:
        f.seek(size - 512)
        footer = f.read(512)
    if footer[:8] != b"conectix":
        return None
    current_size = struct.unpack(">Q", footer[48:56])[0]
    disk_type = struct.unpack(">I", footer[60:64])[0]
    return {"disk_type": VHD_TYPES.get(disk_type, str(disk_type)), "current_size": current_size}
