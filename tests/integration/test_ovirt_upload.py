"""`imagepipe ovirt upload-disk|upload-iso|templates ls` against the simulator + real imageio
daemon, and the unmodified `ovirt-img upload-disk` as a second client of the same simulator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.ovirt_helpers import (
    MiB,
    assert_clean,
    disk_ids,
    disk_path,
    identical,
    make_image,
    ovirt,
)

pytestmark = pytest.mark.ovirt


@pytest.mark.qemu
@pytest.mark.parametrize("src_fmt,disk_fmt,sparse", [("qcow2", "cow", True),
                                                      ("raw", "raw", True),
                                                      ("vmdk", "cow", True),
                                                      ("qcow2", "raw", False)])
def test_upload_disk_bytes_equal(sim, tmp_path: Path, src_fmt: str, disk_fmt: str,
                                 sparse: bool) -> None:
    image = make_image(tmp_path / f"img.{src_fmt}", fmt=src_fmt)
    before = disk_ids(sim)
    args = ["upload-disk", str(image), "--storage-domain", "data1", "--format", disk_fmt,
            "--name", f"up-{src_fmt}-{disk_fmt}"]
    if not sparse:
        args.append("--no-sparse")
    proc, result = ovirt(sim, *args)
    assert proc.returncode == 0, proc.stderr
    from ovirt_imageio import client

    local = client.checksum(str(image), algorithm="sha256")
    assert result["checksum"] == f"sha256:{local['checksum']}"
    disk = next(d for d in sim.state()["disks"] if d["id"] == result["disk_id"])
    assert disk["status"] == "ok" and disk["format"] == disk_fmt and disk["sparse"] is sparse
    assert disk["provisioned_size"] == 64 * MiB
    assert identical(image, disk_path(sim, result["disk_id"]))
    if sparse:  # zero extents were not written: 4 MiB of data, not 64
        assert disk["actual_size"] < 16 * MiB
    assert_clean(sim, disks_before=before | {result["disk_id"]})


@pytest.mark.qemu
def test_upload_iso(sim, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "README").write_text("installer\n" * 1000)
    iso = tmp_path / "installer"
    subprocess.run(["genisoimage", "-quiet", "-o", str(iso), "-V", "INST", "-r", str(tree)],
                   check=True)
    proc, result = ovirt(sim, "upload-iso", str(iso), "--storage-domain", "data1")
    assert proc.returncode == 0, proc.stderr
    disk = next(d for d in sim.state()["disks"] if d["id"] == result["disk_id"])
    assert (disk["name"], disk["content_type"], disk["format"], disk["sparse"]) == \
        ("installer.iso", "iso", "raw", False)
    assert disk_path(sim, result["disk_id"]).read_bytes() == iso.read_bytes()
    # the unmodified ovirt-img detects the ISO the same way, against the same simulator
    ovirt_img = Path(sys.executable).parent / "ovirt-img"
    before = disk_ids(sim)
    ref = subprocess.run([str(ovirt_img), "upload-disk", "--engine-url", sim.url, "--username",
                          sim.username, "--password-file", str(sim.password_file), "--cafile",
                          str(sim.ca_file), "-s", "data1", str(iso)],
                         capture_output=True, text=True, timeout=120)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    new = [d for d in sim.state()["disks"] if d["id"] not in before]
    assert [(d["content_type"], d["format"], d["sparse"]) for d in new] == [("iso", "raw", False)]
    assert Path(new[0]["path"]).read_bytes() == iso.read_bytes()


def test_upload_iso_refuses_non_iso(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "disk.raw", fmt="raw")
    before = disk_ids(sim)
    proc, _ = ovirt(sim, "upload-iso", str(image), "--storage-domain", "data1",
                    json_mode=False)
    assert proc.returncode == 2
    assert "not an ISO 9660 image" in proc.stderr
    assert disk_ids(sim) == before


@pytest.mark.qemu
def test_proxy_url_fallback(sim, tmp_path: Path) -> None:
    """transfer_url points at a closed port: the upload goes through proxy_url."""
    image = make_image(tmp_path / "img.qcow2")
    sim.set_faults(bad_transfer_url=1)
    proc, result = ovirt(sim, "upload-disk", str(image), "-s", "data1")
    assert proc.returncode == 0, proc.stderr
    assert identical(image, disk_path(sim, result["disk_id"]))


@pytest.mark.qemu
def test_token_revoked_mid_flow(sim, tmp_path: Path) -> None:
    """The engine drops every token; the SDK logs in again once and the upload completes."""
    image = make_image(tmp_path / "img.qcow2")
    logins = sim.state()["logins"]
    sim.set_faults(revoke_tokens=5)  # once, on the 5th API request
    proc, result = ovirt(sim, "upload-disk", str(image), "-s", "data1")
    assert proc.returncode == 0, proc.stderr
    assert sim.state()["logins"] >= logins + 2
    assert identical(image, disk_path(sim, result["disk_id"]))


@pytest.mark.qemu
def test_unmodified_ovirt_img_upload(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "img.qcow2")
    ovirt_img = Path(sys.executable).parent / "ovirt-img"
    before = disk_ids(sim)
    proc = subprocess.run([str(ovirt_img), "upload-disk", "--engine-url", sim.url,
                           "--username", sim.username, "--password-file",
                           str(sim.password_file), "--cafile", str(sim.ca_file),
                           "--storage-domain", "data1", "--name", "by-ovirt-img", str(image)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = [d for d in sim.state()["disks"] if d["id"] not in before]
    assert [(d["name"], d["status"], d["format"]) for d in new] == [("by-ovirt-img", "ok", "cow")]
    assert identical(image, Path(new[0]["path"]))
    assert_clean(sim, disks_before=before | {new[0]["id"]})


def test_templates_ls(sim) -> None:
    proc, result = ovirt(sim, "templates", "ls")
    assert proc.returncode == 0, proc.stderr
    assert "Blank" in [t["name"] for t in result["templates"]]
    proc, _ = ovirt(sim, "templates", "ls", "--name-prefix", "Bla", json_mode=False)
    assert proc.returncode == 0 and proc.stdout.startswith("Blank")
    proc, result = ovirt(sim, "templates", "ls", "--name-prefix", "nothing-like-this")
    assert result["templates"] == []
