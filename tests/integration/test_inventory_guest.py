"""The inventory is read from the guest after all guest work, in the guest stage's launch, and
becomes the manifest's `packages` plus an `sbom.spdx.json` the SPDX validator accepts.

A tiny Debian fixture disk holds a dpkg status file; a customize command "installs" one more
package (appends a stanza, as dpkg would) so the test proves the read happens after customize.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from imagepipe.guest.work import run_guest_work
from imagepipe.pipeline.manifest import StageRecord, build_manifest, write
from imagepipe.recipe.model import Customize, ImageSource, Recipe, Seal, Source
from imagepipe.stages.base import Artifact
from imagepipe.testing.fixtures import make_debian_fixture
from tests.unit.test_inventory import STATUS

pytestmark = [pytest.mark.guestfs, pytest.mark.qemu]

EXTRA = ("Package: canary\nStatus: install ok installed\nArchitecture: all\n"
         "Version: 1.1\n")


@pytest.fixture(scope="module")
def worked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Recipe, dict[str, Any]]:
    d = tmp_path_factory.mktemp("inv")
    img = make_debian_fixture(d / "disk.raw", {"var/lib/dpkg/status": STATUS}, busybox=True)
    recipe = Recipe(name="inv", description="inventory test", path=d / "inv.yaml",
                    image_version="3", source=Source(image=ImageSource(url="file:///dev/null")),
                    customize=Customize(run=(f"printf '\\n{EXTRA}' >> /var/lib/dpkg/status",)),
                    seal=Seal(operations="defaults"))
    return recipe, run_guest_work(img, recipe, instance_id="iid-inv", fmt="raw").to_json()


def test_inventory_read_after_customize(worked: tuple[Recipe, dict[str, Any]]) -> None:
    inv = worked[1]["inventory"]
    assert inv["format"] == "deb" and inv["database"] == "/var/lib/dpkg/status"
    assert (inv["distro"], inv["distro_version"]) == ("debian", "12")
    names = [(p["name"], p["arch"], p["version"]) for p in inv["packages"]]
    assert ("canary", "all", "1.1") in names  # installed by customize, read afterwards
    assert ("old-removed", "amd64", "1.0-1") not in names  # config-files only: not installed
    assert inv["count"] == 6


def test_manifest_and_validating_sbom(worked: tuple[Recipe, dict[str, Any]],
                                      tmp_path: Path) -> None:
    recipe, record = worked
    out = tmp_path / "inv.qcow2"
    out.write_bytes(b"x")
    rec = StageRecord("guest", "guest", 2, "k", False, 1.0,
                      artifact=Artifact(path=tmp_path / "g.qcow2", kind="image", format="qcow2",
                                        metadata=record))
    conv = StageRecord("convert.qcow2", "convert", 1, "k2", False, 1.0, artifact=Artifact(
        path=out, kind="image", format="qcow2", digest="sha256:" + "0" * 64,
        metadata={"format": "qcow2", "file_size": 1}))
    m = build_manifest(recipe=recipe, recipe_sha256="ab", records=[rec, conv], tools={},
                       build_dir=tmp_path, started=time.time())
    assert [p["name"] for p in m["packages"]][:2] == ["apache2", "canary"]
    guest_rec = m["stages"][0]["record"]["inventory"]
    assert "packages" not in guest_rec and guest_rec["count"] == 6  # listed once, at the top
    write(tmp_path, m)
    sbom = tmp_path / "sbom.spdx.json"
    tool = Path(sys.executable).parent / "pyspdxtools"
    res = subprocess.run([str(tool), "-i", str(sbom)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
    assert f"{hashlib.sha256(sbom.read_bytes()).hexdigest()}  sbom.spdx.json" in sums
    assert f"{'0' * 64}  inv.qcow2" in sums
    written = json.loads((tmp_path / "manifest.json").read_text())
    assert written["sbom"]["errors"] == [] and written["sbom"]["validated_by"] == "spdx-tools"
