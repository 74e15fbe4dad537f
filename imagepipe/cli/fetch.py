"""`imagepipe fetch URL (--checksum ALGO:HEX | --checksum-url URL) [--mirror URL]... [-o PATH]`."""

from __future__ import annotations

from pathlib import Path

import click

from imagepipe import ui
from imagepipe.cli.common import examples, force_option
from imagepipe.cli.store_option import store_option


def local_url(url: str, what: str) -> str:
    """URLs as given; a local path becomes a file:// URL. A path that does not exist, or a
    scheme we cannot fetch, is bad input (exit 2) before anything is downloaded."""
    from urllib.parse import unquote, urlparse

    from imagepipe.errors import InputError

    parsed = urlparse(url)
    if parsed.scheme in ("http", "https"):
        return url
    if parsed.scheme not in ("", "file"):
        raise InputError(f"{what} {url}: unsupported scheme {parsed.scheme}:",
                         "use http://, https://, file:// or a local path")
    path = Path(unquote(parsed.path) if parsed.scheme else url)
    if url.endswith("/"):  # a mirror directory: the URL's file name is appended later
        if not path.is_dir():
            raise InputError(f"{what} {url}: no such directory {path}")
        return path.resolve().as_uri() + "/"
    if not path.is_file():
        raise InputError(f"{what} {url}: no such file {path}")
    return path.resolve().as_uri()


@click.command(epilog=examples(
    "imagepipe fetch https://example.org/disk.qcow2 --checksum sha256:HEX -o disk.qcow2",
    "imagepipe fetch https://example.org/disk.qcow2 --checksum-url https://example.org/SHA256SUMS",
    "imagepipe fetch ./local.raw.xz --insecure-no-checksum --decompress"))
@click.argument("url")
@click.option("--checksum", metavar="ALGO:HEX", help="Expected sha256:/sha512: digest.")
@click.option("--checksum-url", metavar="URL",
              help="A checksum file (GNU or BSD format) listing the file by name.")
@click.option("--mirror", "mirrors", multiple=True, metavar="URL",
              help="Another URL for the same file (tried in order; '/'-ending = directory).")
@click.option("--insecure-no-checksum", is_flag=True,
              help="Download without verifying (not recommended).")
@click.option("--decompress", is_flag=True,
              help="Also decompress (.xz .gz .zst .bz2) into the store and use that file.")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Also place a copy here (a directory: under the URL's file name; reflink "
                   "where the filesystem can, else a sparse copy; never a hardlink into the "
                   "store).")
@click.option("--max-size", metavar="SIZE",
              help="Refuse a download larger than this (e.g. 4G; default 64G).")
@click.option("--allow-private-file", is_flag=True,
              help="Allow a file:// source that other users cannot read.")
@force_option
@store_option
def fetch(url: str, checksum: str | None, checksum_url: str | None, mirrors: tuple[str, ...],
          insecure_no_checksum: bool, decompress: bool, output: Path | None,
          max_size: str | None, allow_private_file: bool, force: bool,
          store: Path | None) -> None:
    """Download URL into the store (verified, resumable) and print its store path."""
    from imagepipe.durable import refuse_overwrite
    from imagepipe.errors import InputError
    from imagepipe.fetch import fetch_result
    from imagepipe.fetch.checksums import file_name
    from imagepipe.fetch.unpack import unpack
    from imagepipe.recipe.model import Download
    from imagepipe.store import Store
    from imagepipe.store.place import copy_out

    if checksum and checksum_url:
        raise InputError("give --checksum or --checksum-url, not both")
    url = local_url(url, "URL")
    mirrors = tuple(local_url(m, "--mirror") for m in mirrors)
    if output is not None and not output.is_dir():
        refuse_overwrite(output, force)
    limit = None
    if max_size is not None:
        from imagepipe.recipe.validate import parse_size

        limit = parse_size(max_size)
        if not limit:
            raise InputError(f"--max-size {max_size!r} is not a size", "e.g. 4G or 512M")
    st = Store(store)
    try:
        res = fetch_result(Download(url=url, checksum=checksum, checksum_url=checksum_url,
                                    mirrors=mirrors, insecure_no_checksum=insecure_no_checksum,
                                    max_size=limit, allow_private_file=allow_private_file),
                           st)
        path, digest = res.path, res.digest
        if decompress:
            art = unpack(st, res.path, res.digest, file_name(url))
            if art is not None and art.path is not None and art.digest is not None:
                path, digest = art.path, art.digest
        if output is not None:
            if output.is_dir():
                output = output / (path.name if decompress else file_name(url))
                refuse_overwrite(output, force)
            how = copy_out(path, output, hardlink=False)  # writes to it must not reach the store
            ui.info(f"placed {output} ({how})")
    finally:
        st.holds.close()
    how_got = f"downloaded {res.downloaded} bytes from {res.url}" if res.url else "cached"
    ui.info(f"{digest} ({how_got})")
    ui.result(str(path), path=str(path), digest=digest, url=res.url,
              downloaded=res.downloaded, output=str(output) if output else None)
