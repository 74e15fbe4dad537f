"""`imagepipe convert --preset hyperv` (Hyper-V generation 2: UEFI only) refuses a partitioned
disk without an EFI system partition, exit 2 and nothing written, and takes one with an ESP.
The partition tables are written by the real sfdisk, the source is a qcow2 (read through
`qemu-img dd`), and the output is checked with qemu-img."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from imagepipe.bases import bootloader
from tests.conftest import run_cli

pytestmark = pytest.mark.qemu  # every test here runs the real qemu-img

MiB = 1 << 20


def _disk(tmp_path: Path, name: str, script: str) -> Path:
    raw = tmp_path / f"{name}.raw"
    with open(raw, "wb") as f:
        f.truncate(256 * MiB)
    subprocess.run(["sfdisk", "--quiet", str(raw)], input=script, text=True, check=True)
    qcow2 = tmp_path / f"{name}.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(qcow2)], check=True)
    raw.unlink()
    return qcow2


@pytest.mark.parametrize("table", ["dos", "gpt-no-esp"])
def test_hyperv_preset_refuses_a_disk_without_esp(tmp_path: Path, table: str) -> None:
    script = ("label: dos\nstart=2048, type=83, bootable\n" if table == "dos" else
              f"label: gpt\nstart=2048, type={bootloader.LINUX_FS}\n")
    src = _disk(tmp_path, "bios", script)
    res = run_cli("convert", str(src), str(tmp_path / "out.vhdx"), "--preset", "hyperv")
    assert res.returncode == 2, res.stderr
    assert "boots only with UEFI" in res.stderr and "no EFI system partition" in res.stderr
    assert "disk.firmware: hybrid" in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bios.qcow2"]


def test_hyperv_preset_takes_a_hybrid_disk(tmp_path: Path) -> None:
    src = _disk(tmp_path, "hybrid", bootloader.gpt_layout(256 * MiB, "hybrid").sfdisk_script())
    out = tmp_path / "out.vhdx"
    res = run_cli("convert", str(src), str(out), "--preset", "hyperv")
    assert res.returncode == 0, res.stderr
    assert subprocess.run(["qemu-img", "compare", "-q", str(src), str(out)]).returncode == 0
