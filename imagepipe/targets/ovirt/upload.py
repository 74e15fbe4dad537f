"""Disk and ISO upload: the engine (ovirtsdk4) for the control path, ovirt-imageio for data.

Why this flow (what users of the upstream tools complain about): any qemu format is accepted,
zero extents are never sent, the remote disk's imageio checksum is compared with the local one
*before* finalizing (so a bad upload never becomes a disk), a paused or failed transfer is
cancelled and the half-made disk removed before the whole upload is retried, and terminal engine
states stop us at once with the engine's reason instead of a timeout. Every acquired resource
registers its clean-up in an ExitStack, so Ctrl-C leaks no disk and no transfer.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import InputError, TransferError
from imagepipe.targets.ovirt import engine as eng
from imagepipe.targets.ovirt.connection import EngineConfig, engine_errors
from imagepipe.targets.ovirt.transfer import (
    LocalChecksum,
    finalize,
    image_info,
    measure_qcow2,
    reachable,
    resume_transfer,
    send,
    start_transfer,
    verify,
)
from imagepipe.targets.ovirt.transfer import RetryableTransferError as _Retry


@dataclass(frozen=True)
class UploadOptions:
    retries: int = 3
    resumes: int = 3  # in-transfer resumes (resend differing segments) before a fresh retry
    disk_timeout: float = 120.0
    transfer_timeout: float = 60.0
    verify: bool = True


DEFAULT_OPTIONS = UploadOptions()


@dataclass(frozen=True)
class UploadResult:
    disk_id: str
    name: str
    format: str
    content_type: str
    virtual_size: int
    storage_domain: str
    checksum: str | None
    attempts: int
    seconds: float
    resent_bytes: int = 0  # data resent by resuming inside a transfer (0: no resume needed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_iso(path: Path) -> bool:
    """ISO 9660 by content: the primary volume descriptor at 0x8000."""
    with open(path, "rb") as f:
        f.seek(0x8000)
        return f.read(8) == b"\x01CD001\x01\x00"


def upload_disk(con: Any, cfg: EngineConfig, image: Path, *, storage_domain: str,
                name: str | None = None, fmt: str = "cow", sparse: bool = True,
                content_type: str = "data", description: str = "Uploaded by imagepipe",
                options: UploadOptions = DEFAULT_OPTIONS,
                checksum: dict[str, Any] | None = None) -> UploadResult:
    """Upload `image` (any format qemu reads) as a new disk; returns it `ok` and verified.

    `checksum` is the image's imageio checksum when the caller already computed it."""
    if fmt not in ("cow", "raw"):
        raise InputError(f"--format must be cow or raw, not {fmt!r}")
    if not image.is_file():
        raise InputError(f"{image}: no such image file")
    start = time.monotonic()
    info = image_info(image, raw_ok=fmt == "raw")
    name = name or image.stem
    eng.find_storage_domain(con, storage_domain)
    initial = measure_qcow2(image) if fmt == "cow" else None
    local: LocalChecksum | dict[str, Any] | None = checksum
    if checksum is None and options.verify:
        # The local checksum runs while the first upload streams: it costs no wall time.
        local = LocalChecksum(image).start()
    last: Exception | None = None
    try:
        for attempt in range(1, options.retries + 2):
            try:
                disk_id, verified, resent = _attempt(con, cfg, image, info, name=name, fmt=fmt,
                                             sparse=sparse, content_type=content_type,
                                             description=description, sd=storage_domain,
                                             initial_size=initial, options=options,
                                             local_sum=local)
            except _Retry as exc:
                last = exc
                if attempt <= options.retries:
                    ui.warn(f"upload attempt {attempt} failed: {exc}; cleaned up, retrying")
                continue
            return UploadResult(disk_id, name, fmt, content_type, info["virtual-size"],
                                storage_domain, verified, attempt,
                                round(time.monotonic() - start, 3), resent)
    finally:
        if isinstance(local, LocalChecksum):
            local.cancel()  # a no-op once finished; stops it on errors and Ctrl-C
    raise TransferError(f"uploading {image} failed {options.retries + 1} times: {last}",
                        "the half-made disks were removed; check the engine's events")


