"""Moving bytes: one URL into a `.part` file, resumed with HTTP Range, hashed on the way.

Why hash while downloading: the checksum costs no extra pass over a multi-GiB image, and a
resumed download re-hashes only the bytes already on disk. Why `.part` files live in the store
(not in a temp dir): an interrupted download (Ctrl-C, kill -9, a dropped connection) keeps its
bytes, and the next attempt asks only for the rest. No fsync: a power loss is caught by the
store's boot-id stamp (Store.put_object), and a torn `.part` fails its checksum.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from queue import Queue
from typing import IO, Any
from urllib.parse import unquote, urlparse

from imagepipe.errors import ImagepipeError, InputError
from imagepipe.limits import MAX_DOWNLOAD_BYTES, human

log = logging.getLogger("imagepipe.fetch")
CHUNK = 1 << 20
TIMEOUT = (10.0, 60.0)  # connect, read (seconds without a byte)


class TransientError(ImagepipeError):
    """Worth retrying the same URL (connection dropped, 5xx, timeout)."""


class PermanentError(ImagepipeError):
    """Not worth retrying this URL (404, 403, bad scheme); try the next mirror."""


class TooLarge(InputError):
    """The download is larger than `max_size` (exit 2); its `.part` has been removed."""


def _too_large(url: str, part: Path, size: int, limit: int, announced: bool) -> TooLarge:
    part.unlink(missing_ok=True)
    what = "announces" if announced else "sent more than"
    return TooLarge(f"{url}: the server {what} {human(size)}, more than max_size "
                    f"{human(limit)}; nothing was stored",
                    "raise the source's max_size: if this file really is that large")


def session() -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Debian's requests warns about a newer urllib3
        import requests
    s = requests.Session()
    s.headers["User-Agent"] = "imagepipe"
    s.headers["Accept-Encoding"] = "identity"  # we want the bytes the checksum is for
    return s


def get_text(url: str, http: Any) -> str:
    """A small text file (a checksum list) from http(s):// or file://."""
    scheme = urlparse(url).scheme
    if scheme == "file":
        return Path(unquote(urlparse(url).path)).read_text(errors="replace")
    if scheme not in ("http", "https"):
        raise InputError(f"unsupported URL scheme in {url!r}", "use http://, https:// or file://")
    import requests

    try:
        resp = http.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransientError(f"{url}: {exc}") from None
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise TransientError(f"{url}: HTTP {resp.status_code}")
    if resp.status_code != 200:
        raise PermanentError(f"{url}: HTTP {resp.status_code} {resp.reason}")
    return str(resp.text)


class _Hasher:
    """sha digest computed in a helper thread, so hashing overlaps network reads and writes."""

    def __init__(self, algo: str) -> None:
        self.h = hashlib.new(algo)
        self.q: Queue[bytes | None] = Queue(maxsize=16)
        self.t = threading.Thread(target=self._work, daemon=True)
        self.t.start()

    def _work(self) -> None:
        while (data := self.q.get()) is not None:
            self.h.update(data)

    def update(self, data: bytes) -> None:
        self.q.put(data)

    def hexdigest(self) -> str:
        self.q.put(None)
        self.t.join()
        return self.h.hexdigest()

    def abandon(self) -> None:
        self.q.put(None)


def hash_prefix(part: Path, algo: str) -> _Hasher:
    hasher = _Hasher(algo)
    with open(part, "rb") as f:
        while data := f.read(CHUNK * 4):
            hasher.update(data)
    return hasher


