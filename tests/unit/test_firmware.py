"""Boot firmware: GPT layout, GRUB argv, bootloader packages, OVMF qemu arguments, the
firmware verdict from a console log, ESP detection, OVF firmware and the recipe rules.

Pure builders are checked as values; the partition tables are written by the real sfdisk into
small sparse files, and recipes go through the real loader (exit 2, file:line)."""

from __future__ import annotations

import subprocess
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from imagepipe.bases import bootloader
from imagepipe.bases.bootstrap import package_list
from imagepipe.boot import firmware as fw
from imagepipe.convert.esp import has_esp, partition_kinds
from imagepipe.convert.ova import OVF, VMW, build_ovf
from imagepipe.errors import InputError, RecipeError
from imagepipe.recipe.load import load_recipe
from imagepipe.recipe.model import BootstrapSource

MiB = 1024**2
GiB = 1024**3


def test_hybrid_layout_bios_boot_esp_root() -> None:
    lay = bootloader.gpt_layout(3 * GiB, "hybrid")
    types = [p.type_guid for p in lay.partitions]
    assert types == [bootloader.BIOS_BOOT, bootloader.ESP, bootloader.LINUX_FS]
    bios, esp, root = lay.partitions
    assert (bios.start, bios.size) == (1 * MiB, 1 * MiB)
    assert esp.start == bios.start + bios.size and esp.size >= 100 * MiB
    assert root.start == esp.start + esp.size == 128 * MiB
    assert root.start + root.size <= 3 * GiB - 33 * 512  # the backup GPT fits behind it
    assert root.size % 4096 == 0 and lay.root is root and lay.esp is esp
    script = lay.sfdisk_script()
    assert script.startswith("label: gpt\n") and f"start={128 * MiB // 512}," in script


def test_uefi_layout_has_no_bios_boot_partition() -> None:
    lay = bootloader.gpt_layout(2 * GiB, "uefi")
    assert [p.type_guid for p in lay.partitions] == [bootloader.ESP, bootloader.LINUX_FS]
    assert lay.root.start == 128 * MiB
    with pytest.raises(ValueError):
        bootloader.gpt_layout(2 * GiB, "bios")


def _head(disk: Path) -> bytes:
    """The first 34 sectors (MBR + GPT header and entries), without reading the whole disk."""
    with open(disk, "rb") as f:
        return f.read(34 * 512)


def test_real_sfdisk_accepts_the_layout_and_the_esp_is_found(tmp_path: Path) -> None:
    disk = tmp_path / "d.raw"
    with open(disk, "wb") as f:
        f.truncate(512 * MiB)
    lay = bootloader.gpt_layout(512 * MiB, "hybrid")
    subprocess.run(["sfdisk", "--quiet", str(disk)], input=lay.sfdisk_script(), text=True,
                   check=True)
    head = _head(disk)
    table, types = partition_kinds(head)
    assert table == "gpt" and types == [bootloader.BIOS_BOOT, bootloader.ESP,
                                        bootloader.LINUX_FS]
    assert has_esp(head)
    subprocess.run(["sfdisk", "--quiet", str(disk)], text=True, check=True,
                   input="label: dos\nstart=2048, type=83, bootable\n")
    head = _head(disk)
    assert partition_kinds(head) == ("dos", ["83"]) and not has_esp(head)
    assert partition_kinds(b"\0" * 17408) == (None, []) and not has_esp(b"\0" * 17408)


def test_grub_install_runs() -> None:
    hybrid = bootloader.grub_install_argvs("hybrid", "/dev/sda")
    assert hybrid[0] == ["grub-install", "--target=i386-pc", "/dev/sda"]
    efi = hybrid[1]
    assert efi[:2] == ["grub-install", "--target=x86_64-efi"]
    assert {"--uefi-secure-boot", "--removable", "--no-nvram",
            "--efi-directory=/boot/efi"} <= set(efi)
    assert bootloader.grub_install_argvs("uefi", "/dev/sda") == [efi]


