"""One image transfer: wait until ready, send data with ovirt_imageio, verify, finalize.

Why verify before finalize: finalizing hands the disk to the engine; after that a bad upload
is a bad disk in production. imageio's checksum (blkhash over guest data, holes hashed as zeros)
is format-independent, so the local image (any qemu format) and the remote disk (qcow2 or raw)
compare directly, and the daemon computes the remote one next to the storage.
"""

from __future__ import annotations

import http.client
import json
import ssl
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from imagepipe import ui
from imagepipe.targets.ovirt import engine as eng
from imagepipe.targets.ovirt.connection import (
    EngineConfig,
    EngineError,
    PassThrough,
    engine_errors,
)

BLOCK_SIZE = 4 << 20
ALGORITHM = "sha256"  # SHA-NI makes it ~2x faster than blake2b here
READY_PHASES = ("transferring",)


class RetryableTransferError(PassThrough):
    """A failure worth a fresh attempt (paused transfer, broken data connection, bad checksum)."""


def image_info(image: Path, *, raw_ok: bool = False) -> dict[str, Any]:
    """Safe image facts (imagepipe.convert.probe_image): backing files and a content that
    contradicts the extension are refused (exit 2), since imageio's reader would follow them.
    A file that is no image at all (notes.txt) is refused too, unless `raw_ok` (--format raw)
    says the user means its bytes as a raw disk."""
    from imagepipe.convert import probe_image
    from imagepipe.tools.probe import refuse_unrecognised

    info: dict[str, Any] = probe_image(image)
    declared = "raw" if raw_ok and info["imagepipe-format"] == "raw" else None
    refuse_unrecognised(image, info, declared=declared)
    return info


def measure_qcow2(image: Path) -> int:
    from ovirt_imageio import client

    return int(client.measure(str(image), "qcow2")["required"])


def local_checksum(image: Path) -> dict[str, Any]:
    return LocalChecksum(image).run()


class LocalChecksum:
    """The image's imageio checksum, computed in a worker thread and cancellable.

    Why not `client.checksum()`: it cannot be stopped, so Ctrl-C during an upload of a big
    image would wait for the whole local checksum before the clean-up finishes. This runs the
    same operation (imageio's checksum Operation over a read-only qemu-nbd) and cancels it
    between blocks; the qemu-nbd is stopped by imageio's own context manager either way.
    """

    def __init__(self, image: Path) -> None:
        import concurrent.futures

        self.image = image
        self._op: Any = None
        self._cancelled = False
        self._future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()

    def run(self) -> dict[str, Any]:
        from imagepipe.targets.ovirt import imageio_private as private

        if not private.private_api_usable("the local checksum uses the public client, which "
                                          "Ctrl-C cannot stop before it ends"):
            from ovirt_imageio import client

            result: dict[str, Any] = client.checksum(str(self.image), block_size=BLOCK_SIZE,
                                                     algorithm=ALGORITHM)
            return result
        info = private.image_info(self.image)
        with private.open_local_image(self.image, info["format"]) as backend:
            self._op = private.checksum_operation(backend, BLOCK_SIZE, ALGORITHM)
            if self._cancelled:
                self._op.cancel()
            done: dict[str, Any] = self._op.run()
            return done

    def start(self) -> LocalChecksum:
        import threading

        def work() -> None:
            try:
                self._future.set_result(self.run())
            except BaseException as exc:  # handed to whoever waits for the result
                self._future.set_exception(exc)

        self._thread = threading.Thread(target=work, name="local-checksum", daemon=True)
        self._thread.start()
        return self

    def result(self) -> dict[str, Any]:
        return self._future.result()

    def cancel(self) -> None:
        """Stop the computation and wait until its qemu-nbd is gone."""
        self._cancelled = True
        if self._op is not None:
            self._op.cancel()
        thread = getattr(self, "_thread", None)
        if thread is not None:
            thread.join(30)


