"""The published httpd template boots on SeaBIOS, OVMF and OVMF with Secure Boot; its Hyper-V
vhdx is UEFI-bootable.

Boots are the expensive part (70-120 s each under TCG here), so each firmware boots once:
- SeaBIOS: the build's own boot test (`test.boot`; a hybrid disk's default firmware is bios),
  read from the session build's manifest.
- OVMF, and OVMF with Secure Boot and Microsoft's keys: the real `imagepipe boot-test
  --firmware uefi|secureboot` CLI on the published qcow2; the firmware check proves from the
  guest kernel's own log that it was started by UEFI and (secureboot) that Secure Boot was on.
- The vhdx from `--preset hyperv`: not booted a third time (it holds the same guest data as
  the qcow2, which `test_httpd_build` proves with `qemu-img compare`); its ESP and the
  removable-path shim `EFI/BOOT/BOOTX64.EFI` are read back from the vhdx itself with
  libguestfs, and its partition table through the converter's own ESP check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagepipe.convert.esp import has_esp, read_head
from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.qemu, pytest.mark.guestfs]

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"


def _stage(manifest: dict[str, Any], stage_id: str) -> dict[str, Any]:
    for s in manifest["stages"]:
        if s["id"] == stage_id:
            return dict(s)
    raise AssertionError(f"no stage {stage_id} in {[s['id'] for s in manifest['stages']]}")


def _output(manifest: dict[str, Any], fmt: str) -> Path:
    paths = [Path(o["path"]) for o in manifest["outputs"] if o["format"] == fmt]
    assert paths, f"no {fmt} output in {manifest['outputs']}"
    return paths[0]


def test_build_booted_the_image_with_seabios(httpd_build: dict[str, Any]) -> None:
    rec = _stage(httpd_build["manifest"], "test.boot")["record"]
    checks = {c["name"]: c for c in rec["checks"]}
    assert rec["passed"] is True and rec["firmware"] == "bios", checks
    assert checks["firmware:bios"]["passed"], checks
    assert any(n.startswith("http:80/") and c["passed"] for n, c in checks.items()), checks
    console = Path(rec["console_log"]).read_text(errors="replace")
    assert "GNU GRUB" in console and "efi: EFI v" not in console


@pytest.mark.parametrize("firmware", ["uefi", "secureboot"])
def test_published_qcow2_boots_with_ovmf(httpd_build: dict[str, Any], httpd_recipe_dir: Path,
                                         tmp_path: Path, firmware: str) -> None:
    qcow2 = _output(httpd_build["manifest"], "qcow2")
    res = run_cli("--json", "boot-test", str(qcow2), "--firmware", firmware,
                  "--user-data", str(httpd_recipe_dir / "httpd" / "user-data.yaml"),
                  "--http", "80:/:200", "--keep-log", str(tmp_path), "--timeout", "900",
                  timeout=1200)
    console = "".join(p.read_text(errors="replace") for p in tmp_path.glob("console-*.log"))
    assert res.returncode == 0, f"{res.stdout[-3000:]}\n{res.stderr[-3000:]}\n{console[-3000:]}"
    result = [json.loads(line) for line in res.stdout.splitlines()
              if line.startswith("{") and '"result"' in line][-1]
    assert result["firmware"] == firmware and result["passed"] is True
    checks = {c["name"]: c for c in result["checks"]}
    assert checks[f"firmware:{firmware}"]["passed"] and checks["http:80/=200"]["passed"]
    assert "efi: EFI v" in console
    if firmware == "secureboot":
        assert "Secure boot enabled" in console
    else:
        assert "Secure boot disabled" in console


def test_hyperv_vhdx_has_an_esp_with_the_removable_shim(httpd_build: dict[str, Any]) -> None:
    from imagepipe.tools.guestfs import new_handle

    vhdx = _output(httpd_build["manifest"], "vhdx")
    assert has_esp(read_head(vhdx, "vhdx"))
    g = new_handle()
    try:
        g.add_drive_opts(str(vhdx), format="vhdx", readonly=True)
        g.launch()
        parts = g.list_partitions()
        types = {p: g.part_get_gpt_type(g.part_to_dev(p), g.part_to_partnum(p)) for p in parts}
        esp = [p for p, t in types.items() if t.upper() == ESP]
        assert len(esp) == 1, types
        assert g.vfs_type(esp[0]) == "vfat"
        g.mount_ro(esp[0], "/")
        shim = g.read_file("/EFI/BOOT/BOOTX64.EFI")
        assert shim[:2] == b"MZ" and len(shim) > 100_000  # a PE image: Debian's signed shim
        assert g.is_file("/EFI/BOOT/grubx64.efi")
        assert "search" in g.cat("/EFI/BOOT/grub.cfg")
        g.umount_all()
    finally:
        g.close()
