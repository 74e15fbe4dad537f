"""Small engine helpers: lookups, bounded polling, removal that waits out locks.

Why poll fast and bounded: upstream clients sleep 1 s between polls and give up after minutes,
so a failure surfaces as a long timeout. We poll every 0.2 s, stop at once on a terminal state
(`illegal`, `finished_failure`) with the engine's words, and every wait has a deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from imagepipe import ui
from imagepipe.errors import TimeoutExpired
from imagepipe.targets.ovirt.connection import EngineError, describe_sdk_error, engine_errors

POLL_S = 0.2  # between retries of a removal the engine refused as locked
T = TypeVar("T")


def poll(what: str, get: Callable[[], T], done: Callable[[T], bool], timeout: float) -> T:
    """Call `get` until `done(value)`; `get` may raise to stop early.

    The interval starts at 50 ms and backs off to 1 s: quick engine steps are seen at once,
    long ones (a template copy) do not flood the engine with requests."""
    deadline = time.monotonic() + timeout
    interval = 0.05
    while True:
        value = get()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutExpired(f"gave up after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)


def search_one(service: Any, what: str, name: str, **query: Any) -> Any | None:
    with engine_errors(f"looking up {what} {name!r}"):
        found = service.list(search=f"name={_quote(name)}", **query)
    return found[0] if found else None


def _quote(value: str) -> str:
    return f'"{value}"' if any(c in value for c in " =\"") else value


def find_storage_domain(con: Any, name: str) -> Any:
    sds = con.system_service().storage_domains_service()
    sd = search_one(sds, "storage domain", name)
    if sd is None:
        with engine_errors("listing storage domains"):
            known = [s.name for s in sds.list()]
        raise EngineError(f"storage domain {name!r} not found on the engine",
                          f"known: {', '.join(known) or 'none'}")
    return sd


def wait_disk_ok(con: Any, disk_id: str, timeout: float) -> Any:
    """Wait for a disk to be `ok`; `illegal` or removal fails at once."""
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    service = con.system_service().disks_service().disk_service(disk_id)

    def get() -> Any:
        try:
            with engine_errors(f"reading disk {disk_id}"):
                disk = service.get()
        except EngineError as exc:
            if isinstance(exc.__context__, sdk.NotFoundError):
                raise EngineError(f"disk {disk_id} was removed by the engine") from None
            raise
        if disk.status == types.DiskStatus.ILLEGAL:
            raise EngineError(f"disk {disk_id} is illegal: the engine could not create or "
                              "verify it")
        return disk

    try:
        return poll(f"disk {disk_id} to become ok", get,
                    lambda d: d.status == types.DiskStatus.OK, timeout)
    except TimeoutExpired as exc:
        raise EngineError(f"{exc} (it stayed locked)",
                          "the engine may be busy; see its events, or raise --disk-timeout"
                          ) from None


def remove_entity(service: Any, what: str, timeout: float, **kwargs: Any) -> None:
    """Remove, retrying while the engine answers 409 (locked); 404 means already gone."""
    import ovirtsdk4 as sdk

    deadline = time.monotonic() + timeout
    while True:
        try:
            service.remove(**kwargs)
        except sdk.NotFoundError:
            pass
        except sdk.Error as exc:
            if getattr(exc, "code", None) == 409 and time.monotonic() < deadline:
                time.sleep(POLL_S * 2)
                continue
            raise EngineError(f"could not remove {what}: {describe_sdk_error(exc)}",
                              "remove it in the engine's UI") from None
        break
    # Removal is asynchronous in the engine: wait until it is really gone.
    while time.monotonic() < deadline:
        try:
            service.get()
        except sdk.NotFoundError:
            return
        except sdk.Error:
            return
        time.sleep(POLL_S)
    ui.warn(f"{what} is still listed by the engine after {timeout:.0f}s")


CLEANUP_TIMEOUT_S = 60.0


def cleanup_remove(service: Any, what: str, timeout: float = CLEANUP_TIMEOUT_S) -> None:
    """remove_entity for ExitStack clean-ups: a failure is a warning naming the leftover, so
    it never hides the error that caused the clean-up."""
    try:
        remove_entity(service, what, timeout)
    except Exception as exc:
        ui.warn(f"{what} was left on the engine: {exc}")
