"""OVA export: an OVF 1.0 descriptor plus a streamOptimized VMDK in a tar, OVF first.

Why this exact layout: VMware (ovftool), VirtualBox and oVirt's OVA import (through virt-v2v)
all read an OVF 1.0 envelope with DMTF CIM hardware items, expect the descriptor as the first
tar member, and take a streamOptimized VMDK. The optional `.mf` manifest (SHA256 lines) comes
last so importers can verify members. The whole file is written next to the destination under
a temporary name, fsynced and renamed: no half-written OVA is ever visible.
"""

from __future__ import annotations

import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagepipe.convert.report import ImageReport
from imagepipe.durable import publish
from imagepipe.errors import ImageError, ImagepipeError, InputError
from imagepipe.hashing import file_digest
from imagepipe.tools import qemu_img

if TYPE_CHECKING:
    from imagepipe.recipe.model import Recipe

GiB = 1 << 30
OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
VMW = "http://www.vmware.com/schema/ovf"
VMDK_FORMAT = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
# oVirt os type -> (CIM OperatingSystemSection id, VMware guest id)
OS_TYPES = {
    "other_linux": (101, "otherLinux64Guest"), "other": (1, "otherGuest64"),
    "rhel_8x64": (80, "rhel8_64Guest"), "rhel_9x64": (80, "rhel9_64Guest"),
    "rhel_7x64": (80, "rhel7_64Guest"), "debian_12": (96, "debian12_64Guest"),
    "debian_11": (96, "debian11_64Guest"), "ubuntu_22_04": (94, "ubuntu64Guest"),
    "ubuntu_24_04": (94, "ubuntu64Guest"),
}
for _prefix, _uri in (("ovf", OVF), ("rasd", RASD), ("vssd", VSSD), ("vmw", VMW)):
    ET.register_namespace(_prefix, _uri)


def _q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


def _item(hw: ET.Element, instance: int, rtype: int, name: str, **fields: str) -> ET.Element:
    item = ET.SubElement(hw, _q(OVF, "Item"))
    for key, value in sorted({"ElementName": name, "InstanceID": str(instance),
                              "ResourceType": str(rtype), **fields}.items()):
        ET.SubElement(item, _q(RASD, key)).text = value
    return item