def upload_iso(con: Any, cfg: EngineConfig, iso: Path, *, storage_domain: str,
               name: str | None = None, options: UploadOptions = DEFAULT_OPTIONS) -> UploadResult:
    """An installer ISO as a raw, preallocated disk with content_type=iso (cdrom-attachable)."""
    if not iso.is_file():
        raise InputError(f"{iso}: no such file")
    if not is_iso(iso):
        raise InputError(f"{iso}: not an ISO 9660 image (no CD001 descriptor at 0x8000)",
                         "use `imagepipe ovirt upload-disk` for disk images")
    name = name or iso.name
    if not name.endswith(".iso"):
        name += ".iso"
    return upload_disk(con, cfg, iso, storage_domain=storage_domain, name=name, fmt="raw",
                       sparse=False, content_type="iso", description="ISO uploaded by imagepipe",
                       options=options)


def _attempt(con: Any, cfg: EngineConfig, image: Path, info: dict[str, Any], *, name: str,
             fmt: str, sparse: bool, content_type: str, description: str, sd: str,
             initial_size: int | None, options: UploadOptions,
             local_sum: LocalChecksum | dict[str, Any] | None
             ) -> tuple[str, str | None, int]:
    from ovirtsdk4 import types

    disks = con.system_service().disks_service()
    with ExitStack() as stack:
        with engine_errors(f"creating disk {name!r}"):
            disk = disks.add(types.Disk(
                name=name, description=description, format=types.DiskFormat(fmt),
                provisioned_size=info["virtual-size"], initial_size=initial_size,
                sparse=sparse, content_type=types.DiskContentType(content_type),
                backup=types.DiskBackup.INCREMENTAL if fmt == "cow" else None,
                storage_domains=[types.StorageDomain(name=sd)]))
        stack.callback(eng.cleanup_remove, disks.disk_service(disk.id), f"disk {disk.id}",
                       max(options.disk_timeout, eng.CLEANUP_TIMEOUT_S))
        ui.detail(f"disk {disk.id} created; waiting for the engine to unlock it")
        eng.wait_disk_ok(con, disk.id, options.disk_timeout)
        transfer = start_transfer(con, disk.id, options.transfer_timeout, stack)
        # A new qcow2 disk, or a sparse one on file storage, reads as zeros: skip zero extents.
        resent = 0
        try:
            url = send(image, transfer, cfg, label=f"uploading {image.name}",
                            disk_is_zero=fmt == "cow" or sparse)
        except _Retry as exc:
            url, resent = _resume(con, cfg, image, transfer, options, exc)
        checksum = None
        if local_sum is not None:
            local = local_sum if isinstance(local_sum, dict) else local_sum.result()
            checksum = verify(url, cfg, local, transfer.id)
        finalize(con, transfer, disk.id, options.transfer_timeout)
        eng.wait_disk_ok(con, disk.id, options.disk_timeout)
        stack.pop_all()
        return disk.id, checksum, resent


def _resume(con: Any, cfg: EngineConfig, image: Path, transfer: Any, options: UploadOptions,
            failure: Exception) -> tuple[str, int]:
    """Resume inside the same transfer; re-raise `failure` (-> fresh attempt) if we cannot."""
    from imagepipe.targets.ovirt.resume import resend_differing

    ui.warn(f"{failure}; resuming the transfer")
    for _ in range(options.resumes):
        if not resume_transfer(con, transfer, options.transfer_timeout):
            break
        try:
            url = reachable(transfer, cfg)
        except _Retry as exc:
            # The engine has not noticed the broken ticket yet; it pauses the transfer soon.
            failure = exc
            time.sleep(1)
            continue
        try:
            sent, _ = resend_differing(image, url, cfg)
            return url, sent
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            failure = exc
            ui.warn(f"resuming failed: {exc}")
    raise _Retry(str(failure))
