"""qemu arguments that give a test VM a platform's disk controller and NIC.

Why: a template is only proven on the hardware its platform gives a VM. qemu emulates
VirtualBox's (ICH9 AHCI + e1000), vSphere's paravirtual (PVSCSI + VMXNET3) and KVM's (virtio)
devices, so a boot test can use exactly those drivers of the guest kernel. The cloud-init seed
is attached as a CD-ROM on the same controller (a virtio seed disk would need a driver the
platform never asks for). Hyper-V's VMBus devices and LSI Logic SCSI are not emulated: see
imagepipe.boot.initramfs for what is checked instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from imagepipe.convert import hardware
from imagepipe.errors import InputError

if TYPE_CHECKING:
    from imagepipe.tools.qemu import Drive

NIC_MODELS = {"e1000": "e1000", "virtio-net": "virtio-net-pci", "vmxnet3": "vmxnet3"}
SCSI_CONTROLLERS = {"virtio-scsi": "virtio-scsi-pci", "pvscsi": "pvscsi"}


def _esc(path: Path | str) -> str:
    return str(path).replace(",", ",,")


def resolve(profile: str) -> tuple[str, str]:
    """(disk device, nic device) names qemu can emulate, or InputError saying why not."""
    try:
        disk, nic = hardware.split(profile)
    except ValueError:
        raise InputError(f"unknown hardware {profile!r}",
                         "use virtio, virtualbox, vsphere or DISK+NIC, e.g. ahci+e1000 "
                         "(disks: ahci virtio-blk virtio-scsi pvscsi; NICs: e1000 virtio-net "
                         "vmxnet3)") from None
    if disk.name not in hardware.QEMU_DISK or nic.name not in hardware.QEMU_NIC:
        raise InputError(f"qemu cannot emulate {disk.name}+{nic.name} for a boot test",
                         "Hyper-V/Azure (storvsc+netvsc): use --hardware hyperv, which checks "
                         "the drivers in the image's initramfs instead")
    return disk.name, nic.name


def args(profile: str, disk: Path, disk_fmt: str,
         drives: Sequence[Drive]) -> tuple[list[str], str]:
    """(-drive/-device arguments for the boot disk and the extra drives, NIC model)."""
    disk_dev, nic_dev = resolve(profile)
    if disk_dev == "virtio-blk":
        out = ["-drive", f"file={_esc(disk)},format={disk_fmt},if=virtio"]
        return out + [a for d in drives for a in d.args()], NIC_MODELS[nic_dev]
    out = ["-drive", f"file={_esc(disk)},format={disk_fmt},if=none,id=hd0"]
    if disk_dev == "ahci":  # q35's built-in ICH9 AHCI, ports ide.0 .. ide.5
        out += ["-device", "ide-hd,drive=hd0,bus=ide.0,bootindex=0"]
    else:
        out += ["-device", f"{SCSI_CONTROLLERS[disk_dev]},id=scsi0",
                "-device", "scsi-hd,drive=hd0,bus=scsi0.0,scsi-id=0,lun=0,bootindex=0"]
    for i, d in enumerate(drives, start=1):
        opts = f"file={_esc(d.path)},format={d.fmt},if=none,id=extra{i}"
        if d.readonly or d.media == "cdrom":
            opts += ",readonly=on"
        kind = "cd" if d.media == "cdrom" or d.readonly else "hd"
        bus = f"ide.{i}" if disk_dev == "ahci" else "scsi0.0"
        unit = "" if disk_dev == "ahci" else f",scsi-id={i},lun=0"
        prefix = "ide" if disk_dev == "ahci" else "scsi"
        out += ["-drive", opts, "-device", f"{prefix}-{kind},drive=extra{i},bus={bus}{unit}"]
    return out, NIC_MODELS[nic_dev]