def _service(con: Any, transfer_id: str) -> Any:
    return con.system_service().image_transfers_service().image_transfer_service(transfer_id)


def start_transfer(con: Any, disk_id: str, timeout: float, stack: ExitStack) -> Any:
    """Create an upload transfer (NBD backend) and wait until the engine has a ticket ready."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    with engine_errors(f"creating an upload transfer for disk {disk_id}"):
        transfer = con.system_service().image_transfers_service().add(types.ImageTransfer(
            disk=types.Disk(id=disk_id), direction=types.ImageTransferDirection.UPLOAD,
            format=types.DiskFormat.RAW, inactivity_timeout=60,
            timeout_policy=types.ImageTransferTimeoutPolicy.CANCEL))
    service = _service(con, transfer.id)
    stack.callback(_cancel_quietly, service, timeout)

    def get() -> Any:
        try:
            t = service.get()
        except sdk.NotFoundError:
            raise RetryableTransferError(f"transfer {transfer.id} was removed") from None
        phase = t.phase
        if phase == types.ImageTransferPhase.FINISHED_FAILURE:
            raise EngineError(f"transfer {t.id} failed on the engine (finished_failure)")
        if phase == types.ImageTransferPhase.PAUSED_SYSTEM:
            raise RetryableTransferError(f"transfer {t.id} was paused by the system "
                                         "(the host could not prepare the image)")
        if phase not in (types.ImageTransferPhase.INITIALIZING,
                         types.ImageTransferPhase.TRANSFERRING):
            raise RetryableTransferError(f"transfer {t.id} is in unexpected phase {phase}")
        return t

    with engine_errors(f"waiting for transfer {transfer.id}"):
        return eng.poll(f"transfer {transfer.id} to be ready", get,
                        lambda t: t.phase == types.ImageTransferPhase.TRANSFERRING, timeout)


def _cancel_quietly(service: Any, timeout: float) -> None:
    """Cancel unless finished, then wait for the engine's clean-up (it removes the disk)."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    done = (types.ImageTransferPhase.FINISHED_SUCCESS, types.ImageTransferPhase.FINISHED_FAILURE)
    try:
        if service.get().phase in done:
            return
        service.cancel()
        eng.poll("the cancelled transfer to finish", service.get,
                 lambda t: t.phase in done, timeout)
    except sdk.NotFoundError:
        return
    except Exception as exc:  # clean-up must go on; the disk removal comes next
        ui.warn(f"cancelling the transfer: {exc}")


def send(image: Path, transfer: Any, cfg: EngineConfig, *, label: str, disk_is_zero: bool) -> str:
    """Upload the data; returns the URL that worked (transfer_url, else proxy_url)."""
    from ovirt_imageio import client

    url = reachable(transfer, cfg)
    start = time.monotonic()
    try:
        with ui.Progress(label) as progress:
            client.upload(str(image), url, str(cfg.ca_file) if cfg.ca_file else None,
                          secure=not cfg.insecure, progress=_ProgressAdapter(progress),
                          proxy_url=transfer.proxy_url, disk_is_zero=disk_is_zero)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        raise RetryableTransferError(f"sending data to imageio failed: {exc}") from None
    ui.detail(f"data sent in {time.monotonic() - start:.2f}s")
    return url


class _ProgressAdapter:
    """imageio wraps any *callable* progress object and then never sets its `size`; ui.Progress
    is callable, so hand imageio this plain object (size + update) instead."""

    def __init__(self, progress: ui.Progress) -> None:
        self._progress = progress

    @property
    def size(self) -> int | None:
        return self._progress.size

    @size.setter
    def size(self, value: int) -> None:
        self._progress.size = value

    def update(self, n: int) -> None:
        self._progress.update(n)


def _context(cfg: EngineConfig) -> ssl.SSLContext:
    if cfg.insecure:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx
    return ssl.create_default_context(cafile=str(cfg.ca_file) if cfg.ca_file else None)


