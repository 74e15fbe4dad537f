"""`imagepipe info IMAGE`: what an image is, read safely (no backing file is opened blindly)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples

MAX_CHAIN = 16


def _follow_chain(top: dict[str, Any]) -> list[dict[str, Any]]:
    """Backing files, top-down, followed only while they are plain local files.

    Why not `qemu-img info --backing-chain`: a crafted image can name a `json:` or network URL
    as its backing file; we list such names but never open them.
    """
    from imagepipe.tools import qemu_img

    chain: list[dict[str, Any]] = []
    current = top
    while len(chain) < MAX_CHAIN:
        name = current.get("full-backing-filename") or current.get("backing-filename")
        if not name:
            break
        entry: dict[str, Any] = {"path": str(name),
                                 "format": current.get("backing-filename-format")}
        chain.append(entry)
        if name.startswith("json:") or "://" in name or not os.path.isfile(name):
            entry["opened"] = False
            entry["note"] = "not opened: missing, or not a plain local file"
            break
        if not entry["format"]:
            entry["opened"] = False
            entry["note"] = "not opened: the image does not declare the backing format"
            break
        try:
            current = qemu_img.info(name, entry["format"])
        except qemu_img.QemuImgError as exc:
            entry["opened"] = False
            entry["note"] = f"cannot read: {exc.message.splitlines()[-1].strip()}"
            break
        entry["opened"] = True
        entry["format"] = current.get("format")
        entry["virtual_size"] = current.get("virtual-size")
    return chain


def _facts(path: Path, checksum: bool) -> tuple[dict[str, Any], list[str]]:
    from imagepipe.convert import rules
    from imagepipe.hashing import file_digest
    from imagepipe.tools.probe import extension_mismatch, inspect_image

    info, refs = inspect_image(path)
    warnings = []
    mismatch = extension_mismatch(path, info)
    if mismatch:
        warnings.append(mismatch)
    specific = (info.get("format-specific") or {}).get("data") or {}
    fmt = info["imagepipe-format"]
    st = os.stat(path)
    data: dict[str, Any] = {
        "path": str(path), "format": fmt, "driver": info["format"],
        "subformat": rules.subformat(path, fmt), "virtual_size": info.get("virtual-size"),
        "file_size": st.st_size, "allocated_size": st.st_blocks * 512,
        "cluster_size": info.get("cluster-size"),
        "backing_chain": _follow_chain(info),
        "external_files": [{"kind": k, "path": p} for k, p in refs],
        "corrupt": bool(specific.get("corrupt", False)),
        "dirty": bool(info.get("dirty-flag", False)),
        "sha256": file_digest(path) if checksum else None,
    }
    if data["corrupt"]:
        warnings.append("the image is marked corrupt")
    if refs:
        warnings.append(f"{refs[0][0]}: {refs[0][1]} (convert refuses it without "
                        "--allow-backing)")
    return data, warnings


def _size(n: int | None) -> str:
    from imagepipe.convert.report import format_size

    return "unknown" if n is None else format_size(n)


def _text(d: dict[str, Any]) -> str:
    kind = d["format"] + (f" ({d['subformat']})" if d["subformat"] else "")
    lines = [f"image:           {d['path']}", f"format:          {kind}",
             f"virtual size:    {_size(d['virtual_size'])}",
             f"file size:       {_size(d['file_size'])}",
             f"allocated size:  {_size(d['allocated_size'])}",
             f"corrupt:         {'yes' if d['corrupt'] else 'no'}",
             f"dirty:           {'yes' if d['dirty'] else 'no'}"]
    if d["backing_chain"]:
        lines.append("backing chain:")
        lines += [f"  -> {b['path']} ({b.get('format') or '?'})"
                  + (f" [{b['note']}]" if b.get("note") else "") for b in d["backing_chain"]]
    else:
        lines.append("backing chain:   none")
    for ref in d["external_files"]:
        if ref["kind"] != "backing file":
            lines.append(f"{ref['kind']}: {ref['path']}")
    if d["sha256"]:
        lines.append(f"sha256:          {d['sha256']}")
    return "\n".join(lines)


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe info disk.qcow2",
                               "imagepipe info disk.vmdk --checksum --json"))
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--json", "json_mode", is_flag=True, help="Print a JSON result event.")
@click.option("--checksum", is_flag=True, help="Also compute the file's sha256 (reads it all).")
def info(image: Path, json_mode: bool, checksum: bool) -> None:
    """Show IMAGE's format, subformat, sizes, backing chain, corrupt/dirty flags.

    The format is read from the content; a name that claims another format is reported as a
    warning (convert refuses such a file).
    """
    if json_mode:
        ui.settings.json = True
    data, warnings = _facts(image, checksum)
    for w in warnings:
        ui.warn(w)
    ui.result(_text(data), **data, warnings=warnings)
