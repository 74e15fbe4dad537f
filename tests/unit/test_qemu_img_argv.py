"""qemu-img argv builders, table-driven, without running the tool."""

from __future__ import annotations

import pytest

from imagepipe.errors import EXIT_BAD_INPUT, EXIT_FAILED
from imagepipe.tools import qemu_img as q

ARGV_CASES = [
    (q.info_argv("a.img"), ["qemu-img", "info", "--output=json", "a.img"]),
    (q.info_argv("a.img", fmt="raw"), ["qemu-img", "info", "--output=json", "-f", "raw", "a.img"]),
    (q.info_argv("a", fmt="qcow2", backing_chain=True, force_share=True),
     ["qemu-img", "info", "--output=json", "-f", "qcow2", "--backing-chain", "-U", "a"]),
    (q.check_argv("d.vmdk", fmt="vmdk"),
     ["qemu-img", "check", "--output=json", "-f", "vmdk", "d.vmdk"]),
    (q.compare_argv("a", "b", fmt_a="raw", fmt_b="vpc"),
     ["qemu-img", "compare", "-f", "raw", "-F", "vpc", "a", "b"]),
    (q.compare_argv("a", "b", fmt_a="qcow2", fmt_b="vdi", strict=True, progress=True),
     ["qemu-img", "compare", "-f", "qcow2", "-F", "vdi", "-s", "-p", "a", "b"]),
    (q.measure_argv("s", fmt="raw", out_fmt="qcow2"),
     ["qemu-img", "measure", "--output=json", "-f", "raw", "-O", "qcow2", "s"]),
    (q.measure_argv("s", fmt="raw", out_fmt="qcow2", options={"compat": "1.1"}),
     ["qemu-img", "measure", "--output=json", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1",
      "s"]),
    (q.create_argv("x.vhd", fmt="vpc", size=1048576,
                   options={"subformat": "fixed", "force_size": "on"}),
     ["qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=fixed,force_size=on", "x.vhd",
      "1048576"]),
    (q.create_argv("x.raw", fmt="raw", size=512), ["qemu-img", "create", "-q", "-f", "raw",
                                                  "x.raw", "512"]),
    (q.resize_argv("b.qcow2", fmt="qcow2", size=8 << 30),
     ["qemu-img", "resize", "-f", "qcow2", "b.qcow2", "8589934592"]),
    (q.create_argv("d.raw", fmt="raw", size=512, options={"preallocation": "falloc"}),
     ["qemu-img", "create", "-q", "-f", "raw", "-o", "preallocation=falloc", "d.raw", "512"]),
    (q.convert_argv("s.raw", "d.qcow2", fmt="raw", out_fmt="qcow2"),
     ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "s.raw", "d.qcow2"]),
    (q.convert_argv("s.raw", "d.qcow2", fmt="raw", out_fmt="qcow2", progress=True, compress=True,
                    options={"compat": "1.1", "compression_type": "zstd"}),
     ["qemu-img", "convert", "-p", "-c", "-f", "raw", "-O", "qcow2", "-o",
      "compat=1.1,compression_type=zstd", "s.raw", "d.qcow2"]),
    (q.convert_argv("s.qcow2", "d.vmdk", fmt="qcow2", out_fmt="vmdk",
                    options={"subformat": "streamOptimized", "adapter_type": "lsilogic"}),
     ["qemu-img", "convert", "-f", "qcow2", "-O", "vmdk", "-o",
      "subformat=streamOptimized,adapter_type=lsilogic", "s.qcow2", "d.vmdk"]),
    # -n writes into an existing target: creation options would be ignored, so none are passed.
    (q.convert_argv("s", "d.vhd", fmt="raw", out_fmt="vpc", no_create=True, target_is_zero=True,
                    options={"subformat": "fixed"}),
     ["qemu-img", "convert", "-n", "--target-is-zero", "-f", "raw", "-O", "vpc", "s", "d.vhd"]),
]


@pytest.mark.parametrize(("argv", "expected"), ARGV_CASES)
def test_argv(argv: list[str], expected: list[str]) -> None:
    assert argv == expected


def test_every_convert_passes_the_input_format() -> None:
    for argv, _ in ARGV_CASES:
        if argv[1] in ("convert", "check", "compare", "measure"):
            assert "-f" in argv


@pytest.mark.parametrize(("options", "encoded"), [
    ({}, ""),
    ({"a": "1"}, "a=1"),
    ({"a": "1", "b": "x,y"}, "a=1,b=x,,y"),
    ({"hwversion": "6"}, "hwversion=6"),
])
def test_encode_options(options: dict[str, str], encoded: str) -> None:
    assert q.encode_options(options) == encoded


@pytest.mark.parametrize(("line", "pct"), [
    ("    (0.00/100%)", 0.0),
    ("    (42.17/100%)\r", 42.17),
    ("(100.00/100%)", 100.0),
    ("(7/100%)", 7.0),
    ("garbage", None),
    ("", None),
])
def test_parse_progress(line: str, pct: float | None) -> None:
    assert q.parse_progress(line) == pct


@pytest.mark.parametrize(("stderr", "cls", "code"), [
    ("qemu-img: Invalid parameter 'foo'", q.QemuImgInputError, EXIT_BAD_INPUT),
    ("qemu-img: Parameter 'cluster_size' expects a non-negative number", q.QemuImgInputError,
     EXIT_BAD_INPUT),
    ("qemu-img: Could not open 'x': No such file or directory", q.QemuImgInputError,
     EXIT_BAD_INPUT),
    ('qemu-img: Failed to get shared "write" lock\nIs another process using the image [x]?',
     q.ImageLockedError, EXIT_BAD_INPUT),
    ("qemu-img: error while writing at byte 0: No space left on device", q.QemuImgError,
     EXIT_FAILED),
])
def test_error_mapping(stderr: str, cls: type, code: int) -> None:
    err = q._error(["qemu-img", "convert"], 1, stderr)
    assert type(err) is cls
    assert err.exit_code == code
    assert "qemu-img convert" in str(err)
