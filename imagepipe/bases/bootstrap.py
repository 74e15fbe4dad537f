"""Base images from packages: mmdebstrap -> rootfs tarball -> bootable disk, no host mounts.

Why this way (measured): mmdebstrap in `unshare` mode builds the root filesystem
as a tarball without touching the host's mount table (~70-95 s for the httpd package set); the
disk is then made from the tarball without loop devices or mounts (imagepipe.bases.rootfs_disk). The
tarball is its own artifact: a recipe change after the package list (a cloud-config, a disk
size) reuses it. The mirror is probed first, with a bound, so an offline host fails in seconds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.apt.sources import COMPONENTS, MISSING_PATTERNS, MirrorError, source_entries
from imagepipe.bases import bootloader
from imagepipe.bases.rootfs_disk import DiskTooSmall, build_bootstrap_disk  # the agreed name: here
from imagepipe.durable import publish
from imagepipe.errors import ImagepipeError, InputError, ToolError
from imagepipe.recipe.model import BootstrapSource
from imagepipe.tools.run import run

# Packages every bootstrapped image needs to boot, get DHCP and run cloud-init cleanly.
REQUIRED_PACKAGES: dict[str, tuple[str, ...]] = {
    "debian": ("linux-image-amd64", "systemd-sysv", "udev", "openssh-server", "cloud-init",
               "ifupdown", "isc-dhcp-client", "netbase", "iproute2", "sudo", "e2fsprogs",
               "initramfs-tools", "dbus"),
    # Ubuntu renders networking with netplan; ifupdown lives in universe there.
    "ubuntu": ("linux-image-virtual", "systemd-sysv", "udev", "openssh-server", "cloud-init",
               "netplan.io", "iproute2", "sudo", "e2fsprogs", "initramfs-tools", "dbus"),
}
# Kernel flavours (`source.bootstrap.kernel`): the first of each distro is the default. The
# recipe's kernel replaces REQUIRED_PACKAGES' one (the list is a floor, not an addition).
KERNELS: dict[str, dict[str, str]] = {
    "debian": {"generic": "linux-image-amd64", "cloud": "linux-image-cloud-amd64"},
    "ubuntu": {"virtual": "linux-image-virtual", "generic": "linux-image-generic"},
}
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian",
                   "ubuntu": "http://archive.ubuntu.com/ubuntu"}
KEYRINGS = {"ubuntu": Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")}
# Documentation and translations are dead weight in a template (and ~10% of the tar).
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-exclude=/usr/share/info/*")
FORMAT_VERSION = 3  # bump when the tarball recipe below changes what it produces
# initramfs-tools puts fsck into the initramfs only for the root filesystem type it can find,
# and in a chroot it finds none: every boot would say "fsck not present". The root is ext4.
FSTYPE_HOOK = ('mkdir -p "$1/etc/initramfs-tools/conf.d" && '
               'echo FSTYPE=ext4 > "$1/etc/initramfs-tools/conf.d/imagepipe-fstype"')


# ---- the mirror --------------------------------------------------------------------------------




def host_mirror(distro: str = "debian", apt_dir: Path = Path("/etc/apt")) -> str:
    """The host's own apt mirror for `distro` (the only mirror an offline build host reaches),
    falling back to the distribution's default mirror."""
    for uri, suites in source_entries(apt_dir):
        if distro not in uri or "security" in uri:
            continue
        if suites and all(s.endswith(("-security", "-updates", "-backports")) for s in suites):
            continue
        return uri.rstrip("/")
    return DEFAULT_MIRRORS.get(distro, DEFAULT_MIRRORS["debian"])


def check_mirror(mirror: str, suite: str, timeout: float = 20) -> None:
    """Fail fast (within `timeout`, DNS included) when the mirror or the suite is unreachable;
    mmdebstrap itself would retry for minutes before saying so."""
    if not mirror.startswith(("http://", "https://")):
        return  # file:, copy:, mirror+file: ... checked by mmdebstrap itself
    url = f"{mirror}/dists/{suite}/Release"
    outcome: dict[str, Any] = {}

    def probe() -> None:
        import requests

        try:
            outcome["status"] = requests.head(url, timeout=(timeout / 2, timeout / 2),
                                              allow_redirects=True).status_code
        except Exception as exc:  # noqa: BLE001 - reported below with the URL
            outcome["error"] = exc

    t = threading.Thread(target=probe, daemon=True)  # getaddrinfo has no timeout of its own
    t.start()
    t.join(timeout)
    hint = ("check the network, or set source.bootstrap.mirror in the recipe to a mirror "
            "this machine reaches")
    if t.is_alive():
        raise MirrorError(f"package mirror {mirror} did not answer within {timeout:.0f}s", hint)
    if "error" in outcome:
        raise MirrorError(f"package mirror {mirror} is unreachable: "
                          f"{type(outcome['error']).__name__}: {outcome['error']}", hint)
    if outcome["status"] == 404:
        raise InputError(f"suite {suite!r} not found on {mirror} ({url}: 404)",
                         "check source.bootstrap.suite in the recipe")
    if outcome["status"] >= 400:
        raise MirrorError(f"package mirror {mirror} answered HTTP {outcome['status']} for {url}",
                          hint)


