"""Unit tests of the install-ISO menu edits, the qemu argv and the boot test's pure parts."""

from __future__ import annotations

import email
import subprocess
from pathlib import Path

import pytest

from imagepipe.bases import install_iso
from imagepipe.boot import run as boottest
from imagepipe.errors import InputError
from imagepipe.recipe.model import HttpCheck, IsoInstall
from imagepipe.tools import qemu

# CentOS 7 minimal's isolinux.cfg (abridged: the real file's structure and entries).
CENTOS7_ISOLINUX = """\
default vesamenu.c32
timeout 600

display boot.msg
menu title CentOS 7
label linux
  menu label ^Install CentOS 7
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 quiet

label check
  menu label Test this ^media & install CentOS 7
  menu default
  kernel vmlinuz
  append initrd=initrd.img inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 rd.live.check quiet

label local
  menu label Boot from ^local drive
  localboot 0xffff
"""

CENTOS7_GRUB = """\
set default="1"
set timeout=60
menuentry 'Install CentOS 7' --class fedora --class gnu-linux --class gnu --class os {
\tlinuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 quiet
\tinitrdefi /images/pxeboot/initrd.img
}
"""


def test_patch_isolinux_boots_first_entry_at_once_with_args() -> None:
    out = install_iso.patch_isolinux(CENTOS7_ISOLINUX, "ARGS=1")
    lines = [ln.strip() for ln in out.splitlines()]
    assert lines[0] == "serial 0 115200" and lines[1] == "default linux"
    assert "timeout 1" in lines and "timeout 600" not in lines
    assert lines.count("menu default") == 1
    assert lines.index("menu default") == lines.index("label linux") + 1
    appends = [ln for ln in lines if ln.startswith("append")]
    assert all(ln.endswith(" ARGS=1") for ln in appends) and len(appends) == 2
    assert "localboot 0xffff" in lines


def test_patch_grub_sets_default_timeout_and_args() -> None:
    out = install_iso.patch_grub(CENTOS7_GRUB, "inst.ks=cdrom:/ks.cfg")
    assert 'set default="0"' in out and "set timeout=1" in out
    assert "linuxefi /images/pxeboot/vmlinuz inst.stage2=hd:LABEL=CentOS\\x207\\x20x86_64 " \
           "quiet inst.ks=cdrom:/ks.cfg" in out
    assert "initrdefi /images/pxeboot/initrd.img\n" in out


def test_boot_args_and_answer_files(tmp_path: Path) -> None:
    ks = tmp_path / "ks.cfg"
    ks.write_text("rootpw --lock\n")
    inst = IsoInstall(kickstart=ks, boot_args="net.ifnames=0")
    args = install_iso.boot_args(inst)
    assert "console=ttyS0,115200n8" in args and "inst.ks=cdrom:/ks.cfg" in args
    assert args.endswith("net.ifnames=0")
    assert install_iso.answer_files(inst) == {"ks.cfg": b"rootpw --lock\n"}
    pre = tmp_path / "preseed.cfg"
    pre.write_text("d-i x\n")
    assert "preseed/file=/cdrom/preseed.cfg" in install_iso.boot_args(IsoInstall(preseed=pre))


def test_vm_argv_is_q35_virtio_with_forwards_and_serial(tmp_path: Path) -> None:
    argv = qemu.vm_argv(disk=tmp_path / "o,1.qcow2", disk_fmt="qcow2",
                        accel_args=qemu.accel_args("tcg"), memory_mib=1024, cpus=2,
                        console_log=tmp_path / "c.log", qmp_socket=tmp_path / "q.sock",
                        pidfile=tmp_path / "p", forwards={80: 12345, 22: 2222},
                        drives=[qemu.Drive(tmp_path / "seed.iso", readonly=True),
                                qemu.Drive(tmp_path / "i.iso", media="cdrom")],
                        boot="order=d", no_reboot=True)
    text = " ".join(argv)
    assert argv[:5] == ["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg"]
    assert "-cpu max" in text and "-m 1024" in text
    assert f"file={tmp_path}/o,,1.qcow2,format=qcow2,if=virtio" in argv
    assert f"file={tmp_path}/seed.iso,format=raw,if=virtio,readonly=on" in argv
    assert f"file={tmp_path}/i.iso,format=raw,media=cdrom,readonly=on" in argv
    assert ("user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:2222-:22,"
            "hostfwd=tcp:127.0.0.1:12345-:80") in argv
    assert f"file:{tmp_path}/c.log" in argv and "-daemonize" in argv and "-no-reboot" in argv
    assert qemu.accel_args("kvm") == ["-accel", "kvm", "-cpu", "host"]


def test_parse_http_check() -> None:
    assert boottest.parse_http_check("80:/:200") == HttpCheck(80, "/", 200)
    assert boottest.parse_http_check("8080:/health") == HttpCheck(8080, "/health", 200)
    assert boottest.parse_http_check("443") == HttpCheck(443, "/", 200)
    for bad in ("x:/:200", "80:nope:200", "70000:/:200", "80:/:OK"):
        with pytest.raises(InputError, match="PORT:PATH:STATUS"):
            boottest.parse_http_check(bad)


def test_user_data_is_multipart_with_the_recipe_config_and_identity_script() -> None:
    raw = boottest.make_user_data(b"#cloud-config\nruncmd:\n  - [true]\n", "abc123")
    msg = email.message_from_bytes(raw)
    parts = [p for p in msg.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/x-shellscript"]
    assert parts[0].get_payload(decode=True).startswith(b"#cloud-config\nruncmd:")
    script = parts[1].get_payload(decode=True).decode()
    assert "IMAGEPIPE-BOOTTEST-abc123 machine-id=" in script and "> /dev/console" in script
    only = email.message_from_bytes(boottest.make_user_data(None, "n"))
    assert [p.get_content_type() for p in only.walk() if not p.is_multipart()] == \
        ["text/x-shellscript"]


def test_ssh_fingerprint_matches_ssh_keygen(tmp_path: Path) -> None:
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    expected = subprocess.run(["ssh-keygen", "-lf", f"{key}.pub"], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    assert boottest.ssh_fingerprint((tmp_path / "k.pub").read_text()) == expected
    assert boottest.ssh_fingerprint("garbage") is None


def test_login_prompt_found_when_console_output_shares_its_line() -> None:
    """Seen in a real boot: the seed's identity line landed on getty's prompt line."""
    from imagepipe.boot.run import LOGIN

    assert LOGIN.search("Debian GNU/Linux 12 localhost ttyS0\n\nlocalhost login: ")
    assert LOGIN.search("localhost login: IMAGEPIPE-BOOTTEST-be95 hostkey=SHA256:yYj+q\n")
    assert not LOGIN.search("Starting systemd-logind.service - User Login Management...\n")
