"""What a new user from the qemu-img / virt-* / Packer world tripped over, each as a test:
help examples everywhere, the man page, secrets vs audit results, every bad seal operation,
recipe suggestions, one --force rule, convert's -o/-f/-O, local templates show/rm, ${date}."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import click
import pytest

from imagepipe.cli import cli
from imagepipe.cli.manpage import render, walk
from imagepipe.guest.seal import unknown_operations
from imagepipe.pipeline.batch import BatchResult, summary
from imagepipe.pipeline.explain import scrub
from imagepipe.pipeline.manifest import redact
from imagepipe.targets.ovirt.templates import _age, _free_name
from tests.conftest import REPO, run_cli


def _commands() -> list[tuple[click.Command, click.Context]]:
    root = cli.make_context("imagepipe", [], resilient_parsing=True)
    return list(walk(cli, root))


def test_every_command_has_help_examples() -> None:
    found = _commands()
    assert len(found) >= 25  # every command and group, nested ones included
    for cmd, ctx in found:
        text = cmd.get_help(ctx)
        assert "Examples:\n" in text, ctx.command_path
        examples = text.split("Examples:\n", 1)[1]
        first = ctx.command_path.split()[1:2]  # the top-level command name
        assert f"imagepipe {first[0] if first else ''}".strip() in examples, ctx.command_path


def test_man_page_is_generated_and_current() -> None:
    committed = (REPO / "imagepipe.1").read_text()
    assert render() == committed, "imagepipe.1 is stale: run `make man` and commit it"
    for cmd, ctx in _commands():
        assert f'.SS "{ctx.command_path}"'.replace("-", "\\-") in committed or cmd is cli


def test_man_page_renders() -> None:
    if shutil.which("man") is None:
        pytest.skip("man is not installed")
    r = subprocess.run(["man", "-l", str(REPO / "imagepipe.1")], capture_output=True,
                       text=True, env={**os.environ, "MANWIDTH": "100", "MANPAGER": "cat"})
    assert r.returncode == 0, r.stderr
    for needle in ("imagepipe convert", "-O, --dst-format", "EXIT STATUS",
                   "_IMAGEPIPE_COMPLETE", "imagepipe templates rm"):
        assert needle in r.stdout


def test_completion_script_is_generated() -> None:
    r = run_cli(env={"_IMAGEPIPE_COMPLETE": "bash_source"})
    assert r.returncode == 0 and "_imagepipe_completion" in r.stdout


def test_redacts_secret_values_not_audit_results() -> None:
    data = {"lints": {"passed": True, "password_allowed": ["/etc/shadow:3: root has a hash"],
                      "static_ip_allowed": []},
            "seal": {"allow_password": True},
            "publish": {"ovirt": {"password": "hunter2", "password_file": "/etc/pw",
                                  "api-token": "t0k", "lock_passwd": True}},
            "users": [{"hashed_passwd": "$6$salt$hash", "name": "ops"}]}
    out = redact(data)
    assert out["lints"]["password_allowed"] == ["/etc/shadow:3: root has a hash"]
    assert out["seal"]["allow_password"] is True
    o = out["publish"]["ovirt"]
    assert o["password"] == o["api-token"] == "<redacted>" and o["lock_passwd"] is True
    assert o["password_file"] == "/etc/pw"  # a path, not the secret
    assert out["users"][0] == {"hashed_passwd": "<redacted>", "name": "ops"}
    assert scrub({"password_allowed": "x", "db_password": "y"}) == {
        "password_allowed": "x", "db_password": "<redacted>"}


def test_every_bad_seal_operation_is_reported() -> None:
    bad = unknown_operations("defaults,+user-acount,-nosuch")
    assert [m for m, _ in bad] == [
        "unknown seal operation 'user-acount' in 'defaults,+user-acount,-nosuch'",
        "unknown seal operation 'nosuch' in 'defaults,+user-acount,-nosuch'"]
    assert bad[0][1] == "did you mean 'user-account'?"


def test_validate_lists_every_bad_seal_operation(tmp_path: Path) -> None:
    shutil.copytree(REPO / "recipes", tmp_path / "recipes")
    recipe = tmp_path / "recipes" / "httpd.yaml"
    assert "\nseal:" not in recipe.read_text()
    recipe.write_text(recipe.read_text()
                      + "\nseal:\n  operations: \"defaults,+user-acount,-nosuch\"\n")
    r = run_cli("validate", str(recipe), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "'user-acount'" in r.stderr and "'nosuch'" in r.stderr, r.stderr


def test_recipe_not_found_suggests_the_file() -> None:
    r = run_cli("build", "httpd", "--dry-run", cwd=REPO)
    assert r.returncode == 2
    assert "recipe not found: httpd (did you mean recipes/httpd.yaml?)" in r.stderr


def test_dry_run_summary_shows_the_plan() -> None:
    rows = [BatchResult(Path("recipes/centos7.yaml"), True, 1.2, 7, 7, [], "", None, would_run=
                        ["fetch", "base.iso", "guest"]),
            BatchResult(Path("recipes/httpd.yaml"), True, 0.8, 0, 9, [], "", None, would_run=[])]
    text = summary(rows)
    assert "centos7  would build" in text and "7/7" in text and "fetch, base.iso, guest" in text
    assert "httpd    up to date" in text and "nothing (all cached)" in text
    assert "2 recipes (dry run): 1 would build, 1 up to date, 0 failed" in text


def test_date_versions_serials_sort_numerically() -> None:
    assert _free_name("web-20261201", {"web-20261201"}) == "web-20261201.2"
    assert _free_name("web-20261201", {"web-20261201", "web-20261201.2"}) == "web-20261201.3"
    names = ["web-20261201.10", "web-20261201.2", "web-20261130", "web-20261201"]
    assert sorted(names, key=_age) == ["web-20261130", "web-20261201", "web-20261201.2",
                                       "web-20261201.10"]


def test_seed_iso_refuses_to_overwrite(tmp_path: Path) -> None:
    ud = tmp_path / "user-data.yaml"
    ud.write_text("#cloud-config\nhostname: t\n")
    out = tmp_path / "seed.iso"
    out.write_bytes(b"precious")
    r = run_cli("seed-iso", "--user-data", str(ud), "-o", str(out))
    assert r.returncode == 2 and "already exists (pass --force" in r.stderr
    assert out.read_bytes() == b"precious"
    r = run_cli("seed-iso", "--user-data", str(ud), "-o", str(out), "--force")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[32769:32774] == b"CD001"  # an ISO 9660 image now


def _template_store(root: Path) -> Path:
    for version, passed in (("20261130", True), ("20261201", True)):
        d = root / "httpd" / version
        d.mkdir(parents=True)
        (d / "httpd.qcow2").write_bytes(b"q")
        (d / "manifest.json").write_text(json.dumps({
            "recipe": {"path": "recipes/httpd.yaml", "sha256": "ab" * 32},
            "built_at": f"{version[:4]}-{version[4:6]}-{version[6:]}T01:00:00Z", "seconds": 9,
            "imagepipe_version": "0", "outputs": [
                {"path": "/store/x/httpd.qcow2", "format": "qcow2", "format_name": "qcow2",
                 "virtual_size": 3 << 30, "file_size": 1 << 29, "sha256": "cd" * 32}],
            "stages": [{"stage": "test.boot", "cached": True, "record": {
                "passed": passed, "checks": [{"name": "login", "passed": True,
                                              "seconds": 31.5}]}}]}))
        os.utime(d, (1, 1 if version == "20261130" else 2))
    (root / "httpd" / "latest").symlink_to("20261201")
    return root


def test_templates_show_and_rm(tmp_path: Path) -> None:
    root = _template_store(tmp_path / "templates")
    r = run_cli("templates", "show", "httpd", "--dir", str(root))
    assert r.returncode == 0, r.stderr
    assert "httpd 20261201" in r.stdout and "boot test: passed (cached result): login ok" \
        in r.stdout
    assert str(root / "httpd" / "20261201" / "httpd.qcow2") in r.stdout
    r = run_cli("--json", "templates", "show", "httpd/20261130", "--dir", str(root))
    event = json.loads(r.stdout.splitlines()[-1])
    assert event["version"] == "20261130" and event["boot_test"]["passed"] is True
    r = run_cli("templates", "rm", "httpd/20261201", "--dir", str(root))
    assert r.returncode == 2 and "latest" in r.stderr
    assert (root / "httpd" / "20261201").is_dir()
    r = run_cli("templates", "rm", "httpd", "--dir", str(root))
    assert r.returncode == 2 and "NAME/VERSION" in r.stderr
    r = run_cli("templates", "rm", "httpd/20261130", "--dir", str(root))
    assert r.returncode == 0 and not (root / "httpd" / "20261130").exists()
    r = run_cli("templates", "rm", "httpd/20261201", "--force", "--dir", str(root))
    assert r.returncode == 0, r.stderr
    assert not (root / "httpd" / "latest").exists() and not any((root / "httpd").iterdir())


def test_docs_link_only_inside_the_repository() -> None:
    """Relative links resolve to files of the repository (a clone must explain itself)."""
    import re

    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)", doc.read_text()):
            if target.startswith(("https://", "http://")):
                continue  # public documentation of a tool we use, not a file
            assert "://" not in target and not target.startswith("/"), (doc, target)
            assert (doc.parent / target).resolve().is_relative_to(REPO), (doc, target)
            assert (doc.parent / target).exists(), (doc, target)


def test_cached_boot_test_still_shows_its_result() -> None:
    from imagepipe.cli.build import _boot_note
    from imagepipe.pipeline.manifest import StageRecord
    from imagepipe.stages.base import Artifact

    art = Artifact(path=None, kind="record", metadata={"passed": True, "checks": [
        {"name": "login", "passed": True, "seconds": 31.5},
        {"name": "http:80/=200", "passed": True, "seconds": 62.0}]})
    rec = StageRecord(id="test.boot", stage="test.boot", version=1, key="k", cached=True,
                      seconds=0.0, artifact=art)
    assert _boot_note(rec) == "  boot test passed: login 31.5s, http:80/=200 62.0s"
    rec.stage = "convert"
    assert _boot_note(rec) == ""