# ---- the tarball -------------------------------------------------------------------------------

def package_list(src: BootstrapSource,
                 firmware: str = bootloader.DEFAULT_FIRMWARE) -> list[str]:
    """Required base packages (with the recipe's kernel) + the bootloader's + the recipe's, in
    order, without duplicates."""
    if src.distro not in REQUIRED_PACKAGES:
        raise InputError(f"unsupported bootstrap distro {src.distro!r}",
                         f"use one of: {', '.join(REQUIRED_PACKAGES)}")
    return list(dict.fromkeys([*required_with_kernel(src),
                               *firmware_packages(src.distro, firmware), *src.packages]))


def firmware_packages(distro: str, firmware: str) -> tuple[str, ...]:
    """The bootloader packages `disk.firmware` needs (GRUB for BIOS, signed shim + GRUB for
    UEFI, syslinux for the MBR + extlinux disk): see imagepipe.bases.bootloader."""
    return bootloader.bootloader_packages(distro, firmware)


def is_kernel_package(name: str) -> bool:
    return name.startswith("linux-image-")


def kernel_conflict(src: BootstrapSource) -> str | None:
    """Why the recipe would get two kernels (each ~100-400 MB of modules), or None."""
    own = list(dict.fromkeys(p for p in src.packages if is_kernel_package(p)))
    if len(own) > 1:
        return f"two kernels: {own[0]} and {own[1]}"
    flavours = KERNELS.get(src.distro, {})
    if src.kernel and own and src.kernel in flavours and flavours[src.kernel] != own[0]:
        return (f"kernel: {src.kernel} means {flavours[src.kernel]}, but packages also "
                f"lists {own[0]}")
    return None


def kernel_package(src: BootstrapSource) -> str:
    """The one kernel package the image gets: `kernel:`'s flavour, else the recipe's own
    linux-image-*, else the distro's default flavour."""
    flavours = KERNELS.get(src.distro, KERNELS["debian"])
    if src.kernel:
        if src.kernel not in flavours:
            raise InputError(f"kernel {src.kernel!r} is not a {src.distro} kernel flavour",
                             "use one of: " + ", ".join(flavours))
        return flavours[src.kernel]
    own = next((p for p in src.packages if is_kernel_package(p)), None)
    return own or next(iter(flavours.values()))


def required_with_kernel(src: BootstrapSource) -> list[str]:
    """REQUIRED_PACKAGES as a floor: its default kernel is replaced by the recipe's."""
    kernel = kernel_package(src)
    return [kernel if is_kernel_package(p) else p for p in REQUIRED_PACKAGES[src.distro]]


def resolve_mirror(src: BootstrapSource) -> str:
    return (src.mirror or host_mirror(src.distro)).rstrip("/")


def mmdebstrap_argv(src: BootstrapSource, mirror: str, out: Path,
                    firmware: str = bootloader.DEFAULT_FIRMWARE, *,
                    pins: Sequence[str] | None = None, sources: Sequence[str] | None = None,
                    hooks: Sequence[str] = ()) -> list[str]:
    """mmdebstrap's command line. `pins` (`name=version` of the resolved set) replaces the
    package list, `sources` (one-line `deb` entries of every repository) the bare mirror."""
    include = list(pins) if pins is not None else package_list(src, firmware)
    argv = ["mmdebstrap", "--mode=unshare", f"--variant={src.variant}",
            f"--components={COMPONENTS.get(src.distro, 'main')}",
            f"--include={','.join(include)}"]
    argv += [f"--dpkgopt={opt}" for opt in DPKG_OPTIONS]
    argv.append(f"--essential-hook={FSTYPE_HOOK}")
    argv += hooks
    keyring = KEYRINGS.get(src.distro)
    if keyring is not None:
        argv.append(f"--keyring={keyring}")
    return [*argv, src.suite, str(out), *(sources or [mirror])]


