"""`convert_image`: one safe, verified, atomic disk conversion.

Why this order: check every input first (paths, format choice, the source's safety) so bad
input fails before a byte is written; write to a hidden temporary file in DST's directory
(same filesystem, so the final rename is atomic); verify that temp file; fsync; then publish it
under DST. Every step registers its clean-up at once on an ExitStack, so a failure or Ctrl-C
(KeyboardInterrupt, or SIGTERM turned into one by the CLI) leaves neither DST nor the temp file.
qemu-img does the data work itself (sparse-aware, zero-detecting), so a 4 GiB raw holding
100 MiB is read and written as 100 MiB; with verification off imagepipe adds no pass over the
data.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from imagepipe import durable, formats, ui
from imagepipe.convert import report as report_mod
from imagepipe.convert import rules
from imagepipe.convert.presets import OutputPlan, plan_output
from imagepipe.convert.report import ImageReport
from imagepipe.convert.writeback import EarlyWriteback
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.hashing import file_digest
from imagepipe.tools import qemu_img
from imagepipe.tools.probe import probe_image

TEMP_SUFFIX = ".imagepipe-tmp"


class VerificationError(ImagepipeError):
    """The written image failed a check; it has been removed (exit 1)."""


def temp_path(dst: Path) -> Path:
    """A hidden sibling of DST (same directory, so rename is atomic and never crosses devices)."""
    return dst.parent / f".{dst.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


def _check_paths(src: Path, dst: Path, force: bool) -> None:
    if not src.exists():
        raise InputError(f"{src}: no such file")
    if src.resolve() == dst.resolve() or (dst.exists() and os.path.samefile(src, dst)):
        raise InputError(f"source and destination are the same file: {src}",
                         "choose another DST; SRC is never modified")
    if not dst.parent.is_dir():
        raise InputError(f"{dst.parent}: destination directory does not exist")
    if dst.is_dir():
        raise InputError(f"{dst}: is a directory", "give a file name for the output")
    durable.refuse_overwrite(dst, force)  # also with --force: never a device node or FIFO


def _target_size(virtual_size: int, plan: OutputPlan, resize: bool) -> int:
    """The output's virtual size: the source's, or rounded up where the preset demands it."""
    multiple = plan.preset.size_multiple if plan.preset else None
    if not multiple or virtual_size % multiple == 0:
        return virtual_size
    rounded = -(-virtual_size // multiple) * multiple
    if not resize:
        raise InputError(
            f"preset {plan.preset.name!r} needs a virtual size that is a multiple of "  # type: ignore[union-attr]
            f"{multiple} bytes; the source has {virtual_size}",
            f"pass --resize to grow the disk to {rounded} bytes; zeros are added at the end")
    return rounded


class _LazyProgress:
    """Shows a progress bar only once a conversion has run for `delay` seconds."""

    def __init__(self, stack: ExitStack, label: str, size: int, delay: float = 1.0) -> None:
        self.stack, self.label, self.size, self.delay = stack, label, size, delay
        self.start = time.monotonic()
        self.bar: ui.Progress | None = None

    def __call__(self, percent: float) -> None:
        if self.bar is None:
            if time.monotonic() - self.start < self.delay:
                return
            self.bar = self.stack.enter_context(ui.Progress(self.label, self.size))
        self.bar.set(int(self.size * percent / 100))


@contextlib.contextmanager
def _sha256_thread(path: Path, enabled: bool) -> Iterator[Callable[[], str | None]]:
    """Hash `path` in a thread while the caller runs other checks; yields a result getter."""
    if not enabled:
        yield lambda: None
        return
    cancel = threading.Event()
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["sha"] = file_digest(path, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            out["err"] = exc

    t = threading.Thread(target=work, name="sha256", daemon=True)
    t.start()

    def result() -> str | None:
        t.join()
        if "err" in out:
            raise out["err"]
        return str(out["sha"])

    try:
        yield result
    finally:
        cancel.set()
        t.join()


def _verify(src: Path, src_info: dict[str, Any], tmp: Path, plan: OutputPlan,
            dst: Path, expected_size: int) -> None:
    """check + compare + format/preset rules; raise VerificationError listing every problem."""
    problems: list[str] = []
    fmt = formats.get(plan.format)
    info = qemu_img.info(tmp, fmt.driver)
    if info.get("virtual-size") != expected_size:
        problems.append(f"virtual size is {info.get('virtual-size')}, expected {expected_size}")
    for rule in (rules.FORMAT_RULES.get(fmt.name), *(plan.preset.rules if plan.preset else ())):
        if rule is not None:
            problems += rule(tmp)
    if fmt.checkable:
        ui.detail(f"qemu-img check {dst.name}")
        qemu_img.check(tmp, fmt.driver)
    if not problems:
        ui.detail(f"qemu-img compare {src.name} {dst.name}")
        if not qemu_img.compare(src, tmp, src_info["format"], fmt.driver):
            problems.append(f"guest data differs from {src} (qemu-img compare)")
    if problems:
        raise VerificationError(f"{dst}: verification failed: " + "; ".join(problems),
                                "nothing was written; please report this with -vv output")


def _convert_ova(src: Path, dst: Path, params: Mapping[str, Any] | None,
                 force: bool) -> ImageReport:
    from imagepipe.convert.ova import write_ova

    kwargs: dict[str, Any] = {"name": dst.stem, **(params or {}), "force": force}
    result: ImageReport = write_ova(src, dst, **kwargs)
    return result


def _run_convert(src: Path, src_driver: str, tmp: Path, plan: OutputPlan, size: int,
                 virtual_size: int) -> None:
    fmt = formats.get(plan.format)
    with ExitStack() as bar_stack, EarlyWriteback(tmp):
        progress = _LazyProgress(bar_stack, f"convert to {fmt.name}", size)
        _qemu_convert(src, src_driver, tmp, plan, fmt, size, virtual_size, progress)


def _qemu_convert(src: Path, src_driver: str, tmp: Path, plan: OutputPlan, fmt: formats.Format,
                  size: int, virtual_size: int, progress: Callable[[float], None]) -> None:
    if size != virtual_size:
        # Grow: create the target at the rounded size, then convert into it (-n). The new
        # image is all zeros, so qemu may skip writing zeros.
        qemu_img.create(tmp, fmt.driver, size, plan.options)
        qemu_img.convert(src, tmp, fmt=src_driver, out_fmt=fmt.driver, compress=plan.compress,
                         no_create=True, target_is_zero=True, on_progress=progress)
    else:
        qemu_img.convert(src, tmp, fmt=src_driver, out_fmt=fmt.driver, options=plan.options,
                         compress=plan.compress, on_progress=progress)


def convert_image(src: Path, dst: Path, *, fmt: str | None = None, preset: str | None = None,
                  options: Mapping[str, str] | None = None, compress: bool = False,
                  verify: bool = True, force: bool = False, allow_backing: bool = False,
                  resize: bool = False, checksum: bool | None = None,
                  ova_params: Mapping[str, Any] | None = None) -> ImageReport:
    """Convert SRC to DST; see the module docstring for the guarantees.

    `checksum` (default: same as `verify`) computes DST's sha256 alongside verification;
    with verification off it is a separate full read, so it is skipped unless asked for.
    Raises InputError (exit 2) for bad input before writing anything, VerificationError or
    ToolError (exit 1) if the conversion fails; DST and the temp file are gone in both cases.
    `ova_params` (name, description, cpus, memory, os_type) describe the VM in an OVA's OVF.
    """
    src, dst = Path(src), Path(dst)
    plan = plan_output(dst, fmt=fmt, preset=preset, options=options, compress=compress)
    _check_paths(src, dst, force)
    src_info = probe_image(src, allow_backing=allow_backing)
    if plan.preset is not None and plan.preset.needs_uefi:
        from imagepipe.convert.esp import require_uefi_bootable

        require_uefi_bootable(src, src_info["format"], plan.preset.name, plan.preset.summary)
    if plan.container:
        return _convert_ova(src, dst, ova_params, force)
    virtual_size = int(src_info["virtual-size"])
    size = _target_size(virtual_size, plan, resize)
    want_sha = verify if checksum is None else checksum
    with ExitStack() as stack:
        tmp = temp_path(dst)
        stack.callback(durable.unlink_quietly, tmp)
        ui.info(f"converting {src} ({src_info['imagepipe-format']}) to {dst} ({plan.format})")
        with ui.stage("convert", src=str(src), dst=str(dst), format=plan.format):
            _run_convert(src, src_info["format"], tmp, plan, size, virtual_size)
        with ui.stage("verify", enabled=verify), _sha256_thread(tmp, want_sha) as sha:
            if verify:
                ui.info(f"verifying {dst.name}: format rules, qemu-img check/compare, sha256")
                _verify(src, src_info, tmp, plan, dst, size)
            digest = sha()
        result = report_mod.describe(tmp, plan.format, virtual_size=size, sha256=digest,
                                     verified=verify, report_path=dst)
        durable.publish(tmp, dst, force)
    return result