def build_ovf(*, name: str, description: str, cpus: int, memory: int, os_type: str,
              disk_file: str, disk_size: int, capacity: int,
              firmware: str | None = None) -> bytes:
    """The OVF 1.0 envelope for one VM with one disk, one SCSI controller and one NIC.

    `firmware` ("efi" or "bios"; None: unstated, the importer's default, which is BIOS) goes
    into the hardware section as VMware's `<vmw:Config vmw:key="firmware">`, the element
    vSphere writes and virt-v2v's OVA import reads."""
    os_id, vmw_os = OS_TYPES.get(os_type, OS_TYPES["other_linux"])
    env = ET.Element(_q(OVF, "Envelope"), {_q(VMW, "buildId"): "imagepipe"})
    refs = ET.SubElement(env, _q(OVF, "References"))
    ET.SubElement(refs, _q(OVF, "File"), {_q(OVF, "href"): disk_file, _q(OVF, "id"): "file1",
                                          _q(OVF, "size"): str(disk_size)})
    disks = ET.SubElement(env, _q(OVF, "DiskSection"))
    ET.SubElement(disks, _q(OVF, "Info")).text = "Virtual disk information"
    ET.SubElement(disks, _q(OVF, "Disk"), {
        _q(OVF, "capacity"): str(capacity), _q(OVF, "capacityAllocationUnits"): "byte",
        _q(OVF, "diskId"): "vmdisk1", _q(OVF, "fileRef"): "file1",
        _q(OVF, "format"): VMDK_FORMAT})
    nets = ET.SubElement(env, _q(OVF, "NetworkSection"))
    ET.SubElement(nets, _q(OVF, "Info")).text = "The list of logical networks"
    net = ET.SubElement(nets, _q(OVF, "Network"), {_q(OVF, "name"): "VM Network"})
    ET.SubElement(net, _q(OVF, "Description")).text = "The VM Network network"
    vs = ET.SubElement(env, _q(OVF, "VirtualSystem"), {_q(OVF, "id"): name})
    ET.SubElement(vs, _q(OVF, "Info")).text = "A virtual machine"
    ET.SubElement(vs, _q(OVF, "Name")).text = name
    ann = ET.SubElement(vs, _q(OVF, "AnnotationSection"))
    ET.SubElement(ann, _q(OVF, "Info")).text = "A human-readable annotation"
    ET.SubElement(ann, _q(OVF, "Annotation")).text = description
    oss = ET.SubElement(vs, _q(OVF, "OperatingSystemSection"),
                        {_q(OVF, "id"): str(os_id), _q(VMW, "osType"): vmw_os})
    ET.SubElement(oss, _q(OVF, "Info")).text = "The kind of installed guest operating system"
    ET.SubElement(oss, _q(OVF, "Description")).text = os_type
    hw = ET.SubElement(vs, _q(OVF, "VirtualHardwareSection"))
    ET.SubElement(hw, _q(OVF, "Info")).text = "Virtual hardware requirements"
    system = ET.SubElement(hw, _q(OVF, "System"))
    for key, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                       ("VirtualSystemIdentifier", name), ("VirtualSystemType", "vmx-10")):
        ET.SubElement(system, _q(VSSD, key)).text = value
    _item(hw, 1, 3, f"{cpus} virtual CPU(s)", AllocationUnits="hertz * 10^6",
          Description="Number of Virtual CPUs", VirtualQuantity=str(cpus))
    _item(hw, 2, 4, f"{memory >> 20}MB of memory", AllocationUnits="byte * 2^20",
          Description="Memory Size", VirtualQuantity=str(memory >> 20))
    _item(hw, 3, 6, "SCSI Controller 0", Address="0", Description="SCSI Controller",
          ResourceSubType="lsilogic")
    _item(hw, 4, 17, "Hard Disk 1", AddressOnParent="0", HostResource="ovf:/disk/vmdisk1",
          Parent="3")
    _item(hw, 5, 10, "Network adapter 1", AddressOnParent="7", AutomaticAllocation="true",
          Connection="VM Network", ResourceSubType="VmxNet3")
    if firmware is not None:
        if firmware not in ("efi", "bios"):
            raise InputError(f"OVF firmware must be efi or bios, not {firmware!r}")
        ET.SubElement(hw, _q(VMW, "Config"), {_q(OVF, "required"): "false",
                                              _q(VMW, "key"): "firmware",
                                              _q(VMW, "value"): firmware})
    data: bytes = ET.tostring(env, encoding="utf-8", xml_declaration=True)
    return data


def write_ova(src: Path, dst: Path, *, name: str, description: str = "", cpus: int = 2,
              memory: int = 2 * GiB, os_type: str = "other_linux",
              manifest: bool = True, verify: bool = True,
              firmware: str | None = None, force: bool = False) -> ImageReport:
    """Write `dst` (.ova) from `src` (any format qemu reads; backing files refused).

    With `verify`, the VMDK's guest data is compared with the source (`qemu-img compare`)
    before it goes into the archive, as `convert_image` verifies its outputs. The archive
    reaches `dst` through `durable.publish`, like every other output: an existing `dst` is
    replaced only with `force`."""
    if cpus < 1 or memory < (1 << 20):
        raise InputError(f"OVA hardware out of range: cpus={cpus}, memory={memory}")
    info = qemu_img.info(src)
    if info.get("backing-filename"):
        raise ImageError(f"{src}: has a backing file; flatten it first (qemu-img convert)")
    capacity = int(info["virtual-size"])
    try:
        sha = _write_ova_file(src, dst, info, name=name, description=description, cpus=cpus,
                              memory=memory, os_type=os_type, manifest=manifest,
                              verify=verify, capacity=capacity, firmware=firmware, force=force)
    except OSError as exc:  # ENOSPC, EIO, EDQUOT...: the temp dir is already gone
        raise ImagepipeError(f"cannot write {dst}: {exc.strerror or exc}",
                             "free space on that filesystem; nothing was left behind") from None
    st = dst.stat()
    return ImageReport(path=dst, format="ova", subformat="streamOptimized",
                       virtual_size=capacity, file_size=st.st_size,
                       allocated_size=st.st_blocks * 512, sha256=sha, verified=verify)