def test_guest_grub_files_keep_the_serial_console_and_root_by_uuid() -> None:
    d = bootloader.default_grub("net.ifnames=0")
    assert 'GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 net.ifnames=0"' in d
    assert 'GRUB_TERMINAL="console serial"' in d
    fstab = bootloader.fstab("ROOT-UUID", "AB12-CD34")
    assert "UUID=ROOT-UUID / ext4" in fstab and "UUID=AB12-CD34 /boot/efi vfat" in fstab
    assert "search --no-floppy --fs-uuid --set=root ROOT-UUID" in bootloader.esp_grub_cfg(
        "ROOT-UUID")


@pytest.mark.parametrize("firmware,present,absent", [
    ("hybrid", {"grub-pc-bin", "shim-signed", "grub-efi-amd64-signed", "grub-efi-amd64-bin"},
     {"grub-pc", "syslinux-common"}),
    ("uefi", {"shim-signed", "grub-efi-amd64-signed"}, {"grub-pc-bin", "grub-pc"}),
    ("bios", {"syslinux-common"}, {"shim-signed", "grub-pc"}),
])
def test_bootloader_packages_follow_the_firmware(firmware: str, present: set[str],
                                                 absent: set[str]) -> None:
    pkgs = set(package_list(BootstrapSource(packages=("apache2",)), firmware))
    assert present <= pkgs and not absent & pkgs and "apache2" in pkgs


def test_ovmf_arguments(tmp_path: Path) -> None:
    assert fw.qemu_firmware_args("bios") == []
    vars_copy = tmp_path / "vars.fd"
    uefi = fw.qemu_firmware_args("uefi", vars_copy)
    assert uefi == ["-drive", "if=pflash,format=raw,unit=0,readonly=on,"
                    "file=/usr/share/OVMF/OVMF_CODE_4M.fd",
                    "-drive", f"if=pflash,format=raw,unit=1,file={vars_copy}"]
    sb = fw.qemu_firmware_args("secureboot", vars_copy)
    assert sb[:4] == ["-machine", "smm=on", "-global",
                      "driver=cfi.pflash01,property=secure,value=on"]
    assert "file=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd" in sb[5]
    with pytest.raises(InputError):
        fw.qemu_firmware_args("coreboot")


def test_prepare_copies_the_variable_store(tmp_path: Path) -> None:
    args = fw.prepare("secureboot", tmp_path / "vm")
    copy = tmp_path / "vm" / "ovmf-vars-secureboot.fd"
    assert copy.read_bytes() == Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd").read_bytes()
    assert f"file={copy}" in args[-1]
    with pytest.raises(InputError, match="apt-get install ovmf"):
        fw.prepare("uefi", tmp_path, ovmf_dir=tmp_path / "nothere")


@pytest.mark.parametrize("firmware,console,ok", [
    ("bios", "Linux version 6.1\nlogin: ", True),
    ("bios", "", False),  # nothing booted at all
    ("bios", "Linux version 6.1\nefi: EFI v2.7 by EDK II\n", False),
    ("uefi", "Linux version 6.1\nefi: EFI v2.7 by EDK II\n", True),
    ("uefi", "efi: EFI v2.7 by EDK II\n", False),
    ("uefi", "Linux version 6.1\n", False),
    ("secureboot", "Linux version 6.1\nefi: EFI v2.7 by EDK II\n"
     "[0.0] secureboot: Secure boot enabled\n", True),
    ("secureboot", "Linux version 6.1\nefi: EFI v2.7 by EDK II\n"
     "[0.0] secureboot: Secure boot disabled\n", False),
    ("secureboot", "Linux version 6.1\nefi: EFI v2.7 by EDK II\n", False),
])
def test_firmware_verdict(firmware: str, console: str, ok: bool) -> None:
    assert fw.verdict(firmware, console)[0] is ok


