"""Hyper-V / Azure outputs: qemu emulates no VMBus, so prove the drivers are in the image.

Why the initramfs: the root disk sits behind hv_storvsc (on hv_vmbus); if the initramfs lacks
it, the kernel never finds its root filesystem on Hyper-V or Azure, whatever /lib/modules
holds. hv_netvsc is needed for DHCP and cloud-init's datasource; it may load from the root
filesystem, but Debian's initramfs (MODULES=most) carries it too. A driver built into the kernel
(`modules.builtin`) counts as present. The initrd is copied out read-only with libguestfs and
listed with the host's `lsinitramfs` (it understands zstd and the early-microcode prefix).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from imagepipe.tools.run import run

DRIVERS: dict[str, tuple[str, ...]] = {
    "storvsc+netvsc": ("hv_vmbus", "hv_storvsc", "hv_netvsc"),
}
ALIASES = {"hyperv": "storvsc+netvsc", "azure": "storvsc+netvsc"}


def modules_in(listing: str) -> set[str]:
    """Module names (hv_storvsc) of the .ko files in an lsinitramfs listing."""
    return {m.group(1).replace("-", "_")
            for m in re.finditer(r"/([^/\s]+)\.ko(?:\.(?:xz|zst|gz))?$", listing, re.M)}


def check_drivers(image: Path, profile: str = "storvsc+netvsc", fmt: str | None = None,
                  accel: str | None = None) -> dict[str, Any]:
    """{passed, kernel, initrd, drivers: {name: initramfs|builtin|missing}} for the newest
    kernel in the image."""
    from imagepipe.tools.guestfs import GuestSession

    profile = ALIASES.get(profile, profile)
    wanted = DRIVERS[profile]
    with tempfile.TemporaryDirectory(prefix="imagepipe-initrd-") as tmp, \
            GuestSession(image, fmt=fmt, readonly=True, accel=accel) as s:
        initrds = s.glob("/boot/initrd.img-*")
        if not initrds:
            return {"passed": False, "hardware": profile, "kernel": None, "initrd": None,
                    "drivers": dict.fromkeys(wanted, "missing"),
                    "detail": "no /boot/initrd.img-* in the image"}
        initrd = max(initrds, key=_version_key)
        version = initrd.removeprefix("/boot/initrd.img-")
        local = Path(tmp) / "initrd.img"
        s.g.download(initrd, str(local))
        builtin_path = f"/lib/modules/{version}/modules.builtin"
        builtin = s.read_text(builtin_path) if s.is_file(builtin_path) else ""
        listing = run(["lsinitramfs", str(local)], timeout=300).stdout
    in_initrd, in_kernel = modules_in(listing), modules_in(builtin)
    drivers = {d: "initramfs" if d in in_initrd else "builtin" if d in in_kernel else "missing"
               for d in wanted}
    missing = [d for d, where in drivers.items() if where == "missing"]
    return {"passed": not missing, "hardware": profile, "kernel": version, "initrd": initrd,
            "drivers": drivers,
            "detail": f"missing from {initrd}: {', '.join(missing)}" if missing else
            f"{', '.join(wanted)} present ({initrd})"}


def _version_key(path: str) -> list[int]:
    return [int(x) for x in re.findall(r"\d+", path)]
