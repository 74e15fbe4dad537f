"""A thin wrapper over `qemu-img`.

Why this shape (ovirt-imageio's `_internal/qemu_img.py`): every subcommand has a pure
`*_argv()` builder whose keyword arguments mirror qemu-img's flags, so argv is tested
table-driven without running anything; a runner that parses `--output=json`; and qemu-img's
exit codes mapped to specific exceptions (`compare` 1 = different, `check` 2 = corrupt,
63 = unsupported). Callers pass qemu *driver* names (`vpc`, not `vhd`); see imagepipe.formats.
Always pass `fmt` once it is known so a raw file is never probed as something else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from imagepipe.errors import ImagepipeError, InputError, ToolError
from imagepipe.tools.run import run

QEMU_IMG = "qemu-img"
PathLike = str | Path


class QemuImgError(ToolError):
    """qemu-img failed (exit 1)."""


class QemuImgInputError(QemuImgError, InputError):
    """qemu-img rejected what the user gave it (bad -o option, unreadable image): exit 2."""

    exit_code = InputError.exit_code


class ImageLockedError(QemuImgInputError):
    """The image is open read-write by another process (a running VM, another conversion)."""


class CorruptImageError(ImagepipeError):
    """`qemu-img check` found corruptions (exit 2 of check)."""


class CheckNotSupported(ImagepipeError):
    """`qemu-img check` does not support this format (exit 63): raw and vpc."""


# Patterns in qemu-img's stderr that mean "your input is wrong", not "the operation failed".
_INPUT_PATTERNS = (
    "Invalid parameter", "Invalid option", "Invalid value", "expects ", "Could not open",
    "Image is not in", "not supported for this file format", "Unknown file format",
)


def _error(argv: list[str], returncode: int, stderr: str) -> QemuImgError:
    """Map a failed qemu-img run to the narrowest exception class."""
    if "lock" in stderr and ("Failed to get" in stderr or "Is another process" in stderr):
        err: QemuImgError = ImageLockedError(argv, returncode, stderr)
        err.hint = "is a VM or another conversion using it? stop it and retry"
        return err
    if any(p in stderr for p in _INPUT_PATTERNS):
        return QemuImgInputError(argv, returncode, stderr)
    return QemuImgError(argv, returncode, stderr)


def _run(argv: list[str], *, ok: tuple[int, ...] = (0,), **kw: Any) -> Any:
    res = run(argv, check=False, **kw)
    if res.returncode not in ok:
        raise _error(res.argv, res.returncode, res.stderr or res.stdout)
    return res


def encode_options(options: Mapping[str, str] | None) -> str:
    """`{"a": "1", "b": "x,y"}` -> `a=1,b=x,,y` (qemu's option syntax doubles commas)."""
    return ",".join(f"{k}={str(v).replace(',', ',,')}" for k, v in (options or {}).items())


# ---- argv builders (pure) -------------------------------------------------------------------

def info_argv(path: PathLike, *, fmt: str | None = None, backing_chain: bool = False,
              force_share: bool = False) -> list[str]:
    argv = [QEMU_IMG, "info", "--output=json"]
    if fmt:
        argv += ["-f", fmt]
    if backing_chain:
        argv.append("--backing-chain")
    if force_share:
        argv.append("-U")
    return [*argv, str(path)]


def check_argv(path: PathLike, *, fmt: str) -> list[str]:
    return [QEMU_IMG, "check", "--output=json", "-f", fmt, str(path)]


def compare_argv(a: PathLike, b: PathLike, *, fmt_a: str, fmt_b: str, strict: bool = False,
                 progress: bool = False) -> list[str]:
    argv = [QEMU_IMG, "compare", "-f", fmt_a, "-F", fmt_b]
    if strict:
        argv.append("-s")
    if progress:
        argv.append("-p")
    return [*argv, str(a), str(b)]


def measure_argv(src: PathLike, *, fmt: str, out_fmt: str,
                 options: Mapping[str, str] | None = None) -> list[str]:
    argv = [QEMU_IMG, "measure", "--output=json", "-f", fmt, "-O", out_fmt]
    if options:
        argv += ["-o", encode_options(options)]
    return [*argv, str(src)]


def create_argv(path: PathLike, *, fmt: str, size: int,
                options: Mapping[str, str] | None = None) -> list[str]:
    argv = [QEMU_IMG, "create", "-q", "-f", fmt]
    if options:
        argv += ["-o", encode_options(options)]
    return [*argv, str(path), str(size)]


def resize_argv(path: PathLike, *, fmt: str, size: int) -> list[str]:
    """`qemu-img resize` argv (grow only: callers refuse a smaller size before calling)."""
    return [QEMU_IMG, "resize", "-f", fmt, str(path), str(size)]


def convert_argv(src: PathLike, dst: PathLike, *, fmt: str, out_fmt: str,
                 options: Mapping[str, str] | None = None, compress: bool = False,
                 progress: bool = False, no_create: bool = False,
                 target_is_zero: bool = False) -> list[str]:
    """`qemu-img convert` argv. `no_create` (-n) writes into an existing target (used to
    convert into a pre-created, larger image); `target_is_zero` tells qemu it may skip zeros."""
    argv = [QEMU_IMG, "convert"]
    if progress:
        argv.append("-p")
    if compress:
        argv.append("-c")
    if no_create:
        argv.append("-n")
    if target_is_zero:
        argv.append("--target-is-zero")
    argv += ["-f", fmt, "-O", out_fmt]
    if options and not no_create:
        argv += ["-o", encode_options(options)]
    return [*argv, str(src), str(dst)]


_PROGRESS = re.compile(r"\((\d+(?:\.\d+)?)/100%\)")


def parse_progress(line: str) -> float | None:
    """`    (42.17/100%)` -> 42.17; anything else -> None."""
    m = _PROGRESS.search(line)
    return float(m.group(1)) if m else None


# ---- runners ---------------------------------------------------------------------------------

def info(path: PathLike, fmt: str | None = None, *, backing_chain: bool = False,
         timeout: float = 60) -> Any:
    """Parsed `qemu-img info --output=json` (a list of dicts with backing_chain=True)."""
    res = _run(info_argv(path, fmt=fmt, backing_chain=backing_chain), timeout=timeout)
    return json.loads(res.stdout)


def check(path: PathLike, fmt: str, *, timeout: float | None = None) -> dict[str, Any]:
    """Parsed `qemu-img check`; leaks (exit 3) are reported, not raised: they waste space only."""
    argv = check_argv(path, fmt=fmt)
    res = _run(argv, ok=(0, 2, 3, 63), timeout=timeout)
    if res.returncode == 63:
        raise CheckNotSupported(f"qemu-img check does not support format {fmt}")
    data: dict[str, Any] = json.loads(res.stdout) if res.stdout.strip() else {}
    if res.returncode == 2:
        raise CorruptImageError(
            f"{path}: qemu-img check found {data.get('corruptions', '?')} corruption(s)",
            "the conversion produced a broken image; please report it with the command above")
    return data


def compare(a: PathLike, b: PathLike, fmt_a: str, fmt_b: str, *, strict: bool = False,
            timeout: float | None = None) -> bool:
    """True when the guest-visible data of `a` and `b` is identical (qemu-img compare exit 0)."""
    res = _run(compare_argv(a, b, fmt_a=fmt_a, fmt_b=fmt_b, strict=strict), ok=(0, 1),
               timeout=timeout)
    return bool(res.returncode == 0)


def measure(src: PathLike, fmt: str, out_fmt: str,
            options: Mapping[str, str] | None = None) -> dict[str, int]:
    """`qemu-img measure`: {"required": bytes, "fully-allocated": bytes} for the output."""
    res = _run(measure_argv(src, fmt=fmt, out_fmt=out_fmt, options=options), timeout=120)
    return dict(json.loads(res.stdout))


def create(path: PathLike, fmt: str, size: int, options: Mapping[str, str] | None = None) -> None:
    _run(create_argv(path, fmt=fmt, size=size, options=options), timeout=120)


def convert(src: PathLike, dst: PathLike, *, fmt: str, out_fmt: str,
            options: Mapping[str, str] | None = None, compress: bool = False,
            no_create: bool = False, target_is_zero: bool = False,
            on_progress: Callable[[float], None] | None = None) -> None:
    """Run `qemu-img convert`; `on_progress(percent)` is fed from `-p` while it runs."""
    argv = convert_argv(src, dst, fmt=fmt, out_fmt=out_fmt, options=options, compress=compress,
                        progress=on_progress is not None, no_create=no_create,
                        target_is_zero=target_is_zero)

    def on_line(line: str) -> None:
        pct = parse_progress(line)
        if pct is not None and on_progress is not None:
            on_progress(pct)

    _run(argv, on_stdout_line=on_line if on_progress else None)
