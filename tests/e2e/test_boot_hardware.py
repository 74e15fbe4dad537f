"""The shipped httpd template boots on its platforms' own virtual hardware, via the real CLI.

Two TCG boots of the session's httpd build (tests/e2e/conftest.py `httpd_build`): the vdi on
VirtualBox's hardware (ICH9 AHCI + e1000, the seed as an AHCI CD-ROM) and the vmdk on vSphere's
paravirtual hardware (PVSCSI + VMXNET3), each to HTTP 200 from apache in the guest. Hyper-V and
Azure have no qemu emulation: the vhdx's initramfs must carry hv_vmbus, hv_storvsc and hv_netvsc.
The build itself (its sizes and its largest directories) is checked here too: it is free.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, run_cli

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.qemu, pytest.mark.guestfs]


def _output(build: dict[str, Any], fmt: str) -> Path:
    for o in build["manifest"]["outputs"]:
        if o.get("format_name") == fmt:
            return Path(o["path"])
    raise AssertionError(f"no {fmt} output in {build['manifest']['outputs']}")


def _result(stdout: str) -> dict[str, Any]:
    events = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    results = [e for e in events if e.get("event") == "result"]
    assert results, stdout[-2000:]
    return results[-1]


def _boot(image: Path, hardware: str, tmp_path: Path) -> dict[str, Any]:
    res = run_cli("--json", "boot-test", str(image), "--hardware", hardware, "--user-data",
                  str(REPO / "recipes" / "httpd" / "user-data.yaml"), "--http", "80:/:200",
                  "--timeout", "600", "--keep-log", str(tmp_path / "log"), timeout=900)
    assert res.returncode == 0, (res.stderr[-3000:], _console(tmp_path)[-3000:])
    return _result(res.stdout)


def _console(tmp_path: Path) -> str:
    """The whole console log of the last boot (the drivers' probe lines are near its start)."""
    logs = sorted((tmp_path / "log").glob("console-*.log"))
    return logs[-1].read_text(errors="replace") if logs else ""


def test_vdi_boots_on_virtualbox_hardware(httpd_build: dict[str, Any], tmp_path: Path) -> None:
    rec = _boot(_output(httpd_build, "vdi"), "virtualbox", tmp_path)
    assert rec["passed"] and rec["hardware"] == "ahci+e1000"
    assert {c["name"] for c in rec["checks"] if c["passed"]} >= {"login", "http:80/=200"}
    console = _console(tmp_path)
    # libata names the disk it found behind AHCI (a virtio disk never shows up this way)
    assert "ATA-7: QEMU HARDDISK" in console and "e1000" in console, console[-1500:]


def test_vmdk_boots_on_vsphere_paravirtual_hardware(httpd_build: dict[str, Any],
                                                    tmp_path: Path) -> None:
    rec = _boot(_output(httpd_build, "vmdk"), "vsphere", tmp_path)
    assert rec["passed"] and rec["hardware"] == "pvscsi+vmxnet3"
    assert {c["name"] for c in rec["checks"] if c["passed"]} >= {"login", "http:80/=200"}
    console = _console(tmp_path).lower()
    assert "vmw_pvscsi" in console and "vmxnet3" in console, console[-1500:]


def test_vhdx_initramfs_has_the_hyperv_drivers(httpd_build: dict[str, Any]) -> None:
    res = run_cli("--json", "boot-test", str(_output(httpd_build, "vhdx")), "--hardware",
                  "hyperv", timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    rec = _result(res.stdout)
    assert rec["passed"] and set(rec["drivers"]) == {"hv_vmbus", "hv_storvsc", "hv_netvsc"}
    assert set(rec["drivers"].values()) <= {"initramfs", "builtin"}


def test_build_reports_sizes_and_largest_directories(httpd_build: dict[str, Any]) -> None:
    m = httpd_build["manifest"]
    used = m["content"]["used_bytes"]
    assert used > 100 << 20
    dirs = m["content"]["largest_dirs"]
    assert len(dirs) == 10 and dirs[0]["bytes"] >= dirs[-1]["bytes"]
    assert any(d["path"].startswith("/usr/lib/modules") for d in dirs)
    for o in m["outputs"]:
        assert o["ratio_to_used"] == round(o["file_size"] / used, 3)
    guest = next(s for s in m["stages"] if s["id"] == "guest")["record"]["lean"]
    assert "/" in guest["trimmed"]
