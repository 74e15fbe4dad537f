"""`imagepipe build --var/--var-file` (and `build --all`) take what `validate` takes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.pipeline_helpers import make_qcow2, sha256

pytestmark = pytest.mark.qemu


def test_build_takes_the_variables_validate_takes(tmp_path: Path) -> None:
    image = make_qcow2(tmp_path / "src.qcow2")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    recipe = recipes / "v.yaml"
    recipe.write_text(f"""version: 1
name: v
description: variables test
image_version: "${{release}}"
source:
  image: {{url: "file://{image}", checksum: "{sha256(image)}"}}
seal: {{operations: none}}
outputs: [{{format: qcow2, name: "v${{release}}"}}]
publish: {{local: {{dir: {tmp_path / 'templates'}}}}}
""")
    store = str(tmp_path / "store")
    r = run_cli("build", str(recipe), "--store", store)
    assert r.returncode == 2 and "unknown variable ${release}" in r.stderr
    r = run_cli("validate", str(recipe), "--var", "release=7")
    assert r.returncode == 0, r.stderr
    r = run_cli("build", str(recipe), "--store", store, "--var", "release=7")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "templates" / "v" / "7" / "v7.qcow2").is_file()
    var_file = tmp_path / "vars.env"
    var_file.write_text("# nightly\nrelease=8\n")
    r = run_cli("validate", str(recipe), "--var-file", str(var_file))
    assert r.returncode == 0 and "(v 8," in r.stdout, r.stdout + r.stderr
    r = run_cli("build", "--all", str(recipes), "--store", store, "--var-file", str(var_file))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "templates" / "v" / "8" / "v8.qcow2").is_file()  # reached the child
    r = run_cli("build", str(recipe), "--store", store, "--var-file", str(tmp_path / "nope"))
    assert r.returncode == 2 and "cannot read --var-file" in r.stderr
