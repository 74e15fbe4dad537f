"""The virtual hardware each platform gives a VM, and the kernel options that drive it.

Why: an image boots only if its kernel drives the disk controller and the NIC the platform
emulates. Debian's cloud kernel, for one, has virtio, Hyper-V and VMXNET3 but no SATA AHCI
(VirtualBox's default disk controller), no E1000 (VirtualBox's and VMware's default NIC), no
LSI Logic SCSI and no PVSCSI. A preset names its platform's default hardware first, then the
alternatives the platform also offers (a VM setting a user can choose), so `validate` can refuse
a mismatch and say which choice would work.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from imagepipe.errors import InputError


@dataclass(frozen=True)
class Device:
    name: str
    kind: str  # disk | nic
    summary: str
    config: tuple[str, ...]  # CONFIG_* options (without the prefix) that must be y or m


DEVICES: Mapping[str, Device] = MappingProxyType({d.name: d for d in (
    Device("ahci", "disk", "SATA AHCI controller", ("SATA_AHCI",)),
    Device("virtio-blk", "disk", "virtio block device", ("VIRTIO_PCI", "VIRTIO_BLK")),
    Device("virtio-scsi", "disk", "virtio SCSI controller", ("VIRTIO_PCI", "SCSI_VIRTIO")),
    Device("lsilogic", "disk", "LSI Logic parallel SCSI (Fusion MPT)", ("FUSION_SPI",)),
    Device("pvscsi", "disk", "VMware paravirtual SCSI", ("VMWARE_PVSCSI",)),
    Device("storvsc", "disk", "Hyper-V synthetic storage (VMBus)", ("HYPERV", "HYPERV_STORAGE")),
    Device("e1000", "nic", "Intel PRO/1000 (e1000)", ("E1000",)),
    Device("virtio-net", "nic", "virtio network", ("VIRTIO_PCI", "VIRTIO_NET")),
    Device("vmxnet3", "nic", "VMware VMXNET3", ("VMXNET3",)),
    Device("netvsc", "nic", "Hyper-V synthetic network (VMBus)", ("HYPERV", "HYPERV_NET")),
)})

# Which qemu can emulate for a boot test (Hyper-V's VMBus devices and LSI Logic it cannot).
QEMU_DISK = {"ahci", "virtio-blk", "virtio-scsi", "pvscsi"}
QEMU_NIC = {"e1000", "virtio-net", "vmxnet3"}
# `boot-test --hardware` short names for the platforms' profiles.
ALIASES = {"virtio": "virtio-blk+virtio-net", "virtualbox": "ahci+e1000",
           "vsphere": "pvscsi+vmxnet3"}


def preset_hardware(preset: str | None) -> tuple[str, ...]:
    """The profiles of a preset (convert/presets.py), its platform's default first."""
    from imagepipe.convert.presets import PRESETS

    p = PRESETS.get(preset or "")
    return p.hardware if p else ()


def profiles() -> tuple[str, ...]:
    """Every profile name any preset offers (the recipe's `outputs[].hardware` choices)."""
    from imagepipe.convert.presets import PRESETS

    return tuple(dict.fromkeys(h for p in PRESETS.values() for h in p.hardware))


def split(profile: str) -> tuple[Device, Device]:
    """'ahci+e1000' -> (disk device, nic device); ValueError for unknown names."""
    profile = ALIASES.get(profile, profile)
    disk, sep, nic = profile.partition("+")
    if not sep or disk not in DEVICES or nic not in DEVICES \
            or DEVICES[disk].kind != "disk" or DEVICES[nic].kind != "nic":
        raise ValueError(f"unknown hardware {profile!r}")
    return DEVICES[disk], DEVICES[nic]


def chosen(preset: str | None, hardware: str | None) -> str | None:
    """The profile an output runs on: its own `hardware:`, else its preset's default."""
    if hardware:
        return ALIASES.get(hardware, hardware)
    ps = preset_hardware(preset)
    return ps[0] if ps else None


def missing(profile: str, config: Mapping[str, str]) -> list[str]:
    """The CONFIG_* options `profile` needs that the kernel config lacks (neither y nor m)."""
    out = []
    for dev in split(profile):
        out += [f"CONFIG_{s}" for s in dev.config if config.get(s) not in ("y", "m")]
    return list(dict.fromkeys(out))


def qemu_devices(profile: str) -> tuple[str, str]:
    """(disk device, nic device) names qemu can emulate, or InputError saying why not."""
    try:
        disk, nic = split(profile)
    except ValueError:
        raise InputError(f"unknown hardware {profile!r}",
                         "use virtio, virtualbox, vsphere or DISK+NIC, e.g. ahci+e1000 "
                         "(disks: ahci virtio-blk virtio-scsi pvscsi; NICs: e1000 virtio-net "
                         "vmxnet3)") from None
    if disk.name not in QEMU_DISK or nic.name not in QEMU_NIC:
        raise InputError(f"qemu cannot emulate {disk.name}+{nic.name} for a boot test",
                         "Hyper-V/Azure (storvsc+netvsc): use --hardware hyperv, which checks "
                         "the drivers in the image's initramfs instead")
    return disk.name, nic.name


def emulated(profile: str) -> bool:
    disk, nic = split(profile)
    return disk.name in QEMU_DISK and nic.name in QEMU_NIC


def boot_profile(preset: str | None, hardware: str | None) -> str:
    """What a per-output boot test runs on: the output's hardware when qemu emulates it, else
    the platform's first emulated alternative (vSphere's LSI Logic -> PVSCSI + VMXNET3); the
    Hyper-V profile stays as it is (its drivers are checked in the initramfs instead)."""
    want = chosen(preset, hardware)
    if want is None:
        return ALIASES["virtio"]
    if emulated(want) or want == "storvsc+netvsc":
        return want
    return next((p for p in preset_hardware(preset) if emulated(p)), ALIASES["virtio"])