def _write_ova_file(src: Path, dst: Path, info: dict[str, Any], *, name: str,
                    description: str, cpus: int, memory: int, os_type: str, manifest: bool,
                    verify: bool, capacity: int, firmware: str | None, force: bool) -> str:
    """The archive written in a temp dir next to `dst` and published onto it; its sha256."""
    disk_name, ovf_name = f"{name}-disk1.vmdk", f"{name}.ovf"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.", dir=dst.parent) as tmp:
        work = Path(tmp)
        vmdk = work / disk_name
        qemu_img.convert(src, vmdk, fmt=info["format"], out_fmt="vmdk",
                         options={"subformat": "streamOptimized"})
        if verify and not qemu_img.compare(src, vmdk, info["format"], "vmdk"):
            raise ImagepipeError(f"{dst}: the VMDK written for the OVA differs from {src}",
                                 "nothing was written; please report this with -vv output")
        ovf = work / ovf_name
        ovf.write_bytes(build_ovf(name=name, description=description, cpus=cpus,
                                  memory=memory, os_type=os_type, disk_file=disk_name,
                                  disk_size=vmdk.stat().st_size, capacity=capacity,
                                  firmware=firmware))
        members = [ovf, vmdk]
        if manifest:
            mf = work / f"{name}.mf"
            mf.write_text("".join(f"SHA256({p.name})= {file_digest(p)}\n" for p in members))
            members.append(mf)
        out = work / "out.ova"
        fmt = tarfile.USTAR_FORMAT if vmdk.stat().st_size < (8 << 30) else tarfile.PAX_FORMAT
        with tarfile.open(out, "w", format=fmt) as tar:
            for p in members:
                ti = tar.gettarinfo(str(p), arcname=p.name)
                ti.uid = ti.gid = 0
                ti.uname = ti.gname = "root"
                ti.mode = 0o644
                with open(p, "rb") as f:
                    tar.addfile(ti, f)
        sha = file_digest(out)
        publish(out, dst, force)  # fsyncs the archive and the directory
    return sha


def ova_params_from_recipe(recipe: Recipe) -> dict[str, Any]:
    """write_ova keyword arguments that make the OVF describe the recipe's VM: its name,
    description, OS type and (when it publishes to oVirt) the same CPUs and memory."""
    params: dict[str, Any] = {"name": recipe.name, "description": recipe.description}
    if recipe.os_type:
        params["os_type"] = recipe.os_type
    ovirt = recipe.publish.ovirt
    if ovirt is not None:
        params.update(cpus=ovirt.cpus, memory=ovirt.memory)
        if not recipe.os_type and ovirt.os_type:
            params["os_type"] = ovirt.os_type
    firmware = recipe_firmware(recipe)
    if firmware is not None:
        # A hybrid disk boots either way; EFI is what lets the VM use Secure Boot.
        params["firmware"] = "bios" if firmware == "bios" else "efi"
    return params


def recipe_firmware(recipe: Recipe) -> str | None:
    """The firmware the recipe's disk is made for (hybrid | uefi | bios), or None when the disk
    comes from an image or installer whose layout imagepipe does not choose."""
    return recipe.disk.firmware if recipe.source.bootstrap is not None else None
