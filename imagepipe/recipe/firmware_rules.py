"""Recipe rules about boot firmware (`disk.firmware`, `test.boot.firmware`, UEFI-only presets).

Why at validate time: a bios-only disk published for a UEFI-only platform (Hyper-V generation 2)
cannot boot there, and a boot test asking for firmware the disk cannot boot would fail only
after the whole build; both are visible from the recipe alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imagepipe.bases.bootloader import CAPABLE

if TYPE_CHECKING:
    from imagepipe.recipe.validate import Checker


def uefi_presets() -> dict[str, str]:
    """Preset name -> its platform, for presets whose platform boots only with UEFI."""
    from imagepipe.convert.presets import PRESETS

    return {p.name: p.summary for p in PRESETS.values() if p.needs_uefi}


def disk_firmware(d: dict[str, Any]) -> str:
    disk = d.get("disk") if isinstance(d.get("disk"), dict) else {}
    fw = disk.get("firmware") if disk else None
    return fw if isinstance(fw, str) else "hybrid"


def apply(c: Checker, d: dict[str, Any]) -> None:
    fw = disk_firmware(d)
    src = d.get("source") if isinstance(d.get("source"), dict) else {}
    bootstrapped = bool(src and src.get("bootstrap") is not None)
    needs = uefi_presets()
    if bootstrapped and fw == "bios":
        for i, out in enumerate(d.get("outputs") or ()):
            preset = out.get("preset") if isinstance(out, dict) else None
            if preset in needs:
                c.report(("outputs", i, "preset"),
                         f"preset {preset!r} is for {needs[preset]}, which boots only with "
                         "UEFI, but disk.firmware: bios makes a disk without an EFI system "
                         "partition",
                         "set disk.firmware: hybrid (boots on BIOS and UEFI) or uefi, or "
                         "drop this output")
    test = d.get("test") if isinstance(d.get("test"), dict) else {}
    boot = test.get("boot") if test else None
    wanted = boot.get("firmware") if isinstance(boot, dict) else None
    if isinstance(wanted, str):
        wanted = [wanted]
    capable = CAPABLE[fw] if bootstrapped else ("bios", "uefi", "secureboot")
    for i, name in enumerate(wanted or ()):
        if isinstance(name, str) and name not in capable:
            c.report(("test", "boot", "firmware", i),
                     f"the disk is built for disk.firmware: {fw}, which cannot boot with "
                     f"{name} firmware",
                     f"use {' or '.join(capable)}, or set disk.firmware: hybrid")
