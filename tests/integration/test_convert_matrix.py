"""Every (source, destination) pair among the six formats converts to identical guest data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagepipe.convert import convert_image, probe_image
from tests.integration.convert_helpers import EXT, identical, listing, make_raw, to_format

pytestmark = pytest.mark.qemu  # every test here runs the real qemu-img

FORMATS = ["raw", "qcow2", "vmdk", "vhd", "vhdx", "vdi"]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("sources")
    raw = make_raw(d / "ref.raw")
    out = {"raw": raw}
    for fmt in FORMATS[1:]:
        out[fmt] = to_format(raw, fmt, d / f"src.{EXT[fmt]}")
    return out


def _digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("src_fmt", FORMATS)
def test_probe_reads_format_from_content(sources: dict[str, Path], src_fmt: str) -> None:
    info = probe_image(sources[src_fmt])
    assert info["imagepipe-format"] == src_fmt
    assert info["virtual-size"] == 4 << 20


@pytest.mark.parametrize("dst_fmt", FORMATS)
@pytest.mark.parametrize("src_fmt", FORMATS)
def test_round_trip(sources: dict[str, Path], tmp_path: Path, src_fmt: str, dst_fmt: str) -> None:
    src = sources[src_fmt]
    before = _digest(src)
    dst = tmp_path / f"out.{EXT[dst_fmt]}"
    report = convert_image(src, dst)
    assert report.format == dst_fmt and report.verified and report.path == dst
    assert report.sha256 == _digest(dst)
    assert report.virtual_size == 4 << 20
    assert identical(sources["raw"], "raw", dst, dst_fmt)
    assert probe_image(dst)["imagepipe-format"] == dst_fmt  # our output reads back as itself
    assert _digest(src) == before  # SRC is never modified
    assert listing(tmp_path) == [dst.name]  # no temp file left behind


def test_compare_detects_a_difference(sources: dict[str, Path], tmp_path: Path) -> None:
    """The check above can fail: a one-byte change makes the images differ."""
    other = make_raw(tmp_path / "other.raw")
    with open(other, "r+b") as f:
        f.seek(3 << 20)
        f.write(b"!")
    assert not identical(sources["raw"], "raw", other, "raw")
