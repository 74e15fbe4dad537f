"""Safe inspection of an input image before anything reads its data.

Why: qemu-img trusts image metadata. A crafted qcow2 can name /etc/shadow as its backing file
(or external data file), a vmdk descriptor can name any host file as an extent, and a raw file
whose guest wrote a qcow2 header into sector 0 turns into "qcow2" when probed. So the format
comes from `qemu-img info` (which opens no backing file), the extension must agree with the
content, every reference to another host file is refused unless the user allows it, and from
then on every qemu-img call gets an explicit `-f`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imagepipe import formats
from imagepipe.errors import ImageError
from imagepipe.tools import qemu_img

BACKING_HINT = ("a crafted image can point at host files such as /etc/shadow; pass "
                "--allow-backing only if you trust this image")


def _external_files(path: Path, info: dict[str, Any]) -> list[tuple[str, str]]:
    """Every other host file the image refers to, as (kind, path)."""
    refs: list[tuple[str, str]] = []
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    if backing:
        refs.append(("backing file", str(backing)))
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        refs.append(("external data file", str(data["data-file"])))
    me = os.path.realpath(path)
    for extent in data.get("extents") or []:
        name = extent.get("filename")
        if name and os.path.realpath(name) != me and not _sibling_file(me, name):
            real = os.path.realpath(name)
            refs.append(("vmdk extent", str(name) if real == os.path.abspath(name)
                         else f"{name} (resolves to {real})"))
    return refs


def _sibling_file(descriptor: str, name: str) -> bool:
    """A vmdk extent that really is a regular file next to its descriptor (monolithicFlat's
    `disk-flat.vmdk`) is part of the image; one that resolves anywhere else (a `../` path, a
    symlink to /etc/shadow) is not."""
    real = os.path.realpath(name)
    return os.path.dirname(real) == os.path.dirname(descriptor) and os.path.isfile(real)


def inspect_image(path: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`qemu-img info` plus our format name and the external files, without judging them.

    A fixed VHD has its only signature at the end, so qemu probes it as raw; we look for the
    footer ourselves and re-read it as vpc. Raises ImageError for a missing/unreadable file or
    a format imagepipe does not handle.
    """
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not a disk image")
    if not os.access(path, os.R_OK):
        raise ImageError(f"{path}: not readable (permission denied)")
    try:
        info: dict[str, Any] = qemu_img.info(path)
        if info.get("format") == "raw" and formats.vhd_footer(path) is not None:
            info = qemu_img.info(path, "vpc")
    except qemu_img.QemuImgError as exc:
        raise ImageError(f"{path}: qemu-img cannot read it: {exc}") from None
    fmt = formats.by_driver(str(info.get("format")))
    if fmt is None:
        raise ImageError(f"{path}: format {info.get('format')!r} is not supported",
                         "imagepipe reads " + ", ".join(formats.FORMATS))
    info["imagepipe-format"] = fmt.name
    return info, _external_files(path, info)


def extension_mismatch(path: Path, info: dict[str, Any]) -> str | None:
    """A message when the file's extension claims another format than its content has."""
    claimed = formats.claimed_by_extension(path)
    actual = info["imagepipe-format"]
    if claimed is not None and claimed.name != actual:
        return (f"{path}: the extension {path.suffix} says {claimed.name} but the content "
                f"is {actual}")
    return None


def probe_image(path: Path, allow_backing: bool = False) -> dict[str, Any]:
    """Parsed `qemu-img info` of an image that is safe to read, with `imagepipe-format` added
    (our name: raw, qcow2, vmdk, vhd, vhdx, vdi; `format` stays qemu's driver name).

    Raises ImageError (exit 2) on: extension/content mismatch (naming both), a backing file,
    external data file or foreign vmdk extent (naming the path) unless `allow_backing`, an
    image marked corrupt, an empty image.
    """
    path = Path(path)
    info, refs = inspect_image(path)
    mismatch = extension_mismatch(path, info)
    if mismatch:
        raise ImageError(mismatch, "rename the file to match its content, or check where it "
                         "came from")
    if refs and not allow_backing:
        kind, target = refs[0]
        raise ImageError(f"{path}: refusing an image with a {kind}: {target}", BACKING_HINT)
    specific = (info.get("format-specific") or {}).get("data") or {}
    if specific.get("corrupt"):
        raise ImageError(f"{path}: the image is marked corrupt",
                         f"repair a copy first: qemu-img check -r all -f {info['format']} COPY")
    if not info.get("virtual-size"):
        raise ImageError(f"{path}: the image is empty (virtual size 0)")
    return info


RAW_HINT = ("if it really is a raw disk image, say so: `-f raw` (convert) or `--format raw` "
            "(ovirt upload-disk)")


def refuse_unrecognised(path: Path, info: dict[str, Any], *, declared: str | None = None) -> None:
    """Refuse (ImageError, exit 2) a file that is probably not a disk image at all.

    Why: qemu calls every byte string it does not recognise "raw", so `convert notes.txt
    out.qcow2` would succeed and even verify. A raw image is accepted when its name is an
    image's (`.raw`, `.img`, ...), when blkid recognises a partition table or filesystem in
    it, or when the user declared it (`declared="raw"`). A declared format that contradicts
    the content is refused too: reading a qcow2 as raw bytes is never what was meant.
    """
    from imagepipe.tools.run import run

    actual = info["imagepipe-format"]
    if declared is not None and formats.get(declared).name != actual:
        raise ImageError(f"{path}: you said {declared}, but the content is {actual}",
                         "drop the format option, or check the file")
    if actual != "raw" or declared is not None:
        return
    if formats.output_by_extension(path) is not None or path.suffix.lower() == ".iso":
        return
    probe = run(["blkid", "-p", "-o", "export", str(path)], check=False)
    if "TYPE=" in probe.stdout:  # TYPE= (filesystem) or PTTYPE= (partition table)
        return
    name = f"the extension {path.suffix}" if path.suffix else "a name without an extension"
    raise ImageError(f"{path}: not a disk image: {name} is no image's and the content is no "
                     "known format (no partition table, no filesystem)", RAW_HINT)
