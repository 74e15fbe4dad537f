"""Boot tests on a platform's hardware: qemu argv per profile, which profile each output boots
on, the per-output plan, the initramfs listing parser and the size ratios (no qemu run here;
tests/e2e/test_boot_hardware.py boots the real outputs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.boot.initramfs import modules_in
from imagepipe.convert.hardware import boot_profile, qemu_devices
from imagepipe.errors import InputError
from imagepipe.pipeline.manifest import add_size_ratios
from imagepipe.tools.qemu import Drive, vm_argv


def _argv(hardware: str | None) -> str:
    return " ".join(vm_argv(disk=Path("/i/d.vdi"), disk_fmt="qcow2", accel_args=[],
                            memory_mib=1024, cpus=2, console_log=Path("c"), qmp_socket=Path("q"),
                            pidfile=Path("p"), drives=[Drive(Path("/s.iso"), readonly=True)],
                            devices=qemu_devices(hardware or "virtio")))


def test_virtualbox_is_ahci_and_e1000_with_the_seed_on_the_same_controller() -> None:
    a = _argv("virtualbox")
    assert "-device ide-hd,drive=hd0,bus=ide.0,bootindex=0" in a
    assert "-device ide-cd,drive=extra1,bus=ide.1" in a and "model=e1000" in a
    assert "virtio" not in a


def test_vsphere_is_pvscsi_and_vmxnet3() -> None:
    a = _argv("vsphere")
    assert "-device pvscsi,id=scsi0" in a and "scsi-hd,drive=hd0,bus=scsi0.0" in a
    assert "scsi-cd,drive=extra1" in a and "model=vmxnet3" in a and "virtio" not in a


def test_default_stays_virtio_as_before() -> None:
    assert _argv(None) == _argv("virtio") == _argv("virtio-blk+virtio-net")
    assert "if=virtio" in _argv(None) and "model=virtio-net-pci" in _argv(None)
    assert "-device virtio-scsi-pci,id=scsi0" in _argv("virtio-scsi+virtio-net")


@pytest.mark.parametrize("bad", ["storvsc+netvsc", "lsilogic+e1000", "floppy+e1000", "ahci"])
def test_unemulated_or_unknown_hardware_is_bad_input(bad: str) -> None:
    with pytest.raises(InputError):
        qemu_devices(bad)


def test_each_output_boots_on_its_platforms_hardware() -> None:
    assert boot_profile("virtualbox", None) == "ahci+e1000"
    assert boot_profile("vsphere", None) == "pvscsi+vmxnet3"  # qemu has no LSI Logic (mptspi)
    assert boot_profile("vsphere", "lsilogic+vmxnet3") == "pvscsi+vmxnet3"
    assert boot_profile("kvm", None) == "virtio-blk+virtio-net"
    assert boot_profile("ovirt", None) == "virtio-scsi+virtio-net"
    assert boot_profile("hyperv", None) == boot_profile("azure", None) == "storvsc+netvsc"
    assert boot_profile(None, None) == "virtio-blk+virtio-net"


@pytest.mark.network
def test_per_output_plan_adds_one_boot_per_disk_output(tmp_path: Path) -> None:
    from imagepipe.pipeline.plan import make_plan
    from imagepipe.recipe.load import load_recipe

    f = tmp_path / "r.yaml"
    f.write_text("description: d\nsource: {bootstrap: {}}\n"
                 "outputs: [{preset: kvm}, {preset: virtualbox}, {preset: hyperv},"
                 " {format: ova}]\n"
                 "test: {boot: {per_output: true}}\npublish: {local: null}\n")
    levels = make_plan(load_recipe(f))
    per = {n.id: (n.inputs["image"], n.stage.options.hardware) for n in levels[-1]}
    assert per == {"test.boot.qcow2": ("convert.qcow2", "virtio-blk+virtio-net"),
                   "test.boot.vdi": ("convert.vdi", "ahci+e1000"),
                   "test.boot.vhdx": ("convert.vhdx", "storvsc+netvsc")}


def test_initramfs_listing_parser() -> None:
    listing = ("usr/lib/modules/6.1.0-50-amd64/kernel/drivers/hv/hv_vmbus.ko\n"
               "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/scsi/hv_storvsc.ko.zst\n"
               "usr/lib/modules/6.1.0-50-amd64/kernel/drivers/net/hyperv\n")
    assert modules_in(listing) == {"hv_vmbus", "hv_storvsc"}
    assert modules_in("kernel/drivers/net/hyperv/hv_netvsc.ko\n") == {"hv_netvsc"}


def test_size_ratios() -> None:
    outs = [{"file_size": 300 << 20}, {"file_size": 100 << 20}, {"file_size": None}]
    add_size_ratios(outs, 400 << 20)
    assert [o["ratio_to_used"] for o in outs] == [0.75, 0.25, None]
    add_size_ratios(outs, None)
    assert outs[0]["ratio_to_used"] is None


@pytest.mark.qemu
@pytest.mark.parametrize("hw", ["floppy+e1000", "lsilogic+e1000"])
def test_boot_test_refuses_hardware_it_cannot_emulate_before_starting(tmp_path: Path,
                                                                      hw: str) -> None:
    from imagepipe.tools import qemu_img
    from tests.conftest import run_cli

    img = tmp_path / "d.qcow2"
    qemu_img.create(img, "qcow2", 1 << 20)
    res = run_cli("boot-test", str(img), "--hardware", hw)
    assert res.returncode == 2, res.stderr
    assert "hardware" in res.stderr or "emulate" in res.stderr
