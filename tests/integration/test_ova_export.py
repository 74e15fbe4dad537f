"""OVA export: tar layout (OVF first), the OVF 1.0 descriptor parsed back, the manifest, and
the disk member read in place by ovirt_imageio's client (member support) and qemu."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagepipe.convert.ova import OVF, RASD, write_ova
from tests.conftest import run_cli
from tests.integration.ovirt_helpers import MiB, identical, make_image

pytestmark = pytest.mark.ovirt


@pytest.fixture(scope="module")
def ova(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("ova")
    src = make_image(d / "web.qcow2", size=32 * MiB, chunks=((0, 1), (17, 2)))
    out = d / "out" / "web.ova"
    report = write_ova(src, out, name="web", description="Apache httpd", cpus=4,
                       memory=3 << 30, os_type="rhel_9x64")
    assert report.path == out and report.format == "ova" and report.virtual_size == 32 * MiB
    assert report.verified is True
    assert report.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert [p.name for p in out.parent.iterdir()] == ["web.ova"]  # no temp files left
    return src, out


@pytest.mark.qemu
def test_tar_layout_and_manifest(ova: tuple[Path, Path]) -> None:
    _, out = ova
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert names == ["web.ovf", "web-disk1.vmdk", "web.mf"]
        assert tar.getmember("web.ovf").offset == 0  # the descriptor is the first member
        members = {n: tar.extractfile(n).read() for n in names}  # type: ignore[union-attr]
    lines = members["web.mf"].decode().splitlines()
    assert lines == [f"SHA256({n})= {hashlib.sha256(members[n]).hexdigest()}"
                     for n in ("web.ovf", "web-disk1.vmdk")]


def test_ovf_matches(ova: tuple[Path, Path]) -> None:
    _, out = ova
    with tarfile.open(out) as tar:
        root = ET.parse(io.BytesIO(tar.extractfile("web.ovf").read())).getroot()  # type: ignore[union-attr]
        vmdk_size = tar.getmember("web-disk1.vmdk").size
    q = lambda tag: f"{{{OVF}}}{tag}"  # noqa: E731
    assert root.tag == q("Envelope")
    f = root.find(f"{q('References')}/{q('File')}")
    assert f is not None and f.get(q("href")) == "web-disk1.vmdk"
    assert int(f.get(q("size"), "0")) == vmdk_size
    disk = root.find(f"{q('DiskSection')}/{q('Disk')}")
    assert disk is not None and int(disk.get(q("capacity"), "0")) == 32 * MiB
    assert disk.get(q("format"), "").endswith("#streamOptimized")
    vs = root.find(q("VirtualSystem"))
    assert vs is not None and vs.findtext(q("Name")) == "web"
    assert vs.findtext(f"{q('AnnotationSection')}/{q('Annotation')}") == "Apache httpd"
    assert vs.findtext(f"{q('OperatingSystemSection')}/{q('Description')}") == "rhel_9x64"
    items = {i.findtext(f"{{{RASD}}}ResourceType"): i
             for i in vs.iter(q("Item"))}
    assert items["3"].findtext(f"{{{RASD}}}VirtualQuantity") == "4"
    assert items["4"].findtext(f"{{{RASD}}}VirtualQuantity") == "3072"
    assert items["4"].findtext(f"{{{RASD}}}AllocationUnits") == "byte * 2^20"
    assert items["17"].findtext(f"{{{RASD}}}HostResource") == "ovf:/disk/vmdisk1"


@pytest.mark.qemu
def test_imageio_reads_disk_member(ova: tuple[Path, Path], tmp_path: Path) -> None:
    from ovirt_imageio import client

    src, out = ova
    info = client.info(str(out), member="web-disk1.vmdk")
    assert info["format"] == "vmdk" and info["virtual-size"] == 32 * MiB
    assert info["format-specific"]["data"]["create-type"] == "streamOptimized"
    # imageio's json: URI reads the vmdk in place inside the tar; its guest data is the image's.
    assert identical(src, Path(info["filename"]))
    with tarfile.open(out) as tar:
        member = tar.getmember("web-disk1.vmdk")
        assert (info["member-offset"], info["member-size"]) == (member.offset_data, member.size)


@pytest.mark.qemu
def test_convert_cli_writes_ova(tmp_path: Path) -> None:
    src = make_image(tmp_path / "disk.raw", size=16 * MiB, fmt="raw", chunks=((3, 1),))
    proc = run_cli("--json", "convert", str(src), str(tmp_path / "disk.ova"))
    assert proc.returncode == 0, proc.stderr
    result = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")][-1]
    assert result["event"] == "result"
    with tarfile.open(tmp_path / "disk.ova") as tar:
        assert tar.getnames()[0] == "disk.ovf"
        tar.extract("disk-disk1.vmdk", tmp_path / "x")
    assert identical(src, tmp_path / "x" / "disk-disk1.vmdk")
    check = subprocess.run(["qemu-img", "check", str(tmp_path / "x" / "disk-disk1.vmdk")],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def test_existing_ova_replaced_only_with_force(tmp_path: Path) -> None:
    """The archive is published like every output: never over an existing file without
    force (even if it appears during the write), and nothing left behind either way."""
    from imagepipe.errors import InputError

    src = make_image(tmp_path / "disk.raw", size=4 * MiB, fmt="raw", chunks=((1, 1),))
    out = tmp_path / "out" / "disk.ova"
    out.parent.mkdir()
    out.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        write_ova(src, out, name="disk", verify=False)
    assert out.read_bytes() == b"old" and [p.name for p in out.parent.iterdir()] == ["disk.ova"]
    report = write_ova(src, out, name="disk", verify=False, force=True)
    assert report.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    assert [p.name for p in out.parent.iterdir()] == ["disk.ova"]


def test_params_from_recipe(tmp_path: Path) -> None:
    from imagepipe.convert.ova import build_ovf, ova_params_from_recipe
    from imagepipe.recipe.model import ImageSource, OvirtPublish, Publish, Recipe, Source

    recipe = Recipe(name="httpd", description="Apache", path=tmp_path / "r.yaml",
                    source=Source(image=ImageSource(url="file:///x")), os_type="rhel_9x64",
                    publish=Publish(ovirt=OvirtPublish(storage_domain="d", cpus=6,
                                                       memory=8 << 30)))
    params = ova_params_from_recipe(recipe)
    assert params == {"name": "httpd", "description": "Apache", "os_type": "rhel_9x64",
                      "cpus": 6, "memory": 8 << 30}
    ovf = build_ovf(**params, disk_file="d.vmdk", disk_size=1, capacity=2)
    root = ET.fromstring(ovf)
    assert root.find(f".//{{{OVF}}}VirtualSystem").get(f"{{{OVF}}}id") == "httpd"  # type: ignore[union-attr]


@pytest.mark.parametrize("firmware,ovf_value,bios_type", [
    ("hybrid", "efi", "q35_ovmf"), ("uefi", "efi", "q35_ovmf"),
    ("bios", "bios", "q35_sea_bios")])
def test_bootstrapped_recipe_states_its_firmware(tmp_path: Path, firmware: str,
                                                 ovf_value: str, bios_type: str) -> None:
    """The OVF and the oVirt template say how the disk boots; image sources say nothing."""
    from imagepipe.convert.ova import VMW, build_ovf, ova_params_from_recipe
    from imagepipe.recipe.model import (
        BootstrapSource,
        BootTest,
        Disk,
        ImageSource,
        Recipe,
        Source,
        Test,
    )
    from imagepipe.stages.publish_ovirt import ovirt_bios_type

    recipe = Recipe(name="web", description="d", path=tmp_path / "r.yaml",
                    source=Source(bootstrap=BootstrapSource()), disk=Disk(firmware=firmware))
    params = ova_params_from_recipe(recipe)
    assert params["firmware"] == ovf_value
    root = ET.fromstring(build_ovf(**params, cpus=1, memory=1 << 30, os_type="debian_12",
                                   disk_file="d.vmdk", disk_size=1, capacity=2))
    cfg = root.find(f".//{{{OVF}}}VirtualHardwareSection/{{{VMW}}}Config")
    assert cfg is not None and cfg.get(f"{{{VMW}}}value") == ovf_value
    assert ovirt_bios_type(recipe) == bios_type
    if firmware != "bios":
        sb = Recipe(name="web", description="d", path=tmp_path / "r.yaml",
                    source=Source(bootstrap=BootstrapSource()), disk=Disk(firmware=firmware),
                    test=Test(boot=BootTest(firmware=("bios", "secureboot"))))
        assert ovirt_bios_type(sb) == "q35_secure_boot"
    image = Recipe(name="web", description="d", path=tmp_path / "r.yaml",
                   source=Source(image=ImageSource(url="file:///x")))
    assert "firmware" not in ova_params_from_recipe(image) and ovirt_bios_type(image) is None


@pytest.mark.qemu
def test_pipeline_convert_stage_describes_the_recipe_vm(tmp_path: Path) -> None:
    """An `ova` output of a recipe carries the recipe's name, description, CPUs and memory."""
    from imagepipe.recipe.model import ImageSource, Output, OvirtPublish, Publish, Recipe, Source
    from imagepipe.stages.convert import ConvertStage

    recipe = Recipe(name="httpd", description="Apache on Debian", path=tmp_path / "r.yaml",
                    source=Source(image=ImageSource(url="file:///x")),
                    publish=Publish(ovirt=OvirtPublish(storage_domain="d", cpus=3,
                                                       memory=5 << 30)))
    opts = ConvertStage.options_for_output(recipe, Output(format="ova"))
    src = make_image(tmp_path / "disk.qcow2", size=8 * MiB, chunks=((0, 1),))
    from imagepipe.convert import convert_image

    out = tmp_path / "httpd.ova"
    convert_image(src, out, fmt="ova", ova_params=dict(opts.ova_params))
    with tarfile.open(out) as tar:
        ovf = tar.extractfile(tar.getnames()[0]).read().decode()  # type: ignore[union-attr]
    assert "Apache on Debian" in ovf
    root = ET.fromstring(ovf)
    assert root.find(f".//{{{OVF}}}VirtualSystem").get(f"{{{OVF}}}id") == "httpd"  # type: ignore[union-attr]
    quantities = {i.findtext(f"{{{RASD}}}ResourceType"): i.findtext(f"{{{RASD}}}VirtualQuantity")
                  for i in root.iter(f"{{{OVF}}}Item")}
    assert quantities["3"] == "3"  # CPUs
    assert quantities["4"] in {str(5 << 10), str(5 << 30)}  # memory (MB or bytes units)
