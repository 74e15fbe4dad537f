"""`make image RECIPE=httpd` end to end: bootstrap -> guest -> convert -> boot test -> publish.

One real build of recipes/httpd.yaml (Debian 12 + apache2 from the host's Debian mirror), then
the assertions the issue names: every output holds the same guest data as the sealed image
(`qemu-img compare`), the boot test passed (login, cloud-init final, HTTP 200, new machine-id
and SSH host keys), the local template store holds the version; and a rebuild with no change
reruns nothing. Skipped (with the reason) only when the Debian mirror is unreachable.

The store is shared by the whole test session (tests/e2e/conftest.py: IMAGEPIPE_TEST_STORE to
keep it across runs, so a second `make test` reuses the bootstrap tarball).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from imagepipe.tools import qemu_img
from tests.conftest import run_cli

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.qemu, pytest.mark.guestfs]

EXPECTED_FORMATS = {"qcow2", "vmdk", "vpc", "vhdx", "vdi"}


def _events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def _result(stdout: str) -> dict[str, Any]:
    results = [e for e in _events(stdout) if e.get("event") == "result"]
    assert results, f"no result event in:\n{stdout[-2000:]}"
    return results[-1]


@pytest.fixture(scope="module")
def recipe_dir(httpd_recipe_dir: Path) -> Path:
    return httpd_recipe_dir


@pytest.fixture(scope="module")
def build(httpd_build: dict[str, Any]) -> dict[str, Any]:
    return httpd_build


def _stage(manifest: dict[str, Any], stage_id: str) -> dict[str, Any]:
    for s in manifest["stages"]:
        if s["id"] == stage_id:
            return dict(s)
    raise AssertionError(f"no stage {stage_id} in {[s['id'] for s in manifest['stages']]}")


def test_outputs_hold_the_sealed_image_in_every_format(build: dict[str, Any]) -> None:
    m = build["manifest"]
    guest = _stage(m, "guest")["output"]
    outputs = m["outputs"]
    assert {o["format"] for o in outputs} >= EXPECTED_FORMATS
    for o in outputs:
        assert Path(o["path"]).is_file()
        assert qemu_img.compare(guest["path"], o["path"], guest["format"], o["format"]), \
            f"{o['path']} differs from the sealed image"


def test_bootstrap_made_a_bootable_debian_disk(build: dict[str, Any]) -> None:
    rec = _stage(build["manifest"], "base.bootstrap")["record"]
    assert rec["bootloader"] == "grub" and rec["root_uuid"]
    assert rec["firmware"] == "hybrid" and rec["partition_table"] == "gpt"
    assert "EFI/BOOT/BOOTX64.EFI" in rec["efi_files"]
    assert "apache2" in rec["packages"] and rec["suite"] == "bookworm"


def test_boot_test_passed_with_http_and_a_new_identity(build: dict[str, Any]) -> None:
    rec = _stage(build["manifest"], "test.boot")["record"]
    checks = {c["name"]: c for c in rec["checks"]}
    assert rec["passed"] is True, checks
    assert any(n.startswith("http:80/") and c["passed"] for n, c in checks.items())
    assert checks["new-identity"]["passed"], checks["new-identity"]
    assert rec["time_to_login"] and rec["time_to_cloud_init_final"]
    assert Path(rec["console_log"]).is_file()
    assert rec["clean_shutdown"] is True


def test_template_store_holds_the_version(build: dict[str, Any], recipe_dir: Path) -> None:
    local = build["manifest"]["publish"]["local"]
    version_dir = Path(local["dir"])  # TEMPLATES/httpd/VERSION
    assert (version_dir / "manifest.json").is_file()
    res = run_cli("--json", "templates", "ls", "httpd", "--dir", str(version_dir.parent.parent),
                  cwd=recipe_dir)
    assert res.returncode == 0, res.stderr
    rows = _result(res.stdout)["templates"]
    assert {(r["name"], r["version"]) for r in rows} >= {("httpd", local["version"])}, rows
    published = {Path(o).name for r in rows if r["version"] == local["version"]
                 for o in r["outputs"]}
    assert len(published) >= len(EXPECTED_FORMATS), rows


def test_rebuild_without_change_reruns_nothing(build: dict[str, Any], recipe_dir: Path,
                                               shared_store: Path) -> None:
    res = run_cli("--json", "build", str(recipe_dir / "httpd.yaml"), "--store",
                  str(shared_store), cwd=recipe_dir, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    result = _result(res.stdout)
    assert result["rerun_count"] == 0 or set(result["rerun"]) <= {"publish.local"}, result
