"""Checksum files: GNU (`HASH  FILE`, `HASH *FILE`) and BSD (`SHA256 (FILE) = HASH`).

Why match by file name: distributions publish one CHECKSUM/SHA256SUMS file for many images;
the line for *our* file is the one whose name equals the last path component of the URL.
PGP armour and comments are ignored, so clearsigned files work too.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import unquote, urlparse

from imagepipe.errors import InputError

_BSD = re.compile(r"^(SHA256|SHA512)\s*\((?P<name>.+)\)\s*=\s*(?P<hex>[0-9a-fA-F]+)\s*$")
_GNU = re.compile(r"^(?P<hex>[0-9a-fA-F]{64}|[0-9a-fA-F]{128})\s+[ *]?(?P<name>.+?)\s*$")
_ALGO_BY_LEN = {64: "sha256", 128: "sha512"}


def file_name(url: str) -> str:
    """The file name a URL points at (`.../Rocky-9.qcow2?x=1` -> `Rocky-9.qcow2`)."""
    return PurePosixPath(unquote(urlparse(url).path)).name


def parse(text: str) -> dict[str, str]:
    """Every (file name -> "algo:hex") in a checksum file. A later line wins (as sha256sum)."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        m = _BSD.match(line) or _GNU.match(line)
        if m is None:
            continue
        hexd = m.group("hex").lower()
        algo = _ALGO_BY_LEN.get(len(hexd))
        if algo is None:
            continue
        name = m.group("name").strip()
        found[PurePosixPath(name.lstrip("./")).name if "/" in name else name] = f"{algo}:{hexd}"
    return found


def lookup(text: str, url: str, checksum_url: str) -> str:
    """The "algo:hex" for the file behind `url` in the checksum file `text`."""
    entries = parse(text)
    name = file_name(url)
    if name in entries:
        return entries[name]
    if not entries:
        raise InputError(f"{checksum_url}: no checksum lines found",
                         "expected GNU 'HASH  FILE' or BSD 'SHA256 (FILE) = HASH' lines")
    some = ", ".join(sorted(entries)[:5])
    raise InputError(f"{checksum_url}: no checksum for {name!r}",
                     f"the file lists: {some}{', ...' if len(entries) > 5 else ''}")
