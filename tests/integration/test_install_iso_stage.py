"""The `base.iso` stage in a real build: fetch the installer ISO over HTTP, install, convert.

The ISO is the tests' own tiny installer (base_helpers), served from 127.0.0.1; the recipe's
kickstart ends up on the disk, so the record read back from the converted output proves the
whole chain: fetch -> remaster -> boot once -> power-off -> disk artifact -> convert.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.recipe import model as m
from tests.integration.base_helpers import MARKER, make_installer_iso, read_record
from tests.integration.pipeline_helpers import sha256

pytestmark = [pytest.mark.qemu]


def _recipe(tmp: Path, url: str, digest: str, ks: Path, timeout: int = 240) -> m.Recipe:
    return m.Recipe(
        name="isotest", description="install from ISO", path=tmp / "isotest.yaml",
        source=m.Source(iso=m.IsoSource(url=url, checksum=digest, install=m.IsoInstall(
            kickstart=ks, timeout=timeout, memory=512 * 1024**2))),
        disk=m.Disk(size=64 * 1024**2), seal=m.Seal(operations="none"),
        outputs=(m.Output(format="qcow2"),), publish=m.Publish(local=None))


def test_iso_recipe_builds_and_caches(http_server, http_root: Path,
                                      tmp_path: Path) -> None:
    from imagepipe.pipeline import BuildOptions, build

    iso = make_installer_iso(http_root / "installer.iso")
    ks = tmp_path / "ks.cfg"
    ks.write_text("# pipeline kickstart\n")
    recipe = _recipe(tmp_path, f"{http_server.url}/installer.iso", sha256(iso), ks)
    store = tmp_path / "store"
    report = build(recipe, BuildOptions(store=store))
    assert report.ok
    stages = {s["id"]: s for s in report.manifest["stages"]}
    assert list(stages) == ["fetch", "base.iso", "convert.qcow2"]
    rec = stages["base.iso"]["record"]
    assert rec["answer_files"] == ["ks.cfg"] and rec["patched"] == ["/isolinux/isolinux.cfg"]
    assert Path(rec["console_log"]).is_file()
    assert stages["base.iso"]["output"]["format"] == "qcow2"
    out = report.manifest["outputs"][0]["path"]
    record = read_record(Path(out), "qcow2")
    assert record.startswith(MARKER) and b"# pipeline kickstart" in record

    again = build(recipe, BuildOptions(store=store))
    assert again.ok and not again.rerun  # the install is not repeated


def test_iso_install_timeout_fails_the_build(http_server, http_root: Path,
                                             tmp_path: Path) -> None:
    from imagepipe.errors import TimeoutExpired
    from imagepipe.pipeline import BuildOptions, build

    iso = http_root / "installer.iso"
    if not iso.exists():
        make_installer_iso(iso)
    ks = tmp_path / "ks.cfg"
    ks.write_text("HANG\n")
    recipe = _recipe(tmp_path, f"{http_server.url}/installer.iso", sha256(iso), ks, timeout=12)
    with pytest.raises(TimeoutExpired, match="did not power off within 12s"):
        build(recipe, BuildOptions(store=tmp_path / "store"))
    logs = list((tmp_path / "store" / "builds" / "isotest").rglob("install-console.log"))
    assert logs and "installer: waiting forever" in logs[0].read_text()


def test_failed_boot_test_fails_the_build_before_publish(http_server, http_root: Path,
                                                         tmp_path: Path) -> None:
    from imagepipe.boot.run import BootTestFailed
    from imagepipe.pipeline import BuildOptions, build
    from imagepipe.tools import qemu_img
    from tests.integration.pipeline_helpers import image_recipe

    blank = http_root / "blank.qcow2"
    qemu_img.create(blank, "qcow2", 16 * 1024**2)
    recipe = image_recipe(tmp_path, f"{http_server.url}/blank.qcow2", sha256(blank),
                          name="noboot", test=m.Test(boot=m.BootTest(
                              timeout=15, memory=256 * 1024**2, cpus=1,
                              http=(m.HttpCheck(80, "/", 200),))))
    with pytest.raises(BootTestFailed, match="boot test failed: login"):
        build(recipe, BuildOptions(store=tmp_path / "store"))
    assert not (tmp_path / "templates").exists()  # publish.local never ran
    logs = list((tmp_path / "store" / "builds" / "noboot").rglob("console-*.log"))
    assert len(logs) == 1  # kept for the post-mortem
