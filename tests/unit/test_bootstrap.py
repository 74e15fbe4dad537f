"""Unit tests of the bootstrap library's pure parts: mirror discovery, argv, sizing, errors."""

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

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _apt(tmp_path: Path, sources_list: str = "", files: dict[str, str] | None = None) -> Path:
    d = tmp_path / "apt"
    (d / "sources.list.d").mkdir(parents=True)
    (d / "sources.list").write_text(sources_list)
    for name, text in (files or {}).items():
        (d / "sources.list.d" / name).write_text(text)
    return d


def test_host_mirror_reads_deb822_sources(tmp_path: Path) -> None:
    apt = _apt(tmp_path, files={"debian.sources": DEB822})
    assert bs.host_mirror("debian", apt) == "http://mirror.example/debian"


def test_host_mirror_reads_one_line_format_and_skips_security_and_disabled(
        tmp_path: Path) -> None:
    apt = _apt(tmp_path, "# comment\ndeb http://security.debian.org/debian-security "
                         "bookworm-security main\n"
                         "deb [arch=amd64 signed-by=/k.gpg] http://ftp.example/debian/ "
                         "bookworm main\n",
               files={"x.sources": "Types: deb\nEnabled: no\nURIs: http://off.example/debian\n"
                                   "Suites: bookworm\n",
                      "other.list.disabled-by-farm": "deb http://nope.example/debian x main\n"})
    assert bs.host_mirror("debian", apt) == "http://ftp.example/debian"


def test_host_mirror_falls_back_per_distro(tmp_path: Path) -> None:
    apt = _apt(tmp_path, files={"debian.sources": DEB822})
    assert bs.host_mirror("ubuntu", apt) == "http://archive.ubuntu.com/ubuntu"
    assert bs.host_mirror("debian", _apt(tmp_path / "empty")) == "http://deb.debian.org/debian"


def test_package_list_and_argv() -> None:
    src = BootstrapSource(packages=("apache2", "sudo"))
    pkgs = bs.package_list(src)
    assert pkgs[-1] == "apache2" and pkgs.count("sudo") == 1
    assert {"linux-image-amd64", "cloud-init", "e2fsprogs", "shim-signed",
            "grub-pc-bin"} <= set(pkgs)
    argv = bs.mmdebstrap_argv(src, "http://m/debian", Path("/o/root.tar"))
    assert argv[0] == "mmdebstrap" and argv[-3:] == ["bookworm", "/o/root.tar", "http://m/debian"]
    assert "--mode=unshare" in argv and f"--include={','.join(pkgs)}" in argv
    ubuntu = bs.mmdebstrap_argv(BootstrapSource(distro="ubuntu", suite="jammy"), "http://u",
                                Path("o"))
    assert "--components=main,universe" in ubuntu and any("ubuntu" in a for a in ubuntu)
    with pytest.raises(InputError, match="unsupported bootstrap distro 'arch'"):
        bs.package_list(BootstrapSource(distro="arch"))


def test_tarball_key_changes_with_inputs() -> None:
    a = bs.tarball_key(BootstrapSource(), "http://m")
    assert a == bs.tarball_key(BootstrapSource(), "http://m")
    assert a != bs.tarball_key(BootstrapSource(packages=("apache2",)), "http://m")
    assert a != bs.tarball_key(BootstrapSource(suite="trixie"), "http://m")
    assert a != bs.tarball_key(BootstrapSource(), "http://other")


def _tar(path: Path, files: dict[str, int]) -> Path:
    with tarfile.open(path, "w") as tf:
        d = tarfile.TarInfo("./etc")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        for name, size in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = size
            tf.addfile(ti, io.BytesIO(b"x" * size))
    return path


def test_sizing_counts_blocks_and_names_the_needed_size(tmp_path: Path) -> None:
    stats = rd.tar_stats(_tar(tmp_path / "r.tar", {"./etc/a": 1, "./etc/b": 5000}))
    assert stats.files == 3 and stats.data_bytes == 4096 + 4096 + 8192
    need = rd.required_disk_size(stats)
    assert need % (64 * rd.MiB) == 0 and need >= 128 * rd.MiB
    assert rd.choose_size(None, stats) == rd.DEFAULT_SIZE
    assert rd.choose_size(need, stats) == need
    big = rd.TarStats(files=18599, data_bytes=800 * rd.MiB)
    with pytest.raises(rd.DiskTooSmall) as err:
        rd.choose_size(512 * rd.MiB, big, "bios")
    text = str(err.value)
    assert "disk.size 512 MiB is too small" in text and "at least 1.12 GiB is needed" in text
    assert "set disk.size to 1.2G or more" in text
    assert err.value.exit_code == 2
    # GPT disks put the root behind the BIOS boot partition and the ESP (128 MiB)
    assert rd.required_disk_size(big, "hybrid") >= rd.required_disk_size(big, "bios") + \
        127 * rd.MiB


def test_mmdebstrap_errors_name_missing_packages() -> None:
    out = ("E: Unable to locate package no-such-pkg-xyz\n"
           "E: Unable to locate package also-missing-abc\nE: mmdebstrap failed to run\n")
    err = bs._mmdebstrap_error(["mmdebstrap"], 1, out, "http://m")
    assert isinstance(err, InputError)
    assert "packages not found on http://m: no-such-pkg-xyz, also-missing-abc" in str(err)
    err2 = bs._mmdebstrap_error(["mmdebstrap"], 1, "E: Package 'foo' has no installation "
                                "candidate\n", "http://m")
    assert "foo" in str(err2)
    other = bs._mmdebstrap_error(["mmdebstrap"], 1, "E: something else\n", "http://m")
    assert type(other).__name__ == "ToolError"
    full = bs._mmdebstrap_error(["mmdebstrap"], 25, "tar: ./lib64: Cannot mkdir: No space left "
                                "on device\nE: tar --extract failed: 512\n", "http://m")
    assert type(full).__name__ == "ImagepipeError" and full.exit_code == 1
    assert "ran out of disk space" in str(full) and "TMPDIR" in str(full)


def test_unreachable_mirror_fails_fast_with_a_clear_error() -> None:
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(bs.MirrorError, match=f"127.0.0.1:{port}/debian is unreachable"):
        bs.check_mirror(f"http://127.0.0.1:{port}/debian", "bookworm", timeout=5)
    assert time.monotonic() - start < 5


def test_silent_mirror_times_out_within_the_bound() -> None:
    with socket.socket() as s:  # accepts connections (backlog) but never answers
        s.bind(("127.0.0.1", 0))
        s.listen(5)
        port = s.getsockname()[1]
        start = time.monotonic()
        with pytest.raises(bs.MirrorError, match="(did not answer|unreachable)"):
            bs.check_mirror(f"http://127.0.0.1:{port}/debian", "bookworm", timeout=2)
        assert time.monotonic() - start < 4


def test_boot_config_text() -> None:
    conf = rd.extlinux_conf("/boot/vmlinuz-6", "/boot/initrd.img-6", "U-1")
    assert "APPEND root=UUID=U-1 ro console=tty0 console=ttyS0,115200n8" in conf
    assert "LINUX /boot/vmlinuz-6" in conf and "INITRD /boot/initrd.img-6" in conf
    assert rd.fstab("U-1").splitlines()[-1] == "UUID=U-1 / ext4 errors=remount-ro 0 1"
    assert "source /etc/network/interfaces.d/*" in rd.INTERFACES
    assert "locale: C.UTF-8" in rd.CLOUD_CFG_DROPIN
    assert rd._latest(["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-10-amd64", "x"], "vmlinuz-") \
        == "vmlinuz-6.1.0-10-amd64"