def tarball_key(src: BootstrapSource, mirror: str, resolved: Mapping[str, str] | None = None,
                image_sources: str = "",
                firmware: str = bootloader.DEFAULT_FIRMWARE) -> str:
    """What the tarball depends on (for the store). With the resolved package set (name ->
    "version arch") the set keys the tarball, not the mirror: the mirror's current state
    enters through it, and an unchanged set on another mirror is the same tarball."""
    data: dict[str, Any] = {"v": FORMAT_VERSION, "distro": src.distro, "suite": src.suite,
                            "variant": src.variant, "dpkg": DPKG_OPTIONS, "hooks": [FSTYPE_HOOK]}
    if resolved is None:
        data.update(mirror=mirror, packages=package_list(src, firmware))
    else:
        data.update(resolved=dict(sorted(resolved.items())), sources=image_sources,
                    v=FORMAT_VERSION + 1)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()





def bootstrap_tarball(src: BootstrapSource, out: Path, *, mirror: str | None = None,
                      timeout: float = 1800, check_timeout: float = 20,
                      pinned: Mapping[str, str] | None = None,
                      firmware: str = bootloader.DEFAULT_FIRMWARE) -> Path:
    """Run mmdebstrap into `out` (written to a temp name beside it, then renamed). `pinned`
    (the resolved set, name -> "version arch"): install exactly it, from every repository
    of the recipe, write the image's deb822 apt sources, and check what got installed."""
    mirror = (mirror or resolve_mirror(src)).rstrip("/")
    keyring = KEYRINGS.get(src.distro)
    if keyring is not None and not keyring.exists():
        raise InputError(f"bootstrapping {src.distro} needs {keyring}",
                         f"install it: apt-get install {src.distro}-keyring")
    check_mirror(mirror, src.suite, timeout=check_timeout)
    # mmdebstrap picks its output format from the name: keep the .tar suffix on the temp name.
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix or '.tar'}")
    side: Path | None = None
    argv = mmdebstrap_argv(src, mirror, tmp, firmware)
    if pinned is not None:
        from imagepipe.bases.bootstrap_sources import pinned_options, scratch_dir

        side = scratch_dir()
        pins, sources, hooks = pinned_options(src, mirror, pinned, side)
        argv = mmdebstrap_argv(src, mirror, tmp, pins=pins, sources=sources, hooks=hooks)
    ui.info(f"bootstrap: mmdebstrap {src.distro} {src.suite} from {mirror} "
            f"({len(pinned) if pinned is not None else len(package_list(src, firmware))} "
            "packages)")
    try:
        res = run(argv, timeout=timeout, check=False,
                  on_stderr_line=mmdebstrap_phase(ui.phase_setter()))
        if res.returncode != 0:
            raise _mmdebstrap_error(res.argv, res.returncode, res.stderr + res.stdout, mirror)
        if side is not None and pinned is not None:
            from imagepipe.bases.bootstrap_sources import check_installed

            check_installed(side / "installed.tsv", pinned)
        publish(tmp, out, force=True)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.unlink(missing_ok=True)
        if side is not None:
            shutil.rmtree(side, ignore_errors=True)
    return out


def mmdebstrap_phase(say: Callable[[str], None]) -> Callable[[str], None]:
    """A stderr line handler: mmdebstrap's `I: downloading packages with apt...` lines are
    its phases; `say` shows them (ui.phase_setter: called from the reader thread)."""
    def on_line(line: str) -> None:
        if line.startswith("I: ") and line.rstrip().endswith("..."):
            say("mmdebstrap: " + line[3:].strip().removesuffix("..."))
    return on_line


def _mmdebstrap_error(argv: Sequence[str], rc: int, output: str, mirror: str) -> ImagepipeError:
    missing = list(dict.fromkeys(m for rx in MISSING_PATTERNS for m in rx.findall(output)))
    if missing:
        return InputError(
            f"package{'s' if len(missing) > 1 else ''} not found on {mirror}: "
            f"{', '.join(missing)}",
            "check source.bootstrap.packages in the recipe; `apt-cache policy NAME` on a "
            "machine with this mirror shows what exists")
    if re.search(r"(Could not resolve|Failed to fetch|Temporary failure resolving)", output):
        return MirrorError(f"mmdebstrap could not download from {mirror}",
                           "check the network or source.bootstrap.mirror")
    if "No space left on device" in output:
        # mmdebstrap unpacks the whole root filesystem in its temp dir before the tarball.
        return ImagepipeError(
            f"the bootstrap ran out of disk space (mmdebstrap unpacks the root filesystem "
            f"under {tempfile.gettempdir()}, the tarball goes to the store)",
            "free a few GiB there and in the store (`imagepipe cache gc`), or set TMPDIR to a "
            "larger filesystem; nothing was kept from this attempt")
    return ToolError(argv, rc, output)


__all__ = ["DiskTooSmall", "MirrorError", "bootstrap_tarball", "build_bootstrap_disk",
           "check_mirror", "host_mirror", "kernel_conflict", "kernel_package", "package_list",
           "resolve_mirror", "tarball_key"]
