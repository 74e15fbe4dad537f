"""GPT + GRUB for bootstrapped disks: one disk that boots on SeaBIOS, OVMF and Secure Boot.

Why this shape:
- `disk.firmware: hybrid` (the default) lays out GPT with a 1 MiB BIOS boot partition (GRUB's
  core.img lives there on BIOS), a FAT EFI system partition and the ext4 root. `uefi` drops the
  BIOS boot partition; `bios` keeps the older MBR + extlinux disk (imagepipe.bases.rootfs_disk).
- The bootloaders are the guest's own: `grub-install` and `update-grub` run *inside* the guest
  (libguestfs `command`, in the one appliance launch the disk writer already has), so the GRUB
  modules, shim and the signed GRUB match the packages installed, and a kernel update in a VM
  regenerates grub.cfg the distribution's way (grub2-common's kernel hook).
- UEFI: Debian's Microsoft-signed shim + Debian-signed GRUB (`--uefi-secure-boot`), installed
  to the removable path `EFI/BOOT/BOOTX64.EFI`: a template carries no NVRAM boot entries, and
  every UEFI firmware tries that path on a disk it has no entry for. `--no-nvram`: the build
  host's firmware variables are none of the guest's business.
- root by UUID, the serial console (`console=ttyS0`) on the kernel command line and in GRUB's
  own terminal, the ESP mounted at /boot/efi (where grub-install and shim updates expect it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from imagepipe.errors import ImagepipeError

log = logging.getLogger("imagepipe.bases.bootloader")
MiB = 1024**2
FIRMWARES = ("hybrid", "uefi", "bios")
DEFAULT_FIRMWARE = "hybrid"

# Which boot-test firmwares a disk built for `disk.firmware` can boot.
CAPABLE: dict[str, tuple[str, ...]] = {
    "hybrid": ("bios", "uefi", "secureboot"),
    "uefi": ("uefi", "secureboot"),
    "bios": ("bios",),
}

# oVirt's bios.type for a boot firmware.
OVIRT_BIOS_TYPES = {"bios": "q35_sea_bios", "uefi": "q35_ovmf", "secureboot": "q35_secure_boot"}

# GPT partition type GUIDs (sfdisk accepts them as `type=`).
BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"  # EF02
ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EF00
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # 8300

# Debian package names per firmware. grub-pc (not -bin) would conflict with grub-efi-amd64's
# family and try to install itself from its postinst; the -bin packages only ship the images.
PACKAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "debian": {
        "bios": ("syslinux-common",),
        "uefi": ("shim-signed", "grub-efi-amd64-signed", "grub-efi-amd64-bin"),
        "hybrid": ("grub-pc-bin", "shim-signed", "grub-efi-amd64-signed",
                   "grub-efi-amd64-bin"),
    },
    "ubuntu": {
        "bios": ("syslinux-common",),
        "uefi": ("shim-signed", "grub-efi-amd64-signed", "grub-efi-amd64-bin"),
        "hybrid": ("grub-pc-bin", "shim-signed", "grub-efi-amd64-signed",
                   "grub-efi-amd64-bin"),
    },
}


def bootloader_packages(distro: str, firmware: str) -> tuple[str, ...]:
    """The packages the bootloader for `firmware` needs in a `distro` rootfs."""
    return PACKAGES.get(distro, PACKAGES["debian"])[firmware]


@dataclass(frozen=True)
class Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type_guid: str
    name: str


@dataclass(frozen=True)
class Layout:
    """A GPT layout: partitions in order; the root is always the last one."""

    partitions: tuple[Partition, ...]

    @property
    def root(self) -> Partition:
        return self.partitions[-1]

    @property
    def esp(self) -> Partition:
        return next(p for p in self.partitions if p.type_guid == ESP)

    def sfdisk_script(self) -> str:
        lines = ["label: gpt"]
        for p in self.partitions:
            lines.append(f"start={p.start // 512}, size={p.size // 512}, "
                         f'type={p.type_guid}, name="{p.name}"')
        return "\n".join(lines) + "\n"


ESP_SIZE = 126 * MiB
TAIL = 1 * MiB  # the backup GPT (33 sectors) lives in the disk's last MiB
ROOT_START = 128 * MiB


def gpt_layout(disk_size: int, firmware: str) -> Layout:
    """BIOS boot (hybrid only) + ESP + root; the root starts at 128 MiB either way, so the
    rootfs sizing does not depend on the firmware."""
    if firmware not in ("hybrid", "uefi"):
        raise ValueError(f"no GPT layout for firmware {firmware!r}")
    parts: list[Partition] = []
    if firmware == "hybrid":
        parts.append(Partition(1, 1 * MiB, 1 * MiB, BIOS_BOOT, "bios"))
        parts.append(Partition(2, 2 * MiB, ESP_SIZE, ESP, "esp"))
    else:
        parts.append(Partition(1, 1 * MiB, ESP_SIZE + MiB, ESP, "esp"))
    root_size = (disk_size - TAIL - ROOT_START) // 4096 * 4096
    if root_size <= 0:
        raise ValueError("disk too small for the GPT layout")
    parts.append(Partition(len(parts) + 1, ROOT_START, root_size, LINUX_FS, "root"))
    return Layout(tuple(parts))


def overhead(firmware: str) -> int:
    """Bytes of the disk that are not the root filesystem."""
    return 1 * MiB if firmware == "bios" else ROOT_START + TAIL


# ---- files the guest gets -----------------------------------------------------------------------

def fstab(root_uuid: str, esp_uuid: str) -> str:
    return (f"# written by imagepipe\nUUID={root_uuid} / ext4 errors=remount-ro 0 1\n"
            f"UUID={esp_uuid} /boot/efi vfat umask=0077 0 1\n")


# The first NIC is `eth0`, as on Debian's OpenStack images: oVirt (and OpenStack's ENI data)
# name NICs in the per-VM network configuration they hand the VM (the oVirt publisher sets the
# template's NIC as `eth0`, DHCP). With predictable names the guest's NIC is `enp0s1` and that
# configuration raises nothing: no network on every VM made from the template.
NIC_NAMING_ARGS = "net.ifnames=0"


def default_grub(kernel_args: str = "") -> str:
    """/etc/default/grub: serial + VGA console for GRUB and the kernel, a one-second menu."""
    cmdline = f"console=tty0 console=ttyS0,115200n8 {kernel_args}".strip()
    return ("# written by imagepipe (update-grub reads it)\n"
            "GRUB_DEFAULT=0\nGRUB_TIMEOUT=1\nGRUB_DISTRIBUTOR=Debian\n"
            'GRUB_CMDLINE_LINUX_DEFAULT=""\n'
            f'GRUB_CMDLINE_LINUX="{cmdline}"\n'
            'GRUB_TERMINAL="console serial"\n'
            'GRUB_SERIAL_COMMAND="serial --speed=115200 --unit=0 --word=8 --parity=no '
            '--stop=1"\n'
            "GRUB_DISABLE_OS_PROBER=true\n")


def esp_grub_cfg(root_uuid: str) -> str:
    """The small grub.cfg the signed GRUB reads beside itself on the ESP: find the root by UUID
    and hand over to the distribution's /boot/grub/grub.cfg."""
    return (f"search --no-floppy --fs-uuid --set=root {root_uuid}\n"
            "set prefix=($root)'/boot/grub'\n"
            "configfile $prefix/grub.cfg\n")


