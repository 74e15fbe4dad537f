"""Fetch a download into the store, keyed by its content digest, never by its URL.

The order of things (and why):
1. Find the expected digest: inline `sha256:`/`sha512:`, or the line for our file in
   `checksum_url`. Without one the fetch is refused unless `insecure_no_checksum` is set.
2. If the store has an object with that digest, return it: no network at all, whatever the URL.
3. Otherwise try the URL, then each mirror, each with retries and backoff; every attempt resumes
   the same `.part` file with HTTP Range.
4. Verify the digest; on mismatch delete the `.part` (nothing enters the store) and report
   expected vs got. On match, rename into objects/<algo>/<hex>.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.artifact import hash_json
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.fetch import checksums
from imagepipe.fetch.transfer import (
    PermanentError,
    TransientError,
    backoff_sleep,
    download,
    get_text,
    session,
)
from imagepipe.limits import MAX_DOWNLOAD_BYTES
from imagepipe.recipe.model import Download
from imagepipe.store import Store, parse_digest

RETRIES = 4  # attempts per URL
BACKOFF = float(os.environ.get("IMAGEPIPE_FETCH_BACKOFF", "1.0"))  # seconds, doubled each time


class ChecksumMismatch(ImagepipeError):
    """The downloaded bytes are not the ones the recipe asked for."""


@dataclass
class FetchResult:
    path: Path
    digest: str  # "algo:hex"
    url: str | None  # the URL the bytes came from (None: store hit, no network)
    checksum_from: str  # "inline", the checksum URL, or "none (insecure)"
    downloaded: int = 0  # bytes moved over the network in this call
    warnings: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        return {"digest": self.digest, "store_path": str(self.path), "fetched_from": self.url,
                "checksum_from": self.checksum_from, "downloaded_bytes": self.downloaded,
                "warnings": self.warnings}


def urls_of(download: Download) -> list[str]:
    """The URL then its mirrors. A mirror ending in '/' gets the URL's file name appended."""
    name = checksums.file_name(download.url)
    return [download.url] + [m + name if m.endswith("/") else m for m in download.mirrors]


def expected_digest(download: Download, http: Any) -> tuple[str | None, str]:
    """("algo:hex" or None, where it came from)."""
    if download.checksum:
        algo, hexd = parse_digest(download.checksum)
        return f"{algo}:{hexd}", "inline"
    if download.checksum_url:
        text = _with_retries(download.checksum_url, lambda u: get_text(u, http))
        return checksums.lookup(text, download.url, download.checksum_url), download.checksum_url
    if download.insecure_no_checksum:
        return None, "none (insecure_no_checksum)"
    raise InputError(f"refusing to download {download.url} without a checksum",
                     "give the expected digest: checksum: sha256:<hex> or checksum_url: "
                     "(recipe), --checksum or --checksum-url (command line); or, not "
                     "recommended, insecure_no_checksum: true / --insecure-no-checksum")


def fetch(download: Download, store: Store) -> Path:
    """The store path of the verified file behind `download` (downloaded if needed)."""
    return fetch_result(download, store).path


def fetch_result(download: Download, store: Store, *, quiet: bool = False) -> FetchResult:
    for url in [*urls_of(download), *([download.checksum_url] if download.checksum_url else [])]:
        check_file_url(url, download.allow_private_file)  # before any byte moves
    http = session()
    want, source = expected_digest(download, http)
    warnings: list[str] = []
    if want is not None:
        hit = store.get_object(want)
        if hit is not None:
            return FetchResult(hit, want, None, source, 0, warnings)
    algo = parse_digest(want)[0] if want else "sha256"
    part_name = want.replace(":", "-") if want else "url-" + hash_json(download.url)[:32]
    part = store.root / "downloads" / f"{part_name}.part"
    with _part_lock(part):
        if want is not None and (hit := store.get_object(want)) is not None:
            return FetchResult(hit, want, None, source, 0, warnings)  # a concurrent fetch won
        before = part.stat().st_size if part.exists() else 0
        limit = download.max_size or MAX_DOWNLOAD_BYTES
        url, got, moved = _download_any(urls_of(download), part, algo, http, want, quiet,
                                        limit)
        digest = f"{algo}:{got}"
        path = store.put_object(part, digest)
    if want is None:  # said only once the download succeeded
        warnings.append(f"{url} was downloaded without checksum verification "
                        "(insecure_no_checksum)")
        ui.warn(warnings[-1])
    return FetchResult(path, digest, url, source, max(0, moved - before), warnings)