def test_ovf_states_the_firmware() -> None:
    kw = dict(name="web", description="d", cpus=2, memory=2 * GiB, os_type="debian_12",
              disk_file="d.vmdk", disk_size=1, capacity=2)
    root = ET.fromstring(build_ovf(**kw, firmware="efi"))  # type: ignore[arg-type]
    cfg = root.find(f".//{{{OVF}}}VirtualHardwareSection/{{{VMW}}}Config")
    assert cfg is not None
    assert (cfg.get(f"{{{VMW}}}key"), cfg.get(f"{{{VMW}}}value")) == ("firmware", "efi")
    plain = ET.fromstring(build_ovf(**kw))  # type: ignore[arg-type]
    assert plain.find(f".//{{{VMW}}}Config") is None


def _recipe(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent("""\
        version: 1
        name: t
        description: a test recipe
        source:
          bootstrap: {suite: bookworm}
        """) + textwrap.dedent(body))
    return path


def test_bios_disk_for_a_uefi_only_preset_is_refused_with_its_line(tmp_path: Path) -> None:
    path = _recipe(tmp_path, """\
        disk: {firmware: bios}
        outputs:
          - {format: qcow2, preset: kvm}
          - {format: vhdx, preset: hyperv}
        """)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.exit_code == 2
    [p] = info.value.problems
    assert p.path == "outputs[1].preset" and p.line == 9
    assert "boots only with UEFI" in str(p) and "disk.firmware: hybrid" in (p.hint or "")


def test_test_boot_firmware_scalar_list_and_capability(tmp_path: Path) -> None:
    from imagepipe.stages.boottest import firmwares

    ok = load_recipe(_recipe(tmp_path, """\
        outputs: [{format: qcow2}]
        test: {boot: {firmware: secureboot}}
        """))
    assert ok.test.boot is not None and ok.test.boot.firmware == ("secureboot",)
    assert firmwares(ok) == ("secureboot",)
    with pytest.raises(RecipeError) as info:
        load_recipe(_recipe(tmp_path, """\
            disk: {firmware: bios}
            outputs: [{format: qcow2}]
            test: {boot: {firmware: [bios, uefi, pxe]}}
            """))
    texts = [str(p) for p in info.value.problems]
    assert any("cannot boot with uefi firmware" in t for t in texts), texts
    assert any("test.boot.firmware[2]" in t and "'pxe'" in t for t in texts), texts


@pytest.mark.network
def test_default_boot_firmwares(tmp_path: Path) -> None:
    from imagepipe.pipeline.plan import flat, make_plan
    from imagepipe.stages.boottest import firmwares

    hyperv = load_recipe(_recipe(tmp_path, """\
        outputs: [{format: qcow2}, {format: vhdx, preset: hyperv}]
        test: {boot: {}}
        """))
    assert firmwares(hyperv) == ("bios",)
    both = load_recipe(_recipe(tmp_path, """\
        outputs: [{format: qcow2}, {format: vhdx, preset: hyperv}]
        test: {boot: {firmware: [bios, uefi, bios]}}
        """))
    assert firmwares(both) == ("bios", "uefi")
    ids = [n.id for n in flat(make_plan(both))]
    assert "test.boot.bios" in ids and "test.boot.uefi" in ids
    nodes = {n.id: n for n in flat(make_plan(both))}
    assert nodes["test.boot.bios"].stage.options.firmware == "bios"
    assert nodes["test.boot.uefi"].stage.options.firmware == "uefi"
    plain = load_recipe(_recipe(tmp_path, """\
        outputs: [{format: qcow2}]
        test: {boot: {}}
        """))
    assert firmwares(plain) == ("bios",)
    uefi = load_recipe(_recipe(tmp_path, """\
        disk: {firmware: uefi}
        outputs: [{format: qcow2}]
        test: {boot: {}}
        """))
    assert firmwares(uefi) == ("uefi",)
