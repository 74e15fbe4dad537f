"""`imagepipe ovirt make-template`: fields read back with the unmodified SDK, the temporary VM
gone, the template's own disk equal to the image, idempotency, versioned names with --keep."""

from __future__ import annotations

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
USER_DATA = "#cloud-config\npackages: [httpd]\nruncmd:\n  - [systemctl, enable, httpd]\n"


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_image(tmp_path_factory.mktemp("img") / "web.qcow2")


def test_make_template_fields(sim, sdk_con, image: Path, tmp_path: Path) -> None:
    ud = tmp_path / "user-data"
    ud.write_text(USER_DATA)
    before = disk_ids(sim)
    proc, r = ovirt(sim, "make-template", str(image), "--storage-domain", "data1",
                    "--cluster", "Default", "--name", "httpd", "--description", "Apache httpd",
                    "--comment", "built by CI", "--user-data", str(ud), "--memory", "3G",
                    "--cpus", "3", "--os-type", "rhel_9x64", "--no-ballooning", "--seal")
    assert proc.returncode == 0, proc.stderr
    assert r["reused"] is False and r["template_name"] == "httpd"

    from ovirtsdk4 import types

    service = sdk_con.system_service().templates_service().template_service(r["template_id"])
    tpl = service.get()
    assert (tpl.name, tpl.description, tpl.status) == ("httpd", "Apache httpd",
                                                       types.TemplateStatus.OK)
    assert tpl.comment.startswith("built by CI\n")
    assert f"imagepipe-image-digest: {r['checksum']}" in tpl.comment
    assert tpl.memory == 3 << 30 and tpl.cpu.topology.cores == 3
    assert tpl.os.type == "rhel_9x64" and tpl.type == types.VmType.SERVER
    assert tpl.memory_policy.ballooning is False
    init = tpl.initialization
    assert init.custom_script == USER_DATA
    assert init.root_password is None
    nic = init.nic_configurations[0]
    assert (nic.name, nic.boot_protocol, nic.on_boot) == ("eth0", types.BootProtocol.DHCP, True)

    state = sim.state()
    stpl = next(t for t in state["templates"] if t["id"] == r["template_id"])
    assert stpl["sealed"] is True
    assert stpl["disk_ids"] == r["template_disk_ids"] and len(stpl["disk_ids"]) == 1
    atts = service.disk_attachments_service().list()
    assert [a.id for a in atts] == r["template_disk_ids"]
    assert atts[0].bootable and atts[0].interface == types.DiskInterface.VIRTIO_SCSI
    # The template owns a copy equal to the image; the uploaded disk and the VM are gone.
    assert identical(image, disk_path(sim, r["template_disk_ids"][0]))
    assert state["vms"] == []
    assert r["disk_id"] not in {d["id"] for d in state["disks"]}
    assert_clean(sim, disks_before=before | set(r["template_disk_ids"]))
    events = "\n".join(state["events"])
    assert "vm " in events and "removed" in events  # a temporary VM existed and was removed


def test_same_image_is_not_uploaded_again(sim, image: Path) -> None:
    proc, first = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                        "--name", "idem", "--description", "d", "--no-seal")
    assert proc.returncode == 0, proc.stderr
    disks = disk_ids(sim)
    proc, again = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                        "--name", "idem", "--description", "d", "--no-seal")
    assert proc.returncode == 0, proc.stderr
    assert again["reused"] is True and again["template_id"] == first["template_id"]
    assert disk_ids(sim) == disks
    stpl = next(t for t in sim.state()["templates"] if t["id"] == first["template_id"])
    assert stpl["sealed"] is False


def test_same_name_other_image_is_refused(sim, image: Path, tmp_path: Path) -> None:
    other = make_image(tmp_path / "other.qcow2")
    proc, _ = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                    "--name", "taken", "--description", "d")
    assert proc.returncode == 0, proc.stderr
    before = disk_ids(sim)
    proc, _ = ovirt(sim, "make-template", str(other), "-s", "data1", "--cluster", "Default",
                    "--name", "taken", "--description", "d", json_mode=False)
    assert proc.returncode == 1 and "already in use" in proc.stderr
    assert_clean(sim, disks_before=before)


def test_versioned_names_keep_newest(sim, tmp_path: Path) -> None:
    names = []
    for i in range(3):
        img = make_image(tmp_path / f"v{i}.qcow2", chunks=((i, 1),))
        proc, r = ovirt(sim, "make-template", str(img), "-s", "data1", "--cluster", "Default",
                        "--name", "app-${date}", "--description", f"v{i}", "--keep", "2")
        assert proc.returncode == 0, proc.stderr
        names.append(r["template_name"])
        import time

        time.sleep(1.05)  # version names have one-second resolution
    left = sorted(t["name"] for t in sim.state()["templates"] if t["name"].startswith("app-"))
    assert left == sorted(names[1:])
    assert r["removed_versions"] == [names[0]]


def test_make_template_states_the_firmware_as_bios_type(sim, sdk_con, image: Path) -> None:
    """The engine (simulator) stores bios.type on the temporary VM and the template, and
    refuses a value that is not in its BiosType enum."""
    from ovirtsdk4 import types

    proc, r = ovirt(sim, "make-template", str(image), "--storage-domain", "data1",
                    "--cluster", "Default", "--name", "efi-tpl", "--description", "UEFI",
                    "--firmware", "secureboot")
    assert proc.returncode == 0, proc.stderr
    tpl = sdk_con.system_service().templates_service().template_service(
        r["template_id"]).get()
    assert tpl.bios.type == types.BiosType.Q35_SECURE_BOOT
    from imagepipe.testing.ovirt_engine.vms import bios
    from imagepipe.testing.ovirt_engine.xmlio import Fault

    with pytest.raises(Fault):
        bios({"type": "uefi_please"})
