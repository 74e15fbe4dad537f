"""The boot test's failure path with a real qemu: an image that never boots.

The passing path (login, cloud-init final, HTTP 200, new identity) needs a real cloud image and
runs in the end-to-end httpd test; here: every check fails with a reason, within the timeout,
the console log is kept, the image is untouched and no qemu process is left behind.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from imagepipe.boot.run import boot_test
from imagepipe.recipe.model import HttpCheck
from imagepipe.tools import qemu_img
from tests.integration.base_helpers import qemu_pids_using

pytestmark = [pytest.mark.qemu]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def blank(tmp_path: Path) -> Path:
    disk = tmp_path / "blank.qcow2"
    qemu_img.create(disk, "qcow2", 16 * 1024**2)
    return disk


def test_unbootable_image_fails_every_check_and_keeps_the_log(blank: Path,
                                                              tmp_path: Path) -> None:
    before = _digest(blank)
    logs = tmp_path / "logs"
    report = boot_test(blank, checks=[HttpCheck(80, "/", 200)], timeout=20, log_dir=logs,
                       memory=256 * 1024**2, cpus=1).to_json()
    assert report["passed"] is False
    by_name = {c["name"]: c for c in report["checks"]}
    assert set(by_name) == {"login", "cloud-init-final", "http:80/=200", "new-identity",
                            "firmware:bios", "datasource", "hostname", "marker"}
    assert report["firmware"] == "bios"
    assert not any(c["passed"] for c in by_name.values())
    assert by_name["login"]["detail"] == "not seen within 20s"
    assert "never printed its identity" in by_name["new-identity"]["detail"]
    assert report["time_to_login"] is None and report["seconds"] < 90
    log = Path(report["console_log"])
    assert log.is_file() and log.parent == logs
    assert _digest(blank) == before  # booted on an overlay
    assert list(logs.glob("*.iso")) == [] and list(logs.glob("vm-*/overlay.qcow2")) == []
    assert qemu_pids_using(tmp_path) == []


def test_cli_reports_failure_with_exit_1_and_the_log(blank: Path, tmp_path: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("boot-test", str(blank), "--timeout", "15", "--memory", "256",
                  "--http", "80:/:200", "--keep-log", str(tmp_path / "keep"), timeout=120)
    assert res.returncode == 1, res.stderr
    assert "boot test failed: login, cloud-init-final, " in res.stderr
    assert "http:80/=200" in res.stderr
    assert "FAIL login" in res.stdout and "console log:" in res.stdout
    assert list((tmp_path / "keep").glob("console-*.log"))
    assert qemu_pids_using(tmp_path) == []


def test_cli_rejects_a_bad_http_check(blank: Path) -> None:
    from tests.conftest import run_cli

    res = run_cli("boot-test", str(blank), "--http", "80:nope", timeout=60)
    assert res.returncode == 2
    assert "use PORT:PATH:STATUS" in res.stderr
