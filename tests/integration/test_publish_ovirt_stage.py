"""Stage `publish.ovirt` from a recipe model: template made, manifest metadata recorded, no
password (nor its hash) in the stage key or the metadata."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest

from imagepipe.recipe.model import CloudInit, ImageSource, OvirtPublish, Publish, Recipe, Source
from imagepipe.stages import get_stage
from imagepipe.stages.base import Artifact, StageContext
from tests.integration.ovirt_helpers import identical, make_image

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]


def test_publish_stage_records_template(sim, tmp_path: Path) -> None:
    image = make_image(tmp_path / "web.qcow2")
    ud = tmp_path / "user-data.yaml"
    ud.write_text("#cloud-config\npackages: [nginx]\n")
    recipe = Recipe(
        name="web", description="Web server", comment="from CI", path=tmp_path / "web.yaml",
        source=Source(image=ImageSource(url="file:///dev/null")), image_version="7",
        os_type="debian_12", cloud_init=CloudInit(user_data=ud),
        publish=Publish(local=None, ovirt=OvirtPublish(
            engine_url=sim.url, password_file=sim.password_file, ca_file=sim.ca_file,
            storage_domain="data1", cluster="Default")))
    cls = get_stage("publish.ovirt")
    options = cls.options_from_recipe(recipe)
    assert options is not None and options.template_name == "web"
    assert options.version_name == "7"  # every publish: a new version of template "web"
    stage = cls(options)
    inputs = {"image": Artifact(path=image, kind="image", format="qcow2", digest="sha256:0")}
    key_material = json.dumps(stage.key_material(inputs))
    assert sim.password not in key_material
    with ExitStack() as stack:
        ctx = StageContext(recipe=recipe, store=None, workdir=tmp_path / "work",  # type: ignore[arg-type]
                           build_dir=tmp_path, stage_id="publish.ovirt", key="k" * 64,
                           log_path=tmp_path / "logs" / "publish.log", exit_stack=stack)
        art = stage.run(ctx, inputs)
    assert art.kind == "record" and art.path is None
    meta = dict(art.metadata)
    assert meta["template_name"] == "web" and meta["checksum"].startswith("sha256:")
    assert (meta["version_name"], meta["version_number"]) == ("7", 1)
    assert meta["base_template_id"] == meta["template_id"]  # the first publish: the base
    assert sim.password not in json.dumps(meta)
    tpl = next(t for t in sim.state()["templates"] if t["id"] == meta["template_id"])
    assert tpl["description"] == "Web server" and tpl["os"]["type"] == "debian_12"
    assert tpl["initialization"]["custom_script"] == ud.read_text()
    assert identical(image, Path(next(d["path"] for d in sim.state()["disks"]
                                      if d["id"] == meta["template_disk_ids"][0])))
    assert sim.state()["vms"] == []
