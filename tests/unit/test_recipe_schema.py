"""The JSON Schema and docs/recipes.md come from the same tree the validator walks."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from imagepipe.recipe.reference import BEGIN, END, json_schema, render_markdown
from imagepipe.recipe.schema import Node, recipe_node
from tests.conftest import REPO

FIXTURES = Path(__file__).with_name("recipe_fixtures")


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("name", ["httpd.yaml", "base/debian12.yaml"])
def test_schema_accepts_shipped_recipes(validator: jsonschema.Draft202012Validator,
                                        name: str) -> None:
    data = yaml.safe_load((REPO / "recipes" / name).read_text())
    errors = [e.message for e in validator.iter_errors(data)]
    assert errors == []


# Shape errors the schema can see must be rejected by the schema too (the two agree).
@pytest.mark.parametrize("name", ["unknown_key", "wrong_type", "bad_size", "bad_checksum",
                                  "bad_checksum_algo", "bad_format", "bad_preset", "bad_ranges",
                                  "two_sources", "missing_description", "empty_description"])
def test_schema_rejects_shape_errors(validator: jsonschema.Draft202012Validator,
                                     name: str) -> None:
    data = yaml.safe_load((FIXTURES / f"{name}.yaml").read_text())
    assert list(validator.iter_errors(data)), f"{name} passed the JSON Schema"


def test_extending_recipe_may_leave_required_keys_to_its_base(
        validator: jsonschema.Draft202012Validator) -> None:
    assert not list(validator.iter_errors({"extends": "base.yaml", "name": "x"}))
    assert list(validator.iter_errors({"name": "x"}))  # description and source missing


def test_committed_schema_file_is_current() -> None:
    committed = json.loads((REPO / "docs" / "recipe.schema.json").read_text())
    assert committed == json_schema(), "regenerate: imagepipe schema > docs/recipe.schema.json"


def test_docs_reference_is_current() -> None:
    text = (REPO / "docs" / "recipes.md").read_text()
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] + "\n" == render_markdown(), (
        "regenerate the reference part of docs/recipes.md: imagepipe schema --markdown")


def _all_keys(node: Node, prefix: str = "") -> list[str]:
    out = []
    for name, f in node.fields.items():
        out.append(prefix + name)
        sub = f.node.item if f.node.kind == "list" else f.node
        if sub is not None and sub.kind == "object":
            out += _all_keys(sub, prefix + name + ("[]." if f.node.kind == "list" else "."))
    return out


def test_every_key_is_documented_with_a_type_and_doc() -> None:
    md = render_markdown()
    keys = _all_keys(recipe_node())
    assert len(keys) > 80
    for key in keys:
        section, _, leaf = key.rpartition(".")
        heading = f"### `{section}`" if section else "### top level"
        part = md[md.index(heading):]
        row = next(line for line in part.splitlines() if line.startswith(f"| `{leaf}` |"))
        assert row.count("|") >= 5 and not row.endswith("|  |"), f"{key} has no doc: {row}"


def test_issue_keys_exist() -> None:
    """The keys later issues rely on are in the language."""
    keys = set(_all_keys(recipe_node()))
    assert {"source.image.checksum", "source.image.mirrors", "source.image.checksum_url",
            "source.image.insecure_no_checksum", "source.iso.install.kickstart",
            "source.iso.install.preseed", "source.bootstrap.packages", "customize.files[].src",
            "customize.allow_absolute_paths", "cloud_init.user_data", "cloud_init.seed_iso",
            "seal.allow_password", "seal.allow_static_ip", "outputs[].preset",
            "test.boot.http[].status", "publish.local.dir", "publish.local.keep",
            "publish.ovirt.storage_domain", "publish.ovirt.keep", "publish.ovirt.template_name",
            "image_version", "description", "comment"} <= keys