def grub_install_argvs(firmware: str, device: str) -> list[list[str]]:
    """The grub-install runs (inside the guest) for `firmware` on whole-disk `device`."""
    argvs: list[list[str]] = []
    if firmware == "hybrid":
        # No --recheck: it rebuilds device.map from the appliance's /dev/disk/by-id, which
        # once mapped /dev/sda to another drive ("cross-disk install"); without a device.map
        # GRUB names the disk from the device itself.
        argvs.append(["grub-install", "--target=i386-pc", device])
    argvs.append(["grub-install", "--target=x86_64-efi", "--efi-directory=/boot/efi",
                  "--uefi-secure-boot", "--removable", "--no-nvram"])
    return argvs


def install_grub(g: Any, firmware: str, root_uuid: str, kernel_args: str = "") -> dict[str, Any]:
    """Install GRUB (BIOS and/or shim + signed GRUB for UEFI) into the disk open in libguestfs
    handle `g`, the root partition mounted at / and nothing else mounted. Returns what the
    manifest records."""
    device = g.list_devices()[0]
    layout_parts = g.list_partitions()
    esp_dev = layout_parts[-2]
    g.mkfs("vfat", esp_dev, label="ESP")
    esp_uuid = g.vfs_uuid(esp_dev)
    g.mkdir_p("/boot/efi")
    g.mount(esp_dev, "/boot/efi")
    g.write("/etc/fstab", fstab(root_uuid, esp_uuid))
    g.write("/etc/default/grub", default_grub(kernel_args))
    g.rm_rf("/boot/extlinux")
    for argv in grub_install_argvs(firmware, device):
        _guest_retry(g, argv)
    # The signed GRUB looks for grub.cfg in /EFI/debian (its built-in prefix), then beside
    # itself: write both, so either lookup finds the root by UUID.
    for d in ("/boot/efi/EFI/BOOT", "/boot/efi/EFI/debian"):
        g.mkdir_p(d)
        g.write(f"{d}/grub.cfg", esp_grub_cfg(root_uuid))
    _guest(g, ["update-grub"])
    if not g.is_file("/boot/efi/EFI/BOOT/BOOTX64.EFI"):
        raise ImagepipeError("grub-install left no EFI/BOOT/BOOTX64.EFI on the ESP",
                             "check that shim-signed is installed in the image")
    if not g.is_file("/boot/grub/grub.cfg"):
        raise ImagepipeError("update-grub wrote no /boot/grub/grub.cfg")
    return {"bootloader": "grub", "firmware": firmware, "partition_table": "gpt",
            "esp_uuid": esp_uuid,
            "efi_files": sorted("EFI/" + f.lstrip("/") for f in g.find("/boot/efi/EFI"))}


def _guest_retry(g: Any, argv: list[str]) -> str:
    """`_guest`, once more after `udevadm settle` if it fails: grub-install probes the disk's
    partitions through the appliance's /dev, and once in a CI run (not reproduced with the same
    rootfs) it saw no BIOS boot partition ("embedding is not possible ... cross-disk install"),
    as if udev had not finished with the partitions yet."""
    try:
        return _guest(g, argv)
    except ImagepipeError as exc:
        log.warning("%s; retrying after udevadm settle", exc)
        try:
            g.rm_f("/boot/grub/device.map")
            g.command(["udevadm", "settle", "--timeout=30"])
        except RuntimeError:
            pass
        return _guest(g, argv)


def _guest(g: Any, argv: list[str]) -> str:
    """Run `argv` inside the guest; a failure names the command and its output."""
    start = time.monotonic()
    try:
        out = str(g.command(argv))
    except RuntimeError as exc:
        raise ImagepipeError(f"in the guest: {' '.join(argv)} failed: {exc}") from exc
    log.debug("in the guest: %s (%.1fs)", " ".join(argv), time.monotonic() - start)
    return out
