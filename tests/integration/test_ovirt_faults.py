"""Every injected engine fault ends with a clear error, exit 1, fast, and nothing left behind
(no disk, VM, transfer, imageio ticket or qemu-nbd)."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.ovirt_helpers import (
    assert_clean,
    disk_ids,
    disk_path,
    identical,
    make_image,
    ovirt,
)

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("img") / "img.qcow2")


def _fails(sim, *args: str, expect: str, within: float = 30) -> str:
    before = disk_ids(sim)
    start = time.monotonic()
    proc, _ = ovirt(sim, *args, json_mode=False)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert expect in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert elapsed < within, f"took {elapsed:.1f}s: a failure must not look like a timeout"
    assert_clean(sim, disks_before=before)
    assert sim.password not in proc.stdout + proc.stderr
    return proc.stderr


def test_bad_credentials(sim, image: Path) -> None:
    sim.set_faults(bad_credentials=True)
    _fails(sim, "upload-disk", str(image), "-s", "data1",
           expect="Cannot authenticate user 'admin@internal'")


def test_missing_storage_domain(sim, image: Path) -> None:
    sim.set_faults(missing_storage_domain=True)
    _fails(sim, "upload-disk", str(image), "-s", "data1",
           expect="storage domain 'data1' not found")


def test_paused_system_once_is_retried(sim, image: Path) -> None:
    sim.set_faults(transfer_paused_system=1)
    before = disk_ids(sim)
    proc, result = ovirt(sim, "upload-disk", str(image), "-s", "data1")
    assert proc.returncode == 0, proc.stderr
    assert result["attempts"] == 2
    assert "paused by the system" in proc.stdout  # the warning event of attempt 1
    assert identical(image, disk_path(sim, result["disk_id"]))
    assert_clean(sim, disks_before=before | {result["disk_id"]})


def test_paused_system_always_fails_after_retries(sim, image: Path) -> None:
    sim.set_faults(transfer_paused_system=10)
    err = _fails(sim, "upload-disk", str(image), "-s", "data1", "--retries", "2",
                 expect="failed 3 times")
    assert "paused by the system" in err


def test_disk_illegal_at_finalize_fails_fast(sim, image: Path) -> None:
    sim.set_faults(disk_illegal_at_finalize=1)
    _fails(sim, "upload-disk", str(image), "-s", "data1",
           expect="verification failed at finalize", within=15)


def test_disk_stuck_locked(sim, image: Path) -> None:
    """The disk stays locked past --disk-timeout; it is removed once the engine releases it."""
    sim.set_faults(disk_stuck_locked=4)
    _fails(sim, "upload-disk", str(image), "-s", "data1", "--disk-timeout", "2",
           expect="stayed locked")


def test_template_name_in_use(sim, image: Path) -> None:
    sim.set_faults(template_name_in_use=1)
    err = _fails(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                 "--name", "clash", "--description", "d",
                 expect="The Template name is already in use")
    assert "HTTP 409" in err
    assert not [t for t in sim.state()["templates"] if t["name"] == "clash"]


def test_template_illegal(sim, image: Path) -> None:
    sim.set_faults(template_fail=1)
    _fails(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
           "--name", "broken", "--description", "d", expect="became illegal")
    assert not [t for t in sim.state()["templates"] if t["name"] == "broken"]


def test_unknown_cluster_and_network(sim, image: Path) -> None:
    _fails(sim, "make-template", str(image), "-s", "data1", "--cluster", "Nope",
           "--name", "x", "--description", "d", expect="cluster 'Nope' not found")
    _fails(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
           "--network", "nonet", "--name", "x", "--description", "d",
           expect="no vNIC profile 'nonet'")


def test_bad_input_exit_2(sim, tmp_path: Path, image: Path) -> None:
    proc, _ = ovirt(sim, "upload-disk", str(tmp_path / "missing.qcow2"), "-s", "data1",
                    json_mode=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "qcow2",
                    str(overlay)], check=True)
    before = disk_ids(sim)
    proc, _ = ovirt(sim, "upload-disk", str(overlay), "-s", "data1", json_mode=False)
    assert proc.returncode == 2 and "backing file" in proc.stderr
    proc, _ = ovirt(sim, "make-template", str(overlay), "-s", "data1", "--cluster", "Default",
                    "--name", "x", "--description", "d", json_mode=False)
    assert proc.returncode == 2 and "backing file" in proc.stderr
    assert disk_ids(sim) == before
    proc, _ = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                    "--name", "x", "--description", "  ", json_mode=False)
    assert proc.returncode == 2 and "description" in proc.stderr
    bad = tmp_path / "ud.txt"
    bad.write_text("packages: [x]\n")
    proc, _ = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                    "--name", "x", "--description", "d", "--user-data", str(bad),
                    json_mode=False)
    assert proc.returncode == 2 and "#cloud-config" in proc.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text("#cloud-config\npackagess: [httpd]\n")
    proc, _ = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                    "--name", "x", "--description", "d", "--user-data", str(typo),
                    json_mode=False)
    assert proc.returncode == 2
    assert f"{typo}:2:1: packagess: unknown cloud-config key" in proc.stderr


def test_ticket_dropped_mid_upload_is_resumed(sim, tmp_path: Path) -> None:
    """vdsm loses the ticket while data flows: imageio answers 403 and the engine pauses the
    transfer. The client resumes the same transfer (the engine adds the ticket again) and
    resends only the segments that differ; the full checksum still has the last word."""
    big = make_image(tmp_path / "big.raw", fmt="raw", size=512 * 1024 * 1024,
                     chunks=tuple((i * 80, 32) for i in range(6)))
    sim.set_faults(drop_ticket_after=64 * 1024 * 1024)
    before = disk_ids(sim)
    proc, result = ovirt(sim, "upload-disk", str(big), "-s", "data1")
    assert proc.returncode == 0, proc.stderr
    events = "\n".join(sim.state()["events"])
    assert "ticket dropped mid-upload" in events and "ticket added again on resume" in events
    assert result["attempts"] == 1, proc.stdout  # no second disk: resumed, not restarted
    assert events.count(" added (big,") == 1
    # what was written before the drop is compared, not sent again
    assert 0 < result["resent_bytes"] < 192 * 1024 * 1024
    assert identical(big, disk_path(sim, result["disk_id"]))
    assert_clean(sim, disks_before=before | {result["disk_id"]})
