"""Unattended installs from an installer ISO: remaster, boot once, wait for power-off.

Why this way (oVirt's "Run Once", a template rule in docs/recipes.md): the installer ISO is
remastered with pycdlib (pure Python, no mounts, no root) to carry the kickstart/preseed file
and boot straight into an unattended install with the console on the serial port; qemu boots it
ONCE with `-no-reboot`, so the end of the install (power-off or reboot) ends qemu, and the
CD-ROM exists only for that one run: the artifact is the disk alone, so no later boot can fall
through to the installer. The install is bounded by the recipe's timeout; on timeout qemu is
killed and the console log is kept as evidence.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.durable import publish
from imagepipe.errors import ImagepipeError, InputError, TimeoutExpired
from imagepipe.recipe.model import IsoInstall
from imagepipe.tools import qemu_img
from imagepipe.tools.qemu import VM, Drive

DEFAULT_DISK_SIZE = 20 * 1024**3
SERIAL_ARGS = "console=tty0 console=ttyS0,115200n8"
# Boot menu configs an installer ISO may carry (BIOS isolinux first: qemu boots SeaBIOS).
ISOLINUX_CONFIGS = ("/isolinux/isolinux.cfg", "/isolinux/txt.cfg", "/syslinux/syslinux.cfg")
GRUB_CONFIGS = ("/EFI/BOOT/grub.cfg", "/boot/grub/grub.cfg")


class InstallFailed(ImagepipeError):
    """The installer ended without installing (or timed out); the console log is kept."""


def answer_files(install: IsoInstall) -> dict[str, bytes]:
    """The unattended-install files to add at the ISO's root, by their name on the ISO."""
    files: dict[str, bytes] = {}
    if install.kickstart is not None:
        files["ks.cfg"] = Path(install.kickstart).read_bytes()
    if install.preseed is not None:
        files["preseed.cfg"] = Path(install.preseed).read_bytes()
    return files


def boot_args(install: IsoInstall) -> str:
    """Kernel arguments that make the installer find its answers and log to the serial port."""
    args = [SERIAL_ARGS]
    if install.kickstart is not None:
        args.append("inst.ks=cdrom:/ks.cfg inst.text")
    if install.preseed is not None:
        args.append("auto=true priority=critical preseed/file=/cdrom/preseed.cfg")
    if install.boot_args:
        args.append(install.boot_args)
    return " ".join(args)


# ---- boot menu edits (pure text, unit tested) ---------------------------------------------------

def patch_isolinux(text: str, args: str) -> str:
    """Boot the first installer entry after 0.1 s with `args` appended, menu on serial too."""
    out = ["serial 0 115200"]
    first_label_done = False
    in_first = False
    for line in text.splitlines():
        word = line.strip().split(None, 1)[0].lower() if line.strip() else ""
        if word == "serial":
            continue
        if word == "timeout":
            out.append("timeout 1")
            continue
        if word == "menu" and line.strip().lower().startswith("menu default"):
            continue
        if word == "label":
            in_first = not first_label_done
            first_label_done = True
            out.append(line)
            if in_first:
                out.append("  menu default")
            continue
        if word == "append" and "initrd" in line or word == "append" and in_first:
            line = f"{line.rstrip()} {args}"
        out.append(line)
    if not any(line.strip().lower().startswith("timeout") for line in out):
        out.insert(1, "timeout 1")
    # `default` names the entry when no menu UI is loaded; point it at the first label.
    labels = [ln.split(None, 1)[1].strip() for ln in out
              if ln.strip().lower().startswith("label ") and len(ln.split()) > 1]
    out = [ln for ln in out if not ln.strip().lower().startswith("default ")]
    if labels:
        out.insert(1, f"default {labels[0]}")
    return "\n".join(out) + "\n"


def patch_grub(text: str, args: str) -> str:
    """Same for grub: default entry 0, 1 s timeout, `args` on every linux line."""
    text = re.sub(r"^(\s*set\s+timeout)=.*$", r"\1=1", text, flags=re.M)
    text = re.sub(r"^(\s*set\s+default)=.*$", r'\1="0"', text, flags=re.M)
    return re.sub(r"^(\s*linux(?:efi)?\s+\S+.*?)\s*$", lambda m: f"{m.group(1)} {args}",
                  text, flags=re.M)


# ---- the ISO ---------------------------------------------------------------------------------

