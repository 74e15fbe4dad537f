"""Decompress a fetched file (.xz .gz .zst .bz2) into the store, cached by input digest + codec.

Why by content magic and not by suffix: a mirror may serve `image.raw` compressed or a URL may
have no suffix at all; the bytes decide. Why sparse writes: a decompressed raw disk is mostly
zeros; writing holes keeps a 10 GiB image from taking 10 GiB.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Callable
from pathlib import Path
from typing import IO

from imagepipe.artifact import Artifact, hash_json
from imagepipe.store import Store

MAGIC = {"xz": b"\xfd7zXZ\x00", "gz": b"\x1f\x8b", "zst": b"\x28\xb5\x2f\xfd", "bz2": b"BZh"}
SUFFIXES = (".xz", ".gz", ".zst", ".bz2")
CHUNK = 1 << 20
ZERO = bytes(CHUNK)


def detect(path: Path) -> str | None:
    with open(path, "rb") as f:
        head = f.read(8)
    for codec, magic in MAGIC.items():
        if head.startswith(magic):
            return codec
    return None


def unpacked_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)] or "unpacked"
    return name + ".unpacked"


def _key(codec: str, digest: str) -> str:
    return hash_json({"op": "decompress", "codec": codec, "input": digest, "version": 1})


def cached_unpack(store: Store, path: Path, digest: str) -> Artifact | None | bool:
    """Without writing: False if `path` is not compressed, else the stored decompressed
    artifact or None if it is not decompressed yet."""
    codec = detect(path)
    return False if codec is None else store.get_stage(_key(codec, digest))


def unpack(store: Store, path: Path, digest: str, name: str) -> Artifact | None:
    """The decompressed file as a stored artifact (digest set), or None if not compressed."""
    codec = detect(path)
    if codec is None:
        return None
    key = _key(codec, digest)
    hit = store.get_stage(key)
    if hit is not None:
        return hit
    work = store.workdir("unpack")
    try:
        out = work.path / unpacked_name(name)
        if codec == "zst":
            from imagepipe.tools.run import run

            run(["zstd", "-q", "-d", "--sparse", "-o", str(out), str(path)], timeout=3600)
        else:
            opener: Callable[..., IO[bytes]] = {"xz": lzma.open, "gz": gzip.open,
                                                "bz2": bz2.open}[codec]  # type: ignore[assignment]
            with opener(path, "rb") as src:
                _write_sparse(src, out)
        return store.commit_stage(key, work, Artifact(path=out, kind="file",
                                                      metadata={"decompressed": codec}),
                                  label=f"unpack {codec}")
    finally:
        work.release()


def _write_sparse(src: IO[bytes], out: Path) -> None:
    with open(out, "wb") as dst:
        size = 0
        while data := src.read(CHUNK):
            if data == ZERO[: len(data)]:
                dst.seek(len(data), 1)
            else:
                dst.write(data)
            size += len(data)
        dst.truncate(size)
