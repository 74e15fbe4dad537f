"""A whole build with `publish: ovirt` (guest stage off): fetch -> base.image -> convert
(qcow2 + ova) -> publish.ovirt against the simulator; the manifest records the template."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from imagepipe.pipeline import BuildOptions, build
from imagepipe.recipe import model as m
from tests.integration.ovirt_helpers import identical
from tests.integration.pipeline_helpers import image_recipe, make_qcow2, sha256

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]


def test_build_publishes_template(sim, server, http_root: Path,
                                  tmp_path: Path) -> None:
    src = make_qcow2(http_root / "web.qcow2")
    recipe = image_recipe(tmp_path, f"{server.url}/web.qcow2", sha256(src), name="web",
                          outputs=(("qcow2", None), ("ova", None)))
    recipe = dataclasses.replace(
        recipe, description="Web server", image_version="3", os_type="debian_12",
        publish=m.Publish(local=None, ovirt=m.OvirtPublish(
            engine_url=sim.url, password_file=sim.password_file, ca_file=sim.ca_file,
            storage_domain="data1", cluster="Default", cpus=3)))
    report = build(recipe, BuildOptions(store=tmp_path / "store"))
    assert report.ok, report.error
    text = json.dumps(report.manifest)
    assert sim.password not in text
    meta = _find_publish(report.manifest)
    assert meta["template_name"] == "web" and meta["checksum"].startswith("sha256:")
    assert meta["version_name"] == "3"
    tpl = next(t for t in sim.state()["templates"] if t["id"] == meta["template_id"])
    assert tpl["description"] == "Web server" and tpl["cpu"]["topology"]["cores"] == "3"
    disk = next(d for d in sim.state()["disks"] if d["id"] == meta["template_disk_ids"][0])
    assert identical(src, Path(disk["path"]))
    assert sim.state()["vms"] == []
    # The OVA output went through convert_image -> write_ova: OVF first, then the disk.
    ova = next(st["output"]["path"] for st in report.manifest["stages"]
               if st["id"] == "convert.ova")
    with tarfile.open(ova) as tar:
        assert tar.getnames()[:2] == ["web.ovf", "web-disk1.vmdk"]


def _find_publish(manifest: dict) -> dict:
    """The publish.ovirt stage record's metadata, wherever the manifest keeps it."""
    found: list[dict] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "template_id" in node and "checksum" in node:
                found.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(manifest)
    assert found, json.dumps(manifest, indent=1)[:3000]
    return found[0]


def test_cli_build_recipe_publishes(sim, server, http_root: Path,
                                    tmp_path: Path) -> None:
    """`imagepipe build recipe.yaml` as a user runs it: recipe file in, template out, the
    manifest records the template; a second build finds the same image and uploads nothing."""
    from tests.conftest import run_cli

    src = make_qcow2(http_root / "cli.qcow2")
    recipe = tmp_path / "webcli.yaml"
    recipe.write_text(f"""\
version: 1
name: webcli
description: Web server from the CLI
comment: built by the test
image_version: "9"
os_type: debian_12
source:
  image:
    url: {server.url}/cli.qcow2
    checksum: {sha256(src)}
seal: {{operations: none}}
outputs:
  - {{format: qcow2}}
publish:
  local: null
  ovirt:
    engine_url: {sim.url}
    password_file: {sim.password_file}
    ca_file: {sim.ca_file}
    storage_domain: data1
    cluster: Default
""")
    args = ("--json", "build", str(recipe), "--store", str(tmp_path / "store"))
    first = run_cli(*args, env={"HOME": str(sim.base)}, timeout=300)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert sim.password not in first.stdout + first.stderr
    versions = [(t["name"], t["version"]["version_name"]) for t in sim.state()["templates"]]
    assert ("webcli", "9") in versions
    disks = {d["id"] for d in sim.state()["disks"]}
    again = run_cli(*args, env={"HOME": str(sim.base)}, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert {d["id"] for d in sim.state()["disks"]} == disks  # nothing uploaded again
    assert "already built from this image" in again.stdout + again.stderr
