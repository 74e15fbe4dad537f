"""`imagepipe validate` and `imagepipe schema` run as a user runs them (a subprocess)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO, run_cli

FIXTURES = Path(__file__).with_name("recipe_fixtures")


def test_validate_shipped_recipes() -> None:
    recipes = sorted(str(p) for p in (REPO / "recipes").glob("*.yaml"))
    assert any(r.endswith("httpd.yaml") for r in recipes)
    r = run_cli("validate", *recipes, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("OK ") == len(recipes)
    assert "httpd.yaml (httpd " in r.stdout


def test_broken_recipe_exits_2_listing_every_problem(tmp_path: Path) -> None:
    good = REPO / "recipes" / "httpd.yaml"
    bad = FIXTURES / "many_errors.yaml"
    r = run_cli("validate", str(good), str(bad), cwd=REPO)
    assert r.returncode == 2
    assert "OK " in r.stdout and "httpd.yaml" in r.stdout  # the good one still reported
    for needle in ("many_errors.yaml:3:1: descripton: unknown key 'descripton' (did you mean "
                   "'description'?)",
                   "many_errors.yaml:5:56: source.image.checksum:",
                   "many_errors.yaml:6:14: disk.size:",
                   "many_errors.yaml:8:14: outputs[0].format: unknown value 'qcow3'",
                   "description: missing required key 'description'"):
        assert needle in r.stderr, r.stderr
    assert "5 problems found" in r.stderr
    assert "Traceback" not in r.stderr


def test_seed_script_through_the_cli(tmp_path: Path) -> None:
    """The seed's broken cloud-config is caught by `validate`, pointing at its line 2."""
    for name in ("broken_user_data.yaml", "seed-broken-user-data.yaml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    r = run_cli("validate", "broken_user_data.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "seed-broken-user-data.yaml:2:1:" in r.stderr and "runcmd" in r.stderr


def test_validate_json_events() -> None:
    r = run_cli("validate", "--json", str(REPO / "recipes" / "httpd.yaml"),
                str(FIXTURES / "bad_size.yaml"), "--var", "date=20240229", cwd=REPO)
    assert r.returncode == 2
    events = [json.loads(line) for line in r.stdout.splitlines()]
    ok = [e for e in events if e["event"] == "result"]
    assert ok[0]["name"] == "httpd" and ok[0]["image_version"] == "20240229"
    assert len(ok[0]["digest"]) == 64
    (prob,) = [e for e in events if e["event"] == "problem"]
    assert prob["path"] == "disk.size" and prob["line"] == 6 and prob["file"].endswith(
        "bad_size.yaml")
    assert events[-1]["event"] == "error" and events[-1]["exit_code"] == 2


def test_bad_var_and_missing_file_are_usage_errors() -> None:
    r = run_cli("validate", "--var", "novalue", str(REPO / "recipes" / "httpd.yaml"))
    assert r.returncode == 2 and "--var NAME=VALUE" in r.stderr
    r = run_cli("validate", "/nonexistent/recipe.yaml")
    assert r.returncode == 2


def test_schema_command() -> None:
    r = run_cli("schema")
    assert r.returncode == 0
    schema = json.loads(r.stdout)
    assert schema["title"].startswith("imagepipe recipe")
    assert schema["properties"]["outputs"]["items"]["additionalProperties"] is False
    md = run_cli("schema", "--markdown")
    assert md.returncode == 0 and "### `publish.ovirt`" in md.stdout


def test_validate_without_cloud_init_exits_2_naming_what_to_install(tmp_path: Path) -> None:
    """A host without cloud-init's validator: `validate` fails (exit 2) and says what to
    install, instead of calling an unchecked user-data fine. A `cloudinit` package earlier on
    the path that fails to import stands in for the missing one."""
    shadow = tmp_path / "shadow" / "cloudinit"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('cloud-init hidden by the test')\n")
    r = run_cli("validate", str(REPO / "recipes" / "httpd.yaml"), cwd=REPO,
                env={"PYTHONPATH": str(shadow.parent)})
    assert r.returncode == 2, r.stderr
    assert "httpd/user-data.yaml" in r.stderr and "schema validator" in r.stderr
    assert "apt-get install cloud-init" in r.stderr and "Traceback" not in r.stderr
