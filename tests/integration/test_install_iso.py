"""The install-from-ISO path on a real (tiny) installer ISO: remaster, boot once, power-off.

The ISO is built by the tests themselves (tests/integration/base_helpers.py): the host's Debian
kernel and an initramfs whose busybox init reads the kickstart the remaster added and writes a
record to the disk, so every step (pycdlib remaster, isolinux menu edit, El Torito boot, serial
console, -no-reboot power-off detection, timeout + kill) runs for real in ~10 s each.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from imagepipe.bases.install_iso import install_from_iso, remaster_iso
from imagepipe.errors import InputError, TimeoutExpired
from imagepipe.recipe.model import IsoInstall
from imagepipe.tools import qemu
from tests.integration.base_helpers import MARKER, make_installer_iso, qemu_pids_using, read_record

pytestmark = [pytest.mark.qemu]


@pytest.fixture(scope="module")
def installer_iso(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_installer_iso(tmp_path_factory.mktemp("iso") / "installer.iso")


def test_remaster_adds_the_kickstart_and_patches_the_menu(installer_iso: Path,
                                                           tmp_path: Path) -> None:
    import pycdlib

    out = tmp_path / "re.iso"
    patched = remaster_iso(installer_iso, out, files={"ks.cfg": b"text\n"}, args="A=1")
    assert patched == ["/isolinux/isolinux.cfg"]
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    try:
        for kw in ({"rr_path": "/ks.cfg"}, {"joliet_path": "/ks.cfg"}, {"iso_path": "/KS.CFG;1"}):
            buf = io.BytesIO()
            iso.get_file_from_iso_fp(buf, **kw)
            assert buf.getvalue() == b"text\n"
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, joliet_path="/isolinux/isolinux.cfg")
        cfg = buf.getvalue().decode()
        assert "timeout 1\n" in cfg and "append initrd=initrd.img quiet A=1" in cfg
        assert iso.eltorito_boot_catalog is not None  # still bootable
    finally:
        iso.close()
    assert installer_iso.stat().st_size > 0 and not list(tmp_path.glob(".*tmp*"))


def test_remaster_rejects_a_non_iso(tmp_path: Path) -> None:
    bad = tmp_path / "bad.iso"
    bad.write_bytes(b"\0" * 100000)
    with pytest.raises(InputError, match="not a readable ISO 9660 image"):
        remaster_iso(bad, tmp_path / "o.iso", files={}, args="")
    assert not (tmp_path / "o.iso").exists()


def test_install_runs_once_and_leaves_only_the_disk(installer_iso: Path, tmp_path: Path) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text("# kickstart for the test installer\nrootpw --lock\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "disk.qcow2"
    rec = install_from_iso(installer_iso, out, install=IsoInstall(
        kickstart=ks, timeout=240, memory=512 * 1024**2, boot_args="imagepipe.test=1"),
        size=64 * 1024**2, log_dir=tmp_path / "logs")
    assert os.listdir(out_dir) == ["disk.qcow2"]  # no ISO, no work dir left beside it
    record = read_record(out, "qcow2")
    assert record.startswith(MARKER + b"\n")
    cmdline = record.split(b"\n")[1].decode()
    assert "inst.ks=cdrom:/ks.cfg" in cmdline and "console=ttyS0" in cmdline
    assert cmdline.endswith("imagepipe.test=1")
    assert b"rootpw --lock" in record
    console = Path(rec["console_log"]).read_text(errors="replace")
    assert "installer: wrote" in console and rec["answer_files"] == ["ks.cfg"]
    assert qemu_pids_using(out_dir) == []


def test_install_that_never_powers_off_times_out_kills_qemu_and_keeps_the_log(
        installer_iso: Path, tmp_path: Path) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text("HANG\n")
    out = tmp_path / "out" / "disk.qcow2"
    out.parent.mkdir()
    logs = tmp_path / "logs"
    with pytest.raises(TimeoutExpired, match="did not power off within 15s; qemu was killed"):
        install_from_iso(installer_iso, out, install=IsoInstall(
            kickstart=ks, timeout=15, memory=512 * 1024**2), size=64 * 1024**2, log_dir=logs)
    assert "installer: waiting forever" in (logs / "install-console.log").read_text()
    assert os.listdir(out.parent) == []  # no disk, no work dir
    assert qemu_pids_using(out.parent) == []


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_vm_is_killed_when_the_block_fails(installer_iso: Path, tmp_path: Path,
                                           exc: type[BaseException]) -> None:
    disk = tmp_path / "d.qcow2"
    from imagepipe.tools import qemu_img

    qemu_img.create(disk, "qcow2", 16 * 1024**2)
    pid = None
    with pytest.raises(exc):
        with qemu.VM(disk, workdir=tmp_path / "vm", memory=256 * 1024**2,
                     drives=[qemu.Drive(installer_iso, media="cdrom")], boot="order=d",
                     forward_ports=[80]) as vm:
            pid = vm.pid
            assert vm.running() and vm.ports[80] > 0
            assert vm.boot_disk != disk and vm.boot_disk.exists()  # an overlay
            assert not vm.wait_exit(1)  # booting (the stock menu waits 60 s)
            raise exc()
    assert pid is not None and not qemu._alive(pid)
    assert not (tmp_path / "vm" / "overlay.qcow2").exists()
