"""The bootstrap path's bad inputs, with the real mmdebstrap and the real mirror check.

The successful path (mmdebstrap -> disk -> boot -> HTTP 200) is the end-to-end httpd test;
these are the failures a user meets first, each of which must say what to fix, quickly.
"""

from __future__ import annotations

import io
import socket
import tarfile
import time
from pathlib import Path

import pytest

from imagepipe.bases import bootstrap as bs
from imagepipe.bases import rootfs_disk as rd
from imagepipe.errors import InputError
from imagepipe.recipe.model import BootstrapSource


def _mirror_or_skip() -> str:
    mirror = bs.host_mirror("debian")
    try:
        bs.check_mirror(mirror, "bookworm", timeout=15)
    except bs.MirrorError as exc:
        pytest.skip(f"the host's Debian mirror is unreachable: {exc}")
    return mirror


@pytest.mark.slow
@pytest.mark.network
def test_nonexistent_package_is_named(tmp_path: Path) -> None:
    mirror = _mirror_or_skip()
    src = BootstrapSource(packages=("no-such-package-imagepipe",), variant="essential")
    with pytest.raises(InputError) as err:
        bs.bootstrap_tarball(src, tmp_path / "root.tar", mirror=mirror, timeout=600)
    assert "package not found" in str(err.value)
    assert "no-such-package-imagepipe" in str(err.value)
    assert "source.bootstrap.packages" in str(err.value)
    assert list(tmp_path.iterdir()) == []  # no half-written tarball


def test_unreachable_mirror_is_a_clear_error_within_bounded_time(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(bs.MirrorError) as err:
        bs.bootstrap_tarball(BootstrapSource(), tmp_path / "root.tar",
                             mirror=f"http://127.0.0.1:{port}/debian", check_timeout=10)
    assert time.monotonic() - start < 10
    assert f"package mirror http://127.0.0.1:{port}/debian is unreachable" in str(err.value)
    assert "source.bootstrap.mirror" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_disk_too_small_says_how_much_is_needed_before_creating_anything(
        tmp_path: Path) -> None:
    tar = tmp_path / "root.tar"
    with tarfile.open(tar, "w") as tf:
        for i in range(50):
            ti = tarfile.TarInfo(f"./usr/lib/f{i}")
            ti.size = 1024 * 1024
            tf.addfile(ti, io.BytesIO(b"\1" * ti.size))
    out = tmp_path / "out" / "disk.raw"
    out.parent.mkdir()
    start = time.monotonic()
    with pytest.raises(rd.DiskTooSmall) as err:
        rd.build_bootstrap_disk(tar, out, size=32 * 1024**2)
    assert time.monotonic() - start < 5  # decided from the tar headers, no appliance launched
    need = rd.required_disk_size(rd.tar_stats(tar))
    assert f"at least {need // 1024**2} MiB is needed" in str(err.value)
    assert "set disk.size to" in str(err.value) and err.value.exit_code == 2
    assert list(out.parent.iterdir()) == []
