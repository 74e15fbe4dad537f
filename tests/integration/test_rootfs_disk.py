"""rootfs tarball -> bootable disk, both ways (host mkfs.ext4 -d, and tar_in in the appliance),
read back with libguestfs: same layout, same boot setup, owners and modes kept.

A synthetic rootfs keeps this fast (the real Debian rootfs is built and booted by the e2e test):
dummy kernel/initrd names are enough to check extlinux.conf, and syslinux's real MBR code
(from the host's syslinux-common) is what must land in the first 440 bytes.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagepipe.bases import rootfs_disk as rd

pytestmark = [pytest.mark.guestfs]
MBR = Path("/usr/lib/syslinux/mbr/mbr.bin")


def _add(tf: tarfile.TarFile, name: str, data: bytes | None = None, *, mode: int = 0o644,
         uid: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    ti = tarfile.TarInfo(name)
    ti.mode, ti.uid, ti.gid, ti.type, ti.linkname = mode, uid, uid, kind, link
    ti.size = len(data or b"") if kind == tarfile.REGTYPE else 0
    tf.addfile(ti, io.BytesIO(data or b"") if kind == tarfile.REGTYPE else None)


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tar = tmp_path_factory.mktemp("rootfs") / "root.tar"
    with tarfile.open(tar, "w") as tf:
        for d in ("./boot", "./etc", "./home", "./home/u", "./usr", "./usr/lib",
                  "./usr/lib/syslinux", "./usr/lib/syslinux/mbr"):
            _add(tf, d, kind=tarfile.DIRTYPE, mode=0o755)
        _add(tf, "./boot/vmlinuz-6.1.0-9-amd64", b"k9")
        _add(tf, "./boot/vmlinuz-6.1.0-10-amd64", b"k10")
        _add(tf, "./boot/initrd.img-6.1.0-10-amd64", b"i10")
        _add(tf, "./usr/lib/syslinux/mbr/mbr.bin", MBR.read_bytes())
        _add(tf, "./etc/hostname", b"buildhost\n")
        _add(tf, "./etc/resolv.conf", b"nameserver 10.0.0.1\n")
        _add(tf, "./home/u/secret", b"mine\n", mode=0o640, uid=1234)
        _add(tf, "./home/u/link", kind=tarfile.SYMTYPE, link="secret")
    return tar


@pytest.fixture(scope="module")
def disks(rootfs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.skip("the mkfs method needs root (owners in the unpacked tree)")
    out = tmp_path_factory.mktemp("disks")
    # disk.firmware: bios (MBR + extlinux); the GPT + GRUB disk needs the guest's real grub
    # tools and is built and booted by the e2e tests.
    recs = {m: rd.build_bootstrap_disk(rootfs, out / f"{m}.raw", size=256 * rd.MiB, method=m,
                                       kernel_args="quiet", firmware="bios")
            for m in ("mkfs", "guestfs")}
    assert sorted(os.listdir(out)) == ["guestfs.raw", "mkfs.raw"]  # no temp files or trees
    return {"dir": out, "records": recs}


def test_both_methods_make_the_same_bootable_layout(disks: dict[str, Any]) -> None:
    import guestfs

    from imagepipe.tools.accel import guestfs_env

    os.environ.update(guestfs_env())
    g = guestfs.GuestFS(python_return_dict=True)
    try:
        for m in ("mkfs", "guestfs"):
            g.add_drive_opts(str(disks["dir"] / f"{m}.raw"), format="raw", readonly=True)
        g.launch()
        for i, m in enumerate(("mkfs", "guestfs")):
            rec = disks["records"][m]
            dev, part = f"/dev/sd{'ab'[i]}", f"/dev/sd{'ab'[i]}1"
            assert rec["kernel"] == "vmlinuz-6.1.0-10-amd64", m
            assert g.part_get_parttype(dev) == "msdos" and g.part_get_bootable(dev, 1), m
            assert g.vfs_type(part) == "ext4" and g.vfs_label(part) == "root", m
            assert g.vfs_uuid(part) == rec["root_uuid"], m
            assert g.pread_device(dev, 440, 0) == MBR.read_bytes()[:440], m
            g.mount_ro(part, "/")
            fstab = g.cat("/etc/fstab")
            assert f"UUID={rec['root_uuid']} / ext4" in fstab, m
            conf = g.cat("/boot/extlinux/extlinux.conf")
            assert "LINUX /boot/vmlinuz-6.1.0-10-amd64" in conf, m
            assert f"root=UUID={rec['root_uuid']} ro console=tty0 console=ttyS0" in conf, m
            assert conf.rstrip().endswith("quiet"), m
            assert g.is_file("/boot/extlinux/ldlinux.sys"), m
            assert g.cat("/etc/hostname") == "localhost\n" and not g.exists("/etc/resolv.conf")
            assert "source /etc/network/interfaces.d/*" in g.cat("/etc/network/interfaces")
            assert "locale: C.UTF-8" in g.cat("/etc/cloud/cloud.cfg.d/01_imagepipe_locale.cfg")
            st = g.lstatns("/home/u/secret")
            assert (st["st_uid"], st["st_gid"], st["st_mode"] & 0o7777) == (1234, 1234, 0o640), m
            assert g.readlink("/home/u/link") == "secret", m
            g.umount_all()
    finally:
        g.close()


def test_records_name_the_method_and_sizes(disks: dict[str, Any], rootfs: Path) -> None:
    for m, rec in disks["records"].items():
        assert rec["method"] == m and rec["size"] == 256 * rd.MiB
        assert rec["files"] == rd.tar_stats(rootfs).files
