"""Presets (named, verified output recipes) and the choice of output format and options.

Why presets: "what does ESXi / Azure / Hyper-V accept" is tribal knowledge (streamOptimized +
lsilogic; fixed VHD with a MiB-aligned size and a footer; dynamic VHDX). A preset names that
knowledge once, passes the options, and brings a rule that checks the written file itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from imagepipe import formats
from imagepipe.convert import rules
from imagepipe.errors import InputError

MiB = rules.MiB


@dataclass(frozen=True)
class Preset:
    name: str
    format: str
    summary: str
    options: Mapping[str, str] = field(default_factory=dict)
    compress: bool = False
    rules: tuple[rules.Rule, ...] = ()
    # Virtual size must be a multiple of this (Azure: 1 MiB); growing needs resize=True.
    size_multiple: int | None = None
    # The platform boots this disk only with UEFI firmware (Hyper-V generation 2): a disk with
    # no EFI system partition cannot boot there.
    needs_uefi: bool = False
    # The platform's virtual hardware, "DISK+NIC" (imagepipe.convert.hardware): first what a
    # new VM gets by default, then alternatives the platform offers as a VM setting.
    hardware: tuple[str, ...] = ()


_VIRTIO = ("virtio-blk+virtio-net", "virtio-scsi+virtio-net")
_VMWARE = ("lsilogic+e1000", "pvscsi+vmxnet3", "lsilogic+vmxnet3", "pvscsi+e1000")

PRESETS: Mapping[str, Preset] = MappingProxyType({p.name: p for p in (
    Preset("kvm", "qcow2", "QEMU/KVM, libvirt, OpenStack", {"compat": "1.1"},
           rules=(rules.qcow2_v3,), hardware=_VIRTIO),
    Preset("ovirt", "qcow2", "oVirt / RHV disk upload", {"compat": "1.1"},
           rules=(rules.qcow2_v3,), hardware=("virtio-scsi+virtio-net", "virtio-blk+virtio-net")),
    Preset("compressed", "qcow2", "smallest qcow2 for distribution (zstd)",
           {"compat": "1.1", "compression_type": "zstd"}, compress=True,
           rules=(rules.qcow2_v3, rules.qcow2_zstd), hardware=_VIRTIO),
    Preset("vsphere", "vmdk", "VMware ESXi / vSphere import (OVA disk); do not boot it directly",
           {"subformat": "streamOptimized", "adapter_type": "lsilogic", "hwversion": "6"},
           rules=(rules.vmdk_create_type("streamOptimized", "lsilogic"),), hardware=_VMWARE),
    Preset("workstation", "vmdk", "VMware Workstation / Fusion / Player",
           {"subformat": "monolithicSparse"},
           rules=(rules.vmdk_create_type("monolithicSparse"),), hardware=_VMWARE),
    Preset("azure", "vhd", "Microsoft Azure page blob: fixed VHD, size a whole MiB",
           {"subformat": "fixed", "force_size": "on"}, rules=(rules.vhd_azure,),
           size_multiple=MiB, hardware=("storvsc+netvsc",)),
    Preset("hyperv", "vhdx", "Microsoft Hyper-V (generation 2)", {"subformat": "dynamic"},
           rules=(rules.vhdx_dynamic,), needs_uefi=True, hardware=("storvsc+netvsc",)),
    Preset("virtualbox", "vdi", "Oracle VirtualBox", {}, rules=(rules.vdi_valid,),
           hardware=("ahci+e1000", "virtio-scsi+virtio-net", "ahci+virtio-net")),
)})


@dataclass(frozen=True)
class OutputPlan:
    """What to write: a disk format (or a container such as `ova`), options, compression."""

    format: str
    options: Mapping[str, str]
    compress: bool
    preset: Preset | None = None

    @property
    def container(self) -> bool:
        return formats.is_container(self.format)

    @property
    def driver(self) -> str:
        return formats.get(self.format).driver


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise InputError(f"unknown preset {name!r}",
                         "choose one of: " + ", ".join(PRESETS)) from None


def _choose_format(dst: Path, fmt: str | None, preset: Preset | None) -> str:
    by_ext = formats.output_by_extension(dst)
    chosen = fmt.lower() if fmt else None
    if chosen and not formats.is_container(chosen):
        chosen = formats.get(chosen).name  # validates and maps vpc -> vhd
    if preset:
        if chosen and chosen != preset.format:
            raise InputError(f"--to {fmt} conflicts with preset {preset.name!r}, which writes "
                             f"{preset.format}", "drop --to or pick another preset")
        chosen = preset.format
    if chosen is None:
        if by_ext is None:
            raise InputError(f"cannot tell the output format from {dst.name!r}",
                             "pass --to FORMAT or --preset NAME, or use an extension: "
                             ".raw .img .qcow2 .vmdk .vhd .vhdx .vdi .ova")
        return by_ext
    claimed = formats.claimed_by_extension(dst)
    ext_claim = claimed.name if claimed else formats.CONTAINER_EXTENSIONS.get(dst.suffix.lower())
    if ext_claim and ext_claim != chosen:
        raise InputError(f"{dst.name!r} has the extension of {ext_claim} but the output format "
                         f"is {chosen}", f"name it {dst.stem}{_ext(chosen)} or change --to")
    return chosen


def _ext(name: str) -> str:
    if formats.is_container(name):
        return "." + name
    return formats.get(name).extension


def plan_output(dst: Path, *, fmt: str | None = None, preset: str | None = None,
                options: Mapping[str, str] | None = None, compress: bool = False) -> OutputPlan:
    """Decide the output format and its full option set, or raise InputError saying why not.

    Precedence: the format's defaults < the preset's options < --compress < the user's -o.
    """
    p = get_preset(preset) if preset else None
    name = _choose_format(dst, fmt, p)
    if formats.is_container(name):
        if options or compress:
            raise InputError(f"-o and --compress do not apply to {name} output",
                             "the OVA's disk is always a streamOptimized vmdk")
        return OutputPlan(name, MappingProxyType({}), False, p)
    f = formats.get(name)
    user = dict(options or {})
    unknown = sorted(set(user) - f.option_keys)
    if unknown:
        raise InputError(f"-o {unknown[0]}: not an option imagepipe passes for {f.name}",
                         "valid keys: " + ", ".join(sorted(f.option_keys)))
    merged = dict(f.create_options)
    if p:
        merged.update(p.options)
    want_compress = compress or bool(p and p.compress)
    if want_compress:
        if f.compress_options is None:
            raise InputError(f"--compress is not supported for {f.name}",
                             "compressed outputs: qcow2 (zstd) and vmdk (streamOptimized)")
        merged.update(f.compress_options)
        if p:
            merged.update(p.options)
    merged.update(user)
    if want_compress and f.name == "vmdk" and merged.get("subformat") != "streamOptimized":
        raise InputError("--compress with vmdk needs subformat=streamOptimized",
                         "drop -o subformat or --compress")
    return OutputPlan(f.name, MappingProxyType(merged), want_compress, p)


def describe_presets() -> list[dict[str, object]]:
    """Rows for `--list-presets` (and docs): name, format, options, summary."""
    return [{"name": p.name, "format": p.format, "options": dict(p.options),
             "compress": p.compress, "summary": p.summary, "hardware": list(p.hardware),
             "checks": [r.__doc__.strip().splitlines()[0] if r.__doc__ else r.__name__
                        for r in p.rules]} for p in PRESETS.values()]
