"""The one place that uses ovirt-imageio's private API, bounded by a tested version range.

Why private calls at all: imageio's public client can upload, measure and checksum, but it
cannot open a local image as a readable backend (`client._api._open_nbd`: a read-only qemu-nbd
that imageio starts and stops itself) and its `client.checksum()` cannot be cancelled. The
resumed upload (read local segments) and the cancellable local checksum (imageio's checksum
`Operation` from `_internal.handlers`) need exactly those. Private names may change in any
release, so they are used only with an imageio version in TESTED, where the tests prove them:

- inside the range: the private calls are used;
- outside it, the local checksum warns once and falls back to the public `client.checksum()`
  (correct, only not stoppable early), and resuming a broken upload is refused with a message
  naming the installed and the tested versions (the upload then restarts from zero, as it
  always does when a resume is impossible).
"""

from __future__ import annotations

import functools
import importlib.metadata
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError

# [lowest tested, first untested): the releases whose private API the tests exercise.
TESTED = ((2, 5), (2, 6))
TESTED_TEXT = "2.5.x"
INSTALL_HINT = "install a tested ovirt-imageio: pip install 'ovirt-imageio>=2.5,<2.6'"


def installed_version() -> str:
    """The installed ovirt-imageio distribution's version, e.g. '2.5.1'."""
    return importlib.metadata.version("ovirt-imageio")


def is_tested(version: str) -> bool:
    """True if `version` lies in TESTED (only its leading numbers count: '2.5.1rc1' is 2.5.1)."""
    nums = tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0])[:3])
    low, high = TESTED
    return low <= nums < high


class UntestedImageio(ImagepipeError):
    """The installed imageio is outside the tested range and the call has no public fallback."""


def require_tested(purpose: str) -> None:
    """Raise UntestedImageio naming `purpose`, the installed and the tested versions."""
    version = installed_version()
    if not is_tested(version):
        raise UntestedImageio(
            f"{purpose} needs ovirt-imageio's private API, tested with {TESTED_TEXT} only; "
            f"ovirt-imageio {version} is installed",
            INSTALL_HINT,
        )


@functools.cache
def _warn_untested(purpose: str, version: str) -> None:
    ui.warn(f"ovirt-imageio {version} is outside the tested range {TESTED_TEXT}: {purpose}")


def private_api_usable(fallback: str) -> bool:
    """True inside TESTED; outside, warn once (saying what `fallback` happens) and False."""
    version = installed_version()
    if is_tested(version):
        return True
    _warn_untested(fallback, version)
    return False


def image_info(image: Path) -> dict[str, Any]:
    """qemu-img's info of a local image as imageio's client reads it (format, virtual-size)."""
    from ovirt_imageio.client import _api

    info: dict[str, Any] = _api.info(str(image))
    return info


@contextmanager
def open_local_image(image: Path, fmt: str) -> Iterator[Any]:
    """A read-only backend over `image` (seek/readinto/extents) through a qemu-nbd that imageio
    starts here and stops on exit. Call `require_tested` or `private_api_usable` first."""
    from ovirt_imageio.client import _api

    with _api._open_nbd(str(image), fmt, read_only=True) as backend:
        yield backend


def checksum_operation(backend: Any, block_size: int, algorithm: str) -> Any:
    """imageio's checksum Operation over `backend` (same result as the server's); `.run()`
    computes it, `.cancel()` stops it between blocks."""
    from ovirt_imageio._internal.handlers import checksum

    return checksum.Operation(backend, bytearray(block_size), algorithm)
