"""Base images from packages: mmdebstrap -> rootfs tarball -> bootable disk, no host mounts.

Why this way (measured in FIELD-NOTES): mmdebstrap in `unshare` mode builds the root filesystem
as a tarball without touching the host's mount table (~70-95 s for the httpd package set); the
libguestfs API then partitions, formats and fills a disk inside its appliance (~75 s), so no
loop device or host mount is ever needed, and the same code runs unprivileged. The tarball is
its own artifact: a recipe change after the package list (a cloud-config, a disk size) reuses it.

The disk: MBR with the boot flag, one ext4 root mounted by UUID, extlinux with the kernel
command line on the serial console (`console=ttyS0`: boot tests and oVirt's serial console read
it), syslinux's MBR code taken from the guest itself (so it matches the guest's extlinux), DHCP
networking that cloud-init manages (`source /etc/network/interfaces.d/*` kept), and the
`locale: C.UTF-8` drop-in without which cloud-init's cc_locale fails on a minbase system.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError, InputError, ToolError
from imagepipe.recipe.model import BootstrapSource
from imagepipe.tools.run import run

MiB = 1024**2
GiB = 1024**3
DEFAULT_SIZE = 3 * GiB
PART_OFFSET = 1 * MiB  # parted's default alignment for the first partition

# Packages every bootstrapped image needs to boot, get DHCP and run cloud-init cleanly.
REQUIRED_PACKAGES: dict[str, tuple[str, ...]] = {
    "debian": ("linux-image-amd64", "systemd-sysv", "udev", "openssh-server", "cloud-init",
               "ifupdown", "isc-dhcp-client", "netbase", "iproute2", "sudo", "e2fsprogs",
               "initramfs-tools", "dbus", "syslinux-common"),
    # Ubuntu renders networking with netplan; ifupdown lives in universe there.
    "ubuntu": ("linux-image-virtual", "systemd-sysv", "udev", "openssh-server", "cloud-init",
               "netplan.io", "iproute2", "sudo", "e2fsprogs", "initramfs-tools", "dbus",
               "syslinux-common"),
}
COMPONENTS = {"debian": "main", "ubuntu": "main,universe"}
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian",
                   "ubuntu": "http://archive.ubuntu.com/ubuntu"}
KEYRINGS = {"ubuntu": Path("/usr/share/keyrings/ubuntu-archive-keyring.gpg")}
# Documentation and translations are dead weight in a template (and ~10% of the tar).
DPKG_OPTIONS = ("path-exclude=/usr/share/man/*", "path-exclude=/usr/share/doc/*",
                "path-include=/usr/share/doc/*/copyright", "path-exclude=/usr/share/locale/*",
                "path-exclude=/usr/share/info/*")
FORMAT_VERSION = 1  # bump when the tarball recipe below changes what it produces


class MirrorError(ImagepipeError):
    """The package mirror cannot be reached (network, DNS, proxy)."""


class DiskTooSmall(InputError):
    """disk.size cannot hold the root filesystem."""


# ---- the mirror --------------------------------------------------------------------------------

def _source_entries(apt_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) of every enabled `deb` entry in sources.list(.d), one-line and deb822."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
    for f in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()


def host_mirror(distro: str = "debian", apt_dir: Path = Path("/etc/apt")) -> str:
    """The host's own apt mirror for `distro` (the only mirror an offline build host reaches),
    falling back to the distribution's default mirror."""
    for uri, suites in _source_entries(apt_dir):
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

def package_list(src: BootstrapSource) -> list[str]:
    """Required base packages + the recipe's, in order, without duplicates."""
    if src.distro not in REQUIRED_PACKAGES:
        raise InputError(f"unsupported bootstrap distro {src.distro!r}",
                         f"use one of: {', '.join(REQUIRED_PACKAGES)}")
    return list(dict.fromkeys([*REQUIRED_PACKAGES[src.distro], *src.packages]))


def resolve_mirror(src: BootstrapSource) -> str:
    return (src.mirror or host_mirror(src.distro)).rstrip("/")


def mmdebstrap_argv(src: BootstrapSource, mirror: str, out: Path) -> list[str]:
    argv = ["mmdebstrap", "--mode=unshare", f"--variant={src.variant}",
            f"--components={COMPONENTS.get(src.distro, 'main')}",
            f"--include={','.join(package_list(src))}"]
    argv += [f"--dpkgopt={opt}" for opt in DPKG_OPTIONS]
    keyring = KEYRINGS.get(src.distro)
    if keyring is not None:
        argv.append(f"--keyring={keyring}")
    return [*argv, src.suite, str(out), mirror]