def _request(url: str, cfg: EngineConfig, method: str, suffix: str = "",
             timeout: float = 600) -> tuple[int, bytes]:
    parts = urlsplit(url)
    con = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                      context=_context(cfg), timeout=timeout)
    try:
        con.request(method, parts.path + suffix)
        resp = con.getresponse()
        return resp.status, resp.read()
    finally:
        con.close()


def reachable(transfer: Any, cfg: EngineConfig) -> str:
    """transfer_url when it answers, else proxy_url (as the imageio client falls back)."""
    for url in (transfer.transfer_url, transfer.proxy_url):
        if not url:
            continue
        try:
            status, _ = _request(url, cfg, "OPTIONS", timeout=10)
            if status == 200:
                return str(url)
        except OSError:
            continue
    raise RetryableTransferError("neither transfer_url nor proxy_url answered")


def verify(url: str, cfg: EngineConfig, local: dict[str, Any], transfer_id: str) -> str:
    """Compare the daemon's checksum of the remote disk with the local image's."""
    suffix = f"/checksum?algorithm={local['algorithm']}&block_size={local['block_size']}"
    start = time.monotonic()
    try:
        status, body = _request(url, cfg, "GET", suffix)
    except OSError as exc:
        raise RetryableTransferError(f"reading the remote checksum failed: {exc}") from None
    if status != 200:
        raise RetryableTransferError(f"imageio refused the checksum request ({status}): "
                                     f"{body[:200].decode(errors='replace')}")
    remote = json.loads(body)
    if remote["checksum"] != local["checksum"]:
        raise RetryableTransferError(f"checksum mismatch after upload (transfer {transfer_id}): "
                                     f"local {local['checksum'][:16]}…, remote "
                                     f"{remote['checksum'][:16]}…")
    ui.detail(f"verified in {time.monotonic() - start:.2f}s: "
              f"{local['algorithm']}:{local['checksum']}")
    return f"{local['algorithm']}:{local['checksum']}"


def resume_transfer(con: Any, transfer: Any, timeout: float) -> bool:
    """Make a transfer usable again after a data-plane failure: True when `transferring`.

    A paused transfer is resumed (the engine adds the ticket again); a finished, cancelled or
    vanished one cannot be, and the caller starts a fresh upload instead."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    phases = types.ImageTransferPhase
    service = _service(con, transfer.id)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            phase = service.get().phase
            if phase == phases.TRANSFERRING:
                return True
            if phase in (phases.PAUSED_SYSTEM, phases.PAUSED_USER):
                service.resume()
            elif phase not in (phases.RESUMING, phases.INITIALIZING):
                return False
            time.sleep(0.1)
    except sdk.Error as exc:
        ui.detail(f"cannot resume transfer {transfer.id}: {exc}")
    return False


def finalize(con: Any, transfer: Any, disk_id: str, timeout: float) -> None:
    """Finalize and wait for the engine's verdict; a failure here is final (disk removed)."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    service = _service(con, transfer.id)
    with engine_errors(f"finalizing transfer {transfer.id}"):
        service.finalize()

    def get() -> Any:
        try:
            t = service.get()
        except sdk.NotFoundError:
            return None  # engines before 4.4.7 drop finished transfers: the disk tells
        if t.phase == types.ImageTransferPhase.FINISHED_FAILURE:
            raise EngineError(f"the engine rejected the uploaded disk {disk_id}: verification "
                              f"failed at finalize (transfer {t.id} finished_failure); the "
                              "engine removed the disk")
        if t.phase == types.ImageTransferPhase.PAUSED_SYSTEM:
            raise EngineError(f"the engine could not finalize transfer {t.id} "
                              f"(paused_system); disk {disk_id} is illegal")
        return t

    with engine_errors(f"waiting for transfer {transfer.id} to finalize"):
        eng.poll(f"transfer {transfer.id} to finalize", get,
                 lambda t: t is None or t.phase == types.ImageTransferPhase.FINISHED_SUCCESS,
                 timeout * 5)