def download(url: str, part: Path, algo: str, http: Any,
             progress: Callable[[int, int | None], None], *,
             limit: int = MAX_DOWNLOAD_BYTES) -> str:
    """Append the missing rest of `url` to `part`; return the hex digest of the whole file.

    `progress(done, total)` is called as bytes arrive. Raises TransientError / PermanentError,
    or TooLarge past `limit` bytes (announced or streamed; the `.part` is removed). All-zero
    blocks are skipped, not written, so a sparse raw image stays sparse in the store.
    """
    scheme = urlparse(url).scheme
    if scheme == "file":
        return _copy_file(Path(unquote(urlparse(url).path)), part, algo, progress, limit)
    if scheme not in ("http", "https"):
        raise PermanentError(f"unsupported URL scheme in {url!r}",
                             "use http://, https:// or file://")
    import requests

    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        resp = http.get(url, headers=headers, stream=True, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise TransientError(f"{url}: {exc}") from None
    with resp:
        if resp.status_code == 416 and have:
            total = _total_from_range(resp.headers.get("Content-Range"))
            if total == have:  # the .part is already complete
                return hash_prefix(part, algo).hexdigest()
            part.unlink()
            raise TransientError(f"{url}: stale partial download discarded")
        if resp.status_code >= 500 or resp.status_code in (408, 429):
            raise TransientError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        if resp.status_code not in (200, 206):
            raise PermanentError(f"{url}: HTTP {resp.status_code} {resp.reason}")
        if resp.status_code == 206 and not resp.headers.get("Content-Range", "").startswith(
                f"bytes {have}-"):
            raise PermanentError(f"{url}: server answered a different range "
                                 f"({resp.headers.get('Content-Range')})")
        if resp.status_code == 200:
            have = 0  # no resume support: start over
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None and length.isdigit() else None
        if total is not None and total > limit:
            raise _too_large(url, part, total, limit, announced=True)
        hasher = hash_prefix(part, algo) if have else _Hasher(algo)
        return _stream(resp, url, part, have, total, hasher, progress, limit)


def _stream(resp: Any, url: str, part: Path, have: int, total: int | None,
            hasher: _Hasher, progress: Callable[[int, int | None], None], limit: int) -> str:
    import requests
    import urllib3

    done = have
    progress(done, total)
    try:
        with open(part, "r+b" if have else "wb") as out:
            out.seek(have)
            done = _pump(lambda: resp.raw.read(CHUNK, decode_content=False), out, hasher,
                         done, total, progress, limit)
    except TooLarge:
        hasher.abandon()
        raise _too_large(url, part, limit + 1, limit, announced=False) from None
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        hasher.abandon()
        if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
            part.unlink(missing_ok=True)  # a full disk must not stay full of our .part
            raise ImagepipeError(f"cannot write {part}: {exc}",
                                 "free space in the store (imagepipe cache gc) and retry; "
                                 "the partial download was removed") from None
        got = part.stat().st_size if part.exists() else 0
        raise TransientError(f"{url}: connection lost after {got} bytes ({exc})") from None
    except BaseException:
        hasher.abandon()
        raise
    if total is not None and done != total:
        hasher.abandon()
        raise TransientError(f"{url}: connection closed after {done} of {total} bytes")
    return hasher.hexdigest()


def _total_from_range(value: str | None) -> int | None:
    if value and "/" in value:
        tail = value.rsplit("/", 1)[1]
        return int(tail) if tail.isdigit() else None
    return None


def _copy_file(src: Path, part: Path, algo: str,
               progress: Callable[[int, int | None], None], limit: int) -> str:
    if not src.is_file():
        raise PermanentError(f"file not found: {src}")
    total = src.stat().st_size
    if total > limit:
        raise _too_large(str(src), part, total, limit, announced=True)
    hasher = _Hasher(algo)
    try:
        with open(src, "rb") as f, open(part, "wb") as out:
            _pump(lambda: f.read(CHUNK * 4), out, hasher, 0, total, progress, limit)
    except OSError as exc:
        hasher.abandon()
        part.unlink(missing_ok=True)
        raise ImagepipeError(f"cannot copy {src} into {part}: {exc}") from None
    except BaseException:
        hasher.abandon()
        raise
    return hasher.hexdigest()


_ZERO = bytes(CHUNK * 4)


def _all_zero(data: bytes) -> bool:
    """memcmp against a zero buffer: ~10x faster than bytes.count, and stops at the first
    non-zero byte of ordinary data."""
    if len(data) == len(_ZERO):
        return data == _ZERO
    return data == bytes(len(data))


def _pump(read: Callable[[], bytes], out: IO[bytes], hasher: _Hasher, done: int,
          total: int | None, progress: Callable[[int, int | None], None],
          limit: int = MAX_DOWNLOAD_BYTES) -> int:
    """Copy read() chunks to `out` and the hasher until EOF; return bytes so far. All-zero
    chunks become holes (a seek; the final truncate sets the size), so sparse images stay
    sparse. Raises TooLarge once more than `limit` bytes arrived."""
    while data := read():
        hasher.update(data)
        done += len(data)
        if done > limit:
            raise TooLarge("too large")
        if _all_zero(data):
            out.seek(len(data), 1)
        else:
            out.write(data)
        progress(done, total)
    out.truncate(done)
    out.flush()
    return done


def backoff_sleep(attempt: int, base: float) -> None:
    time.sleep(min(base * (2 ** attempt), 30.0))