def tarball_key(src: BootstrapSource, mirror: str) -> str:
    """What the tarball depends on (for the store): inputs, not the mirror's current state."""
    data = {"v": FORMAT_VERSION, "distro": src.distro, "suite": src.suite, "mirror": mirror,
            "variant": src.variant, "packages": package_list(src), "dpkg": DPKG_OPTIONS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


_MISSING = (re.compile(r"Unable to locate package (\S+)"),
            re.compile(r"Package '?([^' ]+)'? has no installation candidate"),
            re.compile(r"Couldn't find any package by (?:glob|regex) '([^']+)'"))


def bootstrap_tarball(src: BootstrapSource, out: Path, *, mirror: str | None = None,
                      timeout: float = 1800, check_timeout: float = 20) -> Path:
    """Run mmdebstrap into `out` (written to a temp name beside it, then renamed)."""
    mirror = (mirror or resolve_mirror(src)).rstrip("/")
    keyring = KEYRINGS.get(src.distro)
    if keyring is not None and not keyring.exists():
        raise InputError(f"bootstrapping {src.distro} needs {keyring}",
                         f"install it: apt-get install {src.distro}-keyring")
    check_mirror(mirror, src.suite, timeout=check_timeout)
    # mmdebstrap picks its output format from the name: keep the .tar suffix on the temp name.
    tmp = out.with_name(f".{out.stem}.tmp-{os.getpid()}{out.suffix or '.tar'}")
    ui.info(f"bootstrap: mmdebstrap {src.distro} {src.suite} from {mirror} "
            f"({len(package_list(src))} packages)")
    try:
        res = run(mmdebstrap_argv(src, mirror, tmp), timeout=timeout, check=False)
        if res.returncode != 0:
            raise _mmdebstrap_error(res.argv, res.returncode, res.stderr + res.stdout, mirror)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.unlink(missing_ok=True)
    return out


def _mmdebstrap_error(argv: Sequence[str], rc: int, output: str, mirror: str) -> ImagepipeError:
    missing = list(dict.fromkeys(m for rx in _MISSING for m in rx.findall(output)))
    if missing:
        return InputError(
            f"package{'s' if len(missing) > 1 else ''} not found on {mirror}: "
            f"{', '.join(missing)}",
            "check source.bootstrap.packages in the recipe; `apt-cache policy NAME` on a "
            "machine with this mirror shows what exists")
    if re.search(r"(Could not resolve|Failed to fetch|Temporary failure resolving)", output):
        return MirrorError(f"mmdebstrap could not download from {mirror}",
                           "check the network or source.bootstrap.mirror")
    return ToolError(argv, rc, output)


# ---- sizing ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TarStats:
    files: int
    data_bytes: int  # file sizes rounded up to 4 KiB blocks, plus a block per directory


def tar_stats(tarball: Path) -> TarStats:
    """Scan the tar headers (0.3 s for 750 MiB): ext4 stores each file in whole 4 KiB blocks."""
    files = data = 0
    with tarfile.open(tarball) as tf:
        for m in tf:
            files += 1
            if m.isfile():
                data += -(-m.size // 4096) * 4096
            elif m.isdir():
                data += 4096
    return TarStats(files, data)


def required_disk_size(stats: TarStats) -> int:
    """Bytes a disk needs for this rootfs: data + ext4 metadata (inode tables ~1.6% at one
    inode per 16 KiB, 5% reserved blocks, a 64 MiB journal) + the partition offset + 128 MiB
    of room for the first boot (logs, keys, apt lists). Rounded up to 64 MiB."""
    need = int(stats.data_bytes * 1.08) + stats.files * 256 + 64 * MiB
    need = int(need / 0.95) + PART_OFFSET + 128 * MiB
    return -(-need // (64 * MiB)) * (64 * MiB)


def choose_size(requested: int | None, stats: TarStats) -> int:
    need = required_disk_size(stats)
    if requested is None:
        return max(DEFAULT_SIZE, need)
    if requested < need:
        raise DiskTooSmall(
            f"disk.size {_human(requested)} is too small for the root filesystem "
            f"({_human(stats.data_bytes)} in {stats.files} files): at least {_human(need)} "
            "is needed",
            f"set disk.size to {_human_ceil(need)} or more in the recipe")
    return requested


def _human(n: int) -> str:
    return f"{n / GiB:.2f} GiB" if n >= GiB else f"{n / MiB:.0f} MiB"


def _human_ceil(n: int) -> str:
    if n >= GiB:
        return f"{-(-n * 10 // GiB) / 10:g}G"
    return f"{-(-n // MiB)}M"


# ---- the disk ----------------------------------------------------------------------------------

def fstab(uuid: str) -> str:
    return f"# written by imagepipe\nUUID={uuid} / ext4 errors=remount-ro 0 1\n"


def extlinux_conf(kernel: str, initrd: str, uuid: str, extra_args: str = "") -> str:
    args = f"root=UUID={uuid} ro console=tty0 console=ttyS0,115200n8 {extra_args}".strip()
    return ("# written by imagepipe\nDEFAULT linux\nPROMPT 0\nTIMEOUT 1\nSERIAL 0 115200\n"
            f"LABEL linux\n  LINUX {kernel}\n  INITRD {initrd}\n  APPEND {args}\n")


INTERFACES = """\
# written by imagepipe. cloud-init writes each NIC's DHCP configuration into
# /etc/network/interfaces.d/, so the source line below must stay.
source /etc/network/interfaces.d/*

auto lo
iface lo inet loopback
"""

CLOUD_CFG_DROPIN = "# written by imagepipe: minbase has no `locales`, cc_locale would fail\n" \
                   "locale: C.UTF-8\n"


def _latest(names: Sequence[str], prefix: str) -> str | None:
    found = sorted((n for n in names if n.startswith(prefix)),
                   key=lambda n: [int(x) if x.isdigit() else x
                                  for x in re.split(r"(\d+)", n)])
    return found[-1] if found else None


@contextmanager
def _guestfs(disk: Path) -> Iterator[Any]:
    """A libguestfs handle on `disk` (raw, read-write), launched with the accel decision's
    environment (TCG where nested KVM is broken), always closed."""
    import guestfs

    from imagepipe.tools.accel import guestfs_env

    saved = {k: os.environ.get(k) for k in guestfs_env()}
    os.environ.update(guestfs_env())  # libguestfs reads its backend from the environment
    try:
        g = guestfs.GuestFS(python_return_dict=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    try:
        g.add_drive_opts(str(disk), format="raw", readonly=False)
        g.launch()
        yield g
        g.shutdown()
    finally:
        g.close()


def build_bootstrap_disk(tarball: Path, out: Path, *, size: int | None = None,
                         distro: str = "debian", kernel_args: str = "") -> dict[str, Any]:
    """Make a bootable raw disk of `size` bytes at `out` from a rootfs tarball.

    The size check runs first, from the tar headers, so a too-small disk.size fails in a second
    instead of after a minute of tar_in. Returns a manifest record."""
    stats = tar_stats(tarball)
    size = choose_size(size, stats)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.truncate(size)
        ui.info(f"bootstrap: writing {_human(stats.data_bytes)} into a {_human(size)} disk")
        with _guestfs(tmp) as g:
            record = _fill_disk(g, tarball, distro, kernel_args)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {**record, "size": size, "rootfs_bytes": stats.data_bytes, "files": stats.files}


def _fill_disk(g: Any, tarball: Path, distro: str, kernel_args: str) -> dict[str, Any]:
    dev = g.list_devices()[0]
    g.part_disk(dev, "mbr")
    g.part_set_bootable(dev, 1, True)
    part = g.list_partitions()[0]
    g.mkfs("ext4", part, label="root")
    uuid = g.vfs_uuid(part)
    g.mount(part, "/")
    g.tar_in(str(tarball), "/", xattrs=True, acls=True)
    boot = g.ls("/boot")
    kernel, initrd = _latest(boot, "vmlinuz-"), _latest(boot, "initrd.img-")
    if kernel is None or initrd is None:
        raise ImagepipeError("the root filesystem has no kernel/initrd in /boot",
                             "the bootstrap package list must include a kernel package")
    g.write("/etc/fstab", fstab(uuid))
    g.mkdir_p("/boot/extlinux")
    g.write("/boot/extlinux/extlinux.conf",
            extlinux_conf(f"/boot/{kernel}", f"/boot/{initrd}", uuid, kernel_args))
    g.extlinux("/boot/extlinux")
    mbr = g.read_file("/usr/lib/syslinux/mbr/mbr.bin")[:440]
    g.pwrite_device(dev, mbr, 0)
    if distro == "debian":
        g.write("/etc/network/interfaces", INTERFACES)
        g.mkdir_p("/etc/network/interfaces.d")
    g.mkdir_p("/etc/cloud/cloud.cfg.d")
    g.write("/etc/cloud/cloud.cfg.d/01_imagepipe_locale.cfg", CLOUD_CFG_DROPIN)
    # mmdebstrap copies the build host's hostname and resolv.conf: neither belongs in a template.
    g.write("/etc/hostname", "localhost\n")
    g.rm_f("/etc/resolv.conf")
    g.umount_all()
    return {"root_uuid": uuid, "kernel": kernel, "initrd": initrd, "bootloader": "extlinux"}
