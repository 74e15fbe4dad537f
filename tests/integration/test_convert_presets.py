"""Each preset's promise, checked from the written file's own bytes (parsed here, not by
imagepipe's rules module, so a bug there cannot hide a bad output)."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from imagepipe.convert import convert_image
from tests.conftest import run_cli
from tests.integration.convert_helpers import identical, make_raw

pytestmark = pytest.mark.qemu  # every test here runs the real qemu-img

MiB = 1 << 20


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_raw(tmp_path_factory.mktemp("presets") / "src.raw")


def _qcow2_header(p: Path) -> tuple[int, int, int]:
    head = p.read_bytes()[:112]
    assert head[:4] == b"QFI\xfb"
    version = struct.unpack(">I", head[4:8])[0]
    incompatible = struct.unpack(">Q", head[72:80])[0]
    return version, incompatible, head[104]


def _vmdk_descriptor(p: Path) -> str:
    data = p.read_bytes()
    assert data[:4] == b"KDMV"
    offset, size = struct.unpack("<QQ", data[28:44])
    return data[offset * 512:(offset + size) * 512].split(b"\0")[0].decode()


@pytest.mark.parametrize("preset", ["kvm", "ovirt"])
def test_qcow2_compat_11(src: Path, tmp_path: Path, preset: str) -> None:
    out = convert_image(src, tmp_path / "o.qcow2", preset=preset)
    version, _, _ = _qcow2_header(out.path)
    assert version == 3
    assert identical(src, "raw", out.path, "qcow2")


def test_compressed_is_zstd_and_compressed(tmp_path: Path) -> None:
    # Compressible data well beyond a few clusters, so compression shows in the file size.
    src = make_raw(tmp_path / "text.raw", size=8 * MiB, pattern=[(0, b"hello world " * 400000)])
    out = convert_image(src, tmp_path / "o.qcow2", preset="compressed")
    version, incompatible, ctype = _qcow2_header(out.path)
    assert version == 3 and incompatible & (1 << 3) and ctype == 1  # zstd
    assert out.file_size < 1 * MiB  # 4.8 MB of text compressed
    assert identical(src, "raw", out.path, "qcow2")


def test_vsphere_stream_optimized_lsilogic(src: Path, tmp_path: Path) -> None:
    out = convert_image(src, tmp_path / "o.vmdk", preset="vsphere")
    desc = _vmdk_descriptor(out.path)
    assert 'createType="streamOptimized"' in desc
    assert re.search(r'ddb\.adapterType\s*=\s*"lsilogic"', desc)
    assert re.search(r'ddb\.virtualHWVersion\s*=\s*"6"', desc)
    assert identical(src, "raw", out.path, "vmdk")


def test_workstation_monolithic_sparse(src: Path, tmp_path: Path) -> None:
    out = convert_image(src, tmp_path / "o.vmdk", preset="workstation")
    assert 'createType="monolithicSparse"' in _vmdk_descriptor(out.path)
    assert out.subformat == "monolithicSparse"


def _vhd_footer(p: Path) -> tuple[bytes, int, int]:
    with open(p, "rb") as f:
        f.seek(-512, 2)
        footer = f.read(512)
    return footer[:8], struct.unpack(">Q", footer[48:56])[0], struct.unpack(">I", footer[60:64])[0]


def test_azure_fixed_whole_mib(src: Path, tmp_path: Path) -> None:
    out = convert_image(src, tmp_path / "o.vhd", preset="azure")
    cookie, size, disk_type = _vhd_footer(out.path)
    assert cookie == b"conectix" and disk_type == 2  # fixed
    assert size == 4 * MiB and size % MiB == 0
    assert out.path.stat().st_size == size + 512
    assert identical(src, "raw", out.path, "vhd")


def test_azure_resize_rounds_up_and_keeps_data(tmp_path: Path) -> None:
    odd = make_raw(tmp_path / "odd.raw", size=3 * MiB + 4096,
                   pattern=[(0, b"boot" * 128), (3 * MiB + 100, b"tail")])
    res = run_cli("convert", str(odd), str(tmp_path / "o.vhd"), "--preset", "azure", "--resize")
    assert res.returncode == 0, res.stderr
    cookie, size, disk_type = _vhd_footer(tmp_path / "o.vhd")
    assert (cookie, size, disk_type) == (b"conectix", 4 * MiB, 2)
    # The guest data is unchanged; the added MiB tail reads as zeros (compare without -s).
    import subprocess
    r = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "vpc", str(odd),
                        str(tmp_path / "o.vhd")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    # Sparse: the fixed VHD is not written out in full.
    assert (tmp_path / "o.vhd").stat().st_blocks * 512 < 1 * MiB


def test_hyperv_vhdx(src: Path, tmp_path: Path) -> None:
    out = convert_image(src, tmp_path / "o.vhdx", preset="hyperv")
    assert out.path.read_bytes()[:8] == b"vhdxfile"
    assert out.allocated_size < 4 * MiB  # dynamic: only metadata and data are allocated
    assert out.subformat == "dynamic"
    assert identical(src, "raw", out.path, "vhdx")


def test_vhdx_rule_tells_fixed_from_dynamic(tmp_path: Path) -> None:
    """The hyperv rule would catch a fixed vhdx (qemu's is larger than the disk)."""
    import subprocess

    from imagepipe.convert import rules

    fixed = tmp_path / "f.vhdx"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=fixed",
                    str(fixed), "8M"], check=True)
    assert rules.vhdx_type(fixed) == "fixed"
    assert rules.vhdx_dynamic(fixed) == ["vhdx type is fixed, expected dynamic"]


def test_virtualbox_vdi(src: Path, tmp_path: Path) -> None:
    out = convert_image(src, tmp_path / "o.vdi", preset="virtualbox")
    head = out.path.read_bytes()[:0x50]
    assert struct.unpack("<I", head[0x40:0x44])[0] == 0xBEDA107F  # what VirtualBox checks
    assert struct.unpack("<I", head[0x4C:0x50])[0] == 1  # dynamic image
    assert identical(src, "raw", out.path, "vdi")
