"""The oVirt template options have one definition and one set of defaults (the recipe's):
the recipe model, the publish.ovirt stage, `imagepipe ovirt make-template` and the engine-side
TemplateSpec all agree."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from imagepipe.cli.ovirt import make_template_cmd, parse_size
from imagepipe.recipe.load import load_recipe
from imagepipe.recipe.model import OvirtPublish, TemplateOptions, template_fields
from imagepipe.stages.publish_ovirt import OvirtPublishStage
from imagepipe.targets.ovirt import TemplateSpec

DEFAULTS = TemplateOptions()


def _recipe(tmp_path: Path, ovirt: str, os_type: str = "") -> Path:
    path = tmp_path / "r.yaml"
    path.write_text("name: web\ndescription: web server\n" + os_type
                    + "source:\n  image:\n    url: file:///x.qcow2\n"
                    + "    checksum: sha256:" + "0" * 64 + "\n"
                    + "publish:\n  ovirt:\n    storage_domain: data1\n" + ovirt)
    return path


def test_every_user_takes_the_recipe_defaults(tmp_path: Path) -> None:
    assert template_fields(OvirtPublish()) == dataclasses.asdict(DEFAULTS)
    spec = TemplateSpec(name="t", description="d", cluster="c", storage_domain="s")
    assert template_fields(spec) == dataclasses.asdict(DEFAULTS)
    opts = OvirtPublishStage.options_from_recipe(load_recipe(_recipe(tmp_path, "")))
    assert opts is not None and template_fields(opts) == dataclasses.asdict(DEFAULTS)
    cli = {p.name: p.default for p in make_template_cmd.params}
    assert parse_size(cli["memory"]) == DEFAULTS.memory
    for name in ("cpus", "os_type", "network", "ballooning", "seal"):
        assert cli[name] == getattr(DEFAULTS, name), name


def test_recipe_values_reach_the_template(tmp_path: Path) -> None:
    path = _recipe(tmp_path, "    cpus: 4\n    seal: true\n    keep: 3\n", "os_type: debian_12\n")
    opts = OvirtPublishStage.options_from_recipe(load_recipe(path))
    assert opts is not None
    assert (opts.cpus, opts.seal, opts.keep, opts.os_type) == (4, True, 3, "debian_12")
    spec = TemplateSpec(name="t", description="d", cluster="c", storage_domain="s",
                        **template_fields(opts))
    assert (spec.cpus, spec.seal, spec.keep, spec.os_type) == (4, True, 3, "debian_12")
