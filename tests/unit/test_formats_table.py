"""The format table, output planning (format/preset/options precedence) and header rules."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from imagepipe import formats
from imagepipe.convert import rules
from imagepipe.convert.image import _target_size, temp_path
from imagepipe.convert.presets import PRESETS, describe_presets, plan_output
from imagepipe.errors import InputError

MiB = 1 << 20


@pytest.mark.parametrize(("name", "driver", "ext", "checkable"), [
    ("raw", "raw", ".raw", False), ("qcow2", "qcow2", ".qcow2", True),
    ("vmdk", "vmdk", ".vmdk", True), ("vhd", "vpc", ".vhd", False),
    ("vhdx", "vhdx", ".vhdx", True), ("vdi", "vdi", ".vdi", True),
])
def test_table(name: str, driver: str, ext: str, checkable: bool) -> None:
    f = formats.get(name)
    assert (f.driver, f.extension, f.checkable) == (driver, ext, checkable)
    assert formats.by_driver(driver) is f
    assert formats.claimed_by_extension(Path("x" + ext.upper())) is f
    assert formats.output_by_extension(Path("dir/x" + ext)) == name


def test_aliases_and_unknown() -> None:
    assert formats.get("vpc").name == "vhd"
    assert formats.get("QCOW2").name == "qcow2"
    with pytest.raises(InputError, match="unknown disk format 'qed'"):
        formats.get("qed")
    assert formats.by_driver("qed") is None


def test_img_is_loose_and_ova_is_container() -> None:
    assert formats.claimed_by_extension(Path("a.img")) is None  # .img claims nothing on input
    assert formats.output_by_extension(Path("a.img")) == "raw"
    assert formats.output_by_extension(Path("a.ova")) == "ova"
    assert formats.output_by_extension(Path("a.bin")) is None
    assert formats.is_container("ova") and "ova" in formats.names()


@pytest.mark.parametrize(("dst", "kw", "fmt", "options", "compress"), [
    ("d.qcow2", {}, "qcow2", {"compat": "1.1"}, False),
    ("d.vhd", {}, "vhd", {"subformat": "dynamic", "force_size": "on"}, False),
    ("d.img", {"fmt": "qcow2"}, "qcow2", {"compat": "1.1"}, False),
    ("d.bin", {"fmt": "vpc"}, "vhd", {"subformat": "dynamic", "force_size": "on"}, False),
    ("d.vmdk", {"preset": "vsphere"}, "vmdk",
     {"subformat": "streamOptimized", "adapter_type": "lsilogic", "hwversion": "6"}, False),
    ("d", {"preset": "azure"}, "vhd", {"subformat": "fixed", "force_size": "on"}, False),
    ("d.qcow2", {"compress": True}, "qcow2", {"compat": "1.1", "compression_type": "zstd"},
     True),
    ("d.qcow2", {"preset": "compressed"}, "qcow2",
     {"compat": "1.1", "compression_type": "zstd"}, True),
    ("d.qcow2", {"compress": True, "options": {"compression_type": "zlib"}}, "qcow2",
     {"compat": "1.1", "compression_type": "zlib"}, True),
    ("d.vmdk", {"compress": True}, "vmdk", {"subformat": "streamOptimized"}, True),
    ("d.qcow2", {"options": {"cluster_size": "2M"}}, "qcow2",
     {"compat": "1.1", "cluster_size": "2M"}, False),
    ("d.vhdx", {"preset": "hyperv"}, "vhdx", {"subformat": "dynamic"}, False),
])
def test_plan_output(dst: str, kw: dict, fmt: str, options: dict, compress: bool) -> None:
    plan = plan_output(Path(dst), **kw)
    assert (plan.format, dict(plan.options), plan.compress) == (fmt, options, compress)


@pytest.mark.parametrize(("dst", "kw", "message"), [
    ("d.bin", {}, "cannot tell the output format"),
    ("d.qcow2", {"fmt": "vmdk"}, "has the extension of qcow2 but the output format is vmdk"),
    ("d.ova", {"fmt": "qcow2"}, "extension of ova"),
    ("d.vmdk", {"preset": "azure"}, "extension of vmdk"),
    ("d.vmdk", {"fmt": "qcow2", "preset": "vsphere"}, "conflicts with preset 'vsphere'"),
    ("d.qcow2", {"preset": "nope"}, "unknown preset 'nope'"),
    ("d.qcow2", {"options": {"backing_file": "/etc/shadow"}}, "-o backing_file"),
    ("d.qcow2", {"options": {"data_file": "x"}}, "-o data_file"),
    ("d.raw", {"compress": True}, "--compress is not supported for raw"),
    ("d.vmdk", {"compress": True, "options": {"subformat": "monolithicSparse"}},
     "needs subformat=streamOptimized"),
    ("d.ova", {"options": {"a": "b"}}, "do not apply to ova"),
])
def test_plan_output_errors(dst: str, kw: dict, message: str) -> None:
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        plan_output(Path(dst), **kw)


def test_presets_cover_the_issue() -> None:
    want = {"kvm": "qcow2", "ovirt": "qcow2", "compressed": "qcow2", "vsphere": "vmdk",
            "workstation": "vmdk", "azure": "vhd", "hyperv": "vhdx", "virtualbox": "vdi"}
    assert {p.name: p.format for p in PRESETS.values()} == want
    for row in describe_presets():
        assert row["checks"], row


def test_azure_size_rounding() -> None:
    plan = plan_output(Path("d.vhd"), preset="azure")
    assert _target_size(8 * MiB, plan, resize=False) == 8 * MiB
    assert _target_size(8 * MiB + 512, plan, resize=True) == 9 * MiB
    with pytest.raises(InputError, match="--resize"):
        _target_size(8 * MiB + 512, plan, resize=False)
    assert _target_size(8 * MiB + 512, plan_output(Path("d.vhd")), resize=False) == 8 * MiB + 512


def test_temp_path_is_a_hidden_sibling() -> None:
    t = temp_path(Path("/some/dir/out.qcow2"))
    assert t.parent == Path("/some/dir") and t.name.startswith(".out.qcow2.")
    assert t != temp_path(Path("/some/dir/out.qcow2"))


def _vhd_footer(size: int, disk_type: int) -> bytes:
    footer = bytearray(512)
    footer[:8] = b"conectix"
    footer[48:56] = struct.pack(">Q", size)
    footer[60:64] = struct.pack(">I", disk_type)
    return bytes(footer)


def test_vhd_rules_on_synthetic_files(tmp_path: Path) -> None:
    good = tmp_path / "good.vhd"
    good.write_bytes(b"\0" * MiB + _vhd_footer(MiB, 2))
    assert rules.vhd_azure(good) == [] and rules.subformat(good, "vhd") == "fixed"
    dyn = tmp_path / "dyn.vhd"
    dyn.write_bytes(b"\0" * MiB + _vhd_footer(MiB, 3))
    assert any("fixed" in p for p in rules.vhd_azure(dyn))
    odd = tmp_path / "odd.vhd"
    odd.write_bytes(b"\0" * 4096 + _vhd_footer(4096, 2))
    assert any("whole number of MiB" in p for p in rules.vhd_azure(odd))
    bare = tmp_path / "bare.vhd"
    bare.write_bytes(b"\0" * 4096)
    assert rules.vhd_azure(bare) and rules.vhd_valid(bare)


def test_vmdk_descriptor_rule_on_text_descriptor(tmp_path: Path) -> None:
    d = tmp_path / "d.vmdk"
    d.write_text('# Disk DescriptorFile\nversion=1\ncreateType="monolithicFlat"\n'
                 'ddb.adapterType = "ide"\n')
    assert rules.vmdk_descriptor(d)["createType"] == "monolithicFlat"
    problems = rules.vmdk_create_type("streamOptimized", "lsilogic")(d)
    assert len(problems) == 2


def test_qcow2_and_vdi_rules_reject_garbage(tmp_path: Path) -> None:
    junk = tmp_path / "junk"
    junk.write_bytes(b"x" * 1024)
    for rule in rules.FORMAT_RULES.values():
        assert rule(junk), rule
    assert rules.qcow2_v3(junk) and rules.qcow2_zstd(junk)