class _part_lock:
    """Exclusive flock on the .part's lock file: one writer per download, others wait."""

    def __init__(self, part: Path) -> None:
        self.path = part.with_suffix(".lock")

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def check_file_url(url: str, allow_private: bool) -> None:
    """A file:// source must be readable by every user unless `allow_private`: its bytes end
    up in world-readable store objects and published images, so /etc/shadow must not become
    a disk image by accident. InputError (exit 2) names the file and the flag."""
    import stat
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    if parsed.scheme != "file" or allow_private:
        return
    path = Path(unquote(parsed.path))
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing: the download reports it with the other mirrors
    if not mode & stat.S_IROTH:
        raise InputError(f"{path}: other users cannot read this file (mode "
                         f"{stat.S_IMODE(mode):04o}); refusing to copy it into the store",
                         "if it really is the source, set allow_private_file: true "
                         "(fetch --allow-private-file)")


def _download_any(urls: Sequence[str], part: Path, algo: str, http: Any, want: str | None,
                  quiet: bool, limit: int) -> tuple[str, str, int]:
    """Try each URL in order; return (url, hex digest, bytes in the file)."""
    errors: list[str] = []
    for url in urls:
        for attempt in range(2):
            resumed = part.exists() and part.stat().st_size > 0
            got = _download_one(url, part, algo, http, errors, quiet or len(urls) == 1, limit)
            if got is None:
                break  # this URL failed; try the next mirror
            if want is None or f"{algo}:{got}" == want:
                return url, got, part.stat().st_size
            part.unlink(missing_ok=True)
            if resumed and attempt == 0:
                # the partial file from an earlier run may be torn (power loss): start over
                ui.warn(f"resumed download of {url} does not match its checksum; "
                        "downloading it again from the start")
                continue
            msg = f"checksum mismatch for {url}: expected {want}, got {algo}:{got}"
            errors.append(msg)
            if url != urls[-1]:
                ui.warn(f"{msg}; trying the next mirror")
                break
            raise ChecksumMismatch(msg, "the file changed upstream or the checksum is wrong; "
                                        "nothing was stored")
    raise ImagepipeError("download failed from every URL:\n" +
                         "\n".join(f"  {e}" for e in errors),
                         "check the URL and your network, or add a mirror "
                         "(recipe: mirrors:, command line: --mirror URL)")


def _download_one(url: str, part: Path, algo: str, http: Any, errors: list[str],
                  quiet: bool, limit: int) -> str | None:
    """Download (or resume) `url` into `part` with retries; hex digest, or None on failure."""
    label = checksums.file_name(url) or url
    with ui.Progress(f"fetch {label}", unit="B") as bar:
        def progress(done: int, total: int | None) -> None:
            bar.set(done, total)

        try:
            return str(_with_retries(url, lambda u: download(u, part, algo, http, progress,
                                                             limit=limit)))
        except (TransientError, PermanentError) as exc:
            errors.append(str(exc))
            if not quiet:
                ui.warn(f"{exc}; trying the next mirror")
            return None


def _with_retries(url: str, attempt: Any) -> Any:
    """attempt(url), retried with exponential backoff on transient errors."""
    for n in range(RETRIES):
        try:
            return attempt(url)
        except TransientError as exc:
            if n + 1 == RETRIES:
                raise
            ui.detail(f"{exc}; retrying in {BACKOFF * 2 ** n:.1f}s")
            backoff_sleep(n, BACKOFF)
    raise AssertionError("unreachable")