def remaster_iso(src: Path, out: Path, *, files: Mapping[str, bytes], args: str) -> list[str]:
    """Write a copy of `src` at `out` with `files` at its root and its boot menus patched.
    Returns the configs patched. The El Torito boot record is kept by pycdlib."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    try:
        iso.open(str(src))
    except pycdlib.pycdlibexception.PyCdlibException as exc:
        raise InputError(f"{src}: not a readable ISO 9660 image: {exc}") from None
    patched: list[str] = []
    try:
        for name, data in files.items():
            _put(iso, f"/{name}", data)
        for path, patch in [*((p, patch_isolinux) for p in ISOLINUX_CONFIGS),
                            *((p, patch_grub) for p in GRUB_CONFIGS)]:
            old = _get(iso, path)
            if old is not None:
                _put(iso, path, patch(old.decode("utf-8", "replace"), args).encode())
                patched.append(path)
        if not any(p in ISOLINUX_CONFIGS for p in patched):
            raise InputError(f"{src}: no isolinux boot menu found ({', '.join(ISOLINUX_CONFIGS)})",
                             "imagepipe remasters BIOS-bootable installer ISOs (isolinux)")
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        try:
            iso.write(str(tmp))
            publish(tmp, out, force=True)
        finally:
            tmp.unlink(missing_ok=True)
    finally:
        iso.close()
    return patched


def _facade_kw(iso: Any, path: str) -> dict[str, str]:
    """The keyword that names `path` in the richest namespace the ISO has."""
    if iso.has_rock_ridge():
        return {"rr_path": path}
    if iso.has_joliet():
        return {"joliet_path": path}
    return {"iso_path": path.upper() + ";1"}


def _get(iso: Any, path: str) -> bytes | None:
    import pycdlib

    buf = io.BytesIO()
    try:
        iso.get_file_from_iso_fp(buf, **_facade_kw(iso, path))
    except pycdlib.pycdlibexception.PyCdlibException:
        return None
    return buf.getvalue()


def _put(iso: Any, path: str, data: bytes) -> None:
    """Add or replace the file `path` in every namespace the ISO has."""
    import pycdlib

    iso_path = None
    try:
        rec = iso.get_record(**_facade_kw(iso, path))
        iso_path = iso.full_path_from_dirrecord(rec)
    except pycdlib.pycdlibexception.PyCdlibException:
        pass
    if iso_path is not None and not iso_path.startswith("/"):
        iso_path = None
    if iso_path is not None:
        iso.rm_file(iso_path=iso_path)
    else:
        parent, name = path.rsplit("/", 1)
        parent_rec = iso.get_record(**_facade_kw(iso, parent or "/"))
        parent_iso = iso.full_path_from_dirrecord(parent_rec).rstrip("/")
        stem, _, ext = name.upper().partition(".")
        iso_path = f"{parent_iso}/{re.sub(r'[^A-Z0-9_]', '_', stem)[:8]}.{ext[:3]};1"
    kw: dict[str, Any] = {"iso_path": iso_path}
    if iso.has_rock_ridge():
        kw["rr_name"] = path.rsplit("/", 1)[1]
    if iso.has_joliet():
        kw["joliet_path"] = path
    if iso.has_udf():
        kw["udf_path"] = path
    iso.add_fp(io.BytesIO(data), len(data), **kw)


# ---- the install -----------------------------------------------------------------------------

def install_from_iso(iso: Path, out: Path, *, install: IsoInstall, size: int | None = None,
                     log_dir: Path, accel: str | None = None, cpus: int = 2) -> dict[str, Any]:
    """Remaster `iso`, install onto a new qcow2 disk `out` (renamed into place only when the
    installer powered off by itself), and return the manifest record."""
    log_dir.mkdir(parents=True, exist_ok=True)
    work = out.with_name(f".{out.name}.work-{os.getpid()}")
    work.mkdir()
    console_log = log_dir / "install-console.log"
    try:
        remastered = work / "install.iso"
        patched = remaster_iso(iso, remastered, files=answer_files(install),
                               args=boot_args(install))
        disk = work / "disk.qcow2"
        qemu_img.create(disk, "qcow2", size or DEFAULT_DISK_SIZE)
        empty_size = int(qemu_img.info(disk, "qcow2").get("actual-size", 0))
        ui.info(f"install: booting {iso.name} once (timeout {install.timeout}s, "
                f"console: {console_log})")
        start = time.monotonic()
        with VM(disk, workdir=work / "vm", disk_fmt="qcow2", overlay=False,
                drives=[Drive(remastered, media="cdrom")], memory=install.memory, cpus=cpus,
                accel=accel, boot="order=d", no_reboot=True, console_log=console_log) as vm:
            if not vm.wait_exit(install.timeout):
                vm.kill()
                raise TimeoutExpired(
                    f"the installer did not power off within {install.timeout}s; qemu was killed",
                    f"see the console log {console_log}; raise source.iso.install.timeout if "
                    "the install is just slow")
        seconds = round(time.monotonic() - start, 1)
        if int(qemu_img.info(disk, "qcow2").get("actual-size", 0)) <= empty_size:
            raise InstallFailed("the installer powered off without writing to the disk",
                                f"see the console log {console_log}")
        publish(disk, out, force=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"iso": str(iso), "patched": patched, "answer_files": sorted(answer_files(install)),
            "install_seconds": seconds, "console_log": str(console_log),
            "size": size or DEFAULT_DISK_SIZE}
