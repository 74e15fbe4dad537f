"""Fresh, known content (issue 10): resolve first, rebuild exactly when a package changes.

- The httpd template (the session's one httpd build) lists SUITE, SUITE-updates and
  SUITE-security in deb822 form and every installed package is at the candidate version of
  those suites (dpkg's status read back with libguestfs vs the resolver on the same indices).
- A signed repository of our own (tests/integration/aptrepo.py) with `canary 1.0`, a small recipe
  installing it, `build --all`; the repository moves to 1.1; `build --all` rebuilds, publishes
  a new version holding 1.1 and `--explain` names canary; a third run rebuilds nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagepipe.apt import sources as apt_sources
from imagepipe.apt.resolve import AptState
from imagepipe.bases import bootstrap
from imagepipe.recipe.load import load_recipe
from tests.conftest import run_cli
from tests.e2e.imageread import dpkg_status, read_files
from tests.integration.aptrepo import SUITE, SignedRepo
from tests.integration.pipeline_helpers import HttpServer

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.guestfs, pytest.mark.qemu]

SOURCES = "/etc/apt/sources.list.d/debian.sources"


def _result(stdout: str) -> dict[str, Any]:
    events = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    results = [e for e in events if e.get("event") == "result"]
    assert results, stdout[-2000:]
    return results[-1]


def test_httpd_template_has_updates_and_newest_versions(httpd_build: dict[str, Any],
                                                        httpd_recipe_dir: Path,
                                                        shared_store: Path) -> None:
    qcow2 = next(Path(o["path"]) for o in httpd_build["manifest"]["outputs"]
                 if o["format"] == "qcow2")
    files = read_files([qcow2], [SOURCES, "/etc/apt/sources.list", "/var/lib/dpkg/status"])[0]
    sources = files[SOURCES]
    assert sources is not None, "no deb822 sources in the image"
    assert files["/etc/apt/sources.list"] is None  # no leftover bookworm-only list
    suites = [s for line in sources.splitlines() if line.startswith("Suites:")
              for s in line.split()[1:]]
    assert {"bookworm", "bookworm-updates", "bookworm-security"} <= set(suites)
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in sources
    installed = dpkg_status(files["/var/lib/dpkg/status"] or "")
    assert len(installed) > 150
    # The candidates of the same sources, from the indices the build resolved against.
    src = load_recipe(httpd_recipe_dir / "httpd.yaml").source.bootstrap
    assert src is not None
    repos = apt_sources.all_repos(src, bootstrap.resolve_mirror(src))
    candidates = {p.name: p.version for p in
                  AptState(shared_store / "apt").simulate(repos, "custom", sorted(installed))}
    stale = {n: (v, candidates.get(n)) for n, v in installed.items() if candidates.get(n) != v}
    assert not stale, f"installed vs candidate: {stale}"
    assert any("deb12u" in v for v in installed.values())  # updates/security really used


def _write_recipe(d: Path, url: str) -> Path:
    recipe = d / "canary.yaml"
    recipe.write_text(f"""\
version: 1
name: canary
description: minimal Debian plus one package from a signed test repository
source:
  bootstrap:
    packages: [canary]
    repositories:
      - {{url: "{url}", suite: {SUITE}, components: [main], key: canary.asc}}
seal: {{operations: machine-id}}  # a guest stage: the package inventory
outputs:
  - {{format: qcow2}}
publish:
  local: {{dir: templates}}
""")
    return recipe


def _build_all(recipes: Path, store: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The batch's result event and the canary build's manifest (per-stage reasons: what
    `--explain` printed)."""
    res = run_cli("--json", "build", "--all", str(recipes), "--store", str(store), "--explain",
                  cwd=recipes, timeout=1500)
    builds = sorted((d for d in (store / "builds" / "canary").iterdir() if d.is_dir()),
                    key=os.path.getmtime)
    logs = sorted((store / "builds" / "_all").glob("*/canary.log"), key=os.path.getmtime)
    log = logs[-1].read_text(errors="replace")[-4000:] if logs else "(no batch log)"
    assert res.returncode == 0, f"{res.stderr[-3000:]}\n{builds[-1]}\n{log}"
    manifest = json.loads((builds[-1] / "manifest.json").read_text())
    return _result(res.stdout), {s["id"]: s for s in manifest["stages"]}


def test_new_package_version_rebuilds_and_publishes(tmp_path: Path, shared_store: Path) -> None:
    mirror = bootstrap.host_mirror("debian")
    try:
        bootstrap.check_mirror(mirror, "bookworm", timeout=15)
    except bootstrap.MirrorError as exc:
        pytest.skip(f"the Debian mirror is unreachable: {exc}")
    repo = SignedRepo(tmp_path / "www", tmp_path / "gnupg")
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    repo.export_key(recipes / "canary.asc")
    repo.publish("canary", "1.0")
    server = HttpServer(tmp_path / "www")
    try:
        _write_recipe(recipes, server.url)
        templates = recipes / "templates" / "canary"

        first, _ = _build_all(recipes, shared_store)
        assert first["results"][0]["ok"]
        v1 = os.readlink(templates / "latest")

        repo.publish("canary", "1.1")
        second, stages = _build_all(recipes, shared_store)
        assert second["results"][0]["rerun"] >= 2  # base.bootstrap + convert (+ publish)
        # --explain names the package (the same reason is in the manifest)
        assert "options.resolved.canary changed: 1.0 all -> 1.1 all" \
            in stages["base.bootstrap"]["reason"]
        v2 = os.readlink(templates / "latest")
        assert v2 != v1

        third, stages3 = _build_all(recipes, shared_store)
        assert stages3["base.bootstrap"]["cached"] and stages3["convert.qcow2"]["cached"]
        assert os.readlink(templates / "latest") == v2
        assert sorted(p.name for p in templates.iterdir() if p.name != "latest") \
            == sorted([v1, v2])  # nothing new published
        manifest3 = json.loads((templates / v2 / "manifest.json").read_text())
        assert manifest3["publish"]["local"]["version"] == v2
        assert third["results"][0]["rerun"] == 1  # only publish.local, which found no change
        diff = run_cli("templates", "diff", "canary", "--dir", str(recipes / "templates"),
                       cwd=recipes)
        assert diff.returncode == 0, diff.stderr
        assert "canary 1.0 -> 1.1" in diff.stdout, diff.stdout
    finally:
        server.stop()
        repo.close()
    # The repository is gone now: --offline reuses the last resolved set and says so.
    res = run_cli("build", str(recipes / "canary.yaml"), "--store", str(shared_store),
                  "--offline", "--explain", cwd=recipes, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "offline: reusing the package set resolved at" in res.stderr
    assert os.readlink(templates / "latest") == v2
    old, new = read_files([templates / v1 / "canary.qcow2", templates / v2 / "canary.qcow2"],
                          ["/var/lib/dpkg/status", "/usr/share/canary/version",
                           "/etc/apt/sources.list.d/extra.sources"])
    assert dpkg_status(old["/var/lib/dpkg/status"] or "")["canary"] == "1.0"
    assert dpkg_status(new["/var/lib/dpkg/status"] or "")["canary"] == "1.1"
    assert new["/usr/share/canary/version"] == "1.1\n"
    extra = new["/etc/apt/sources.list.d/extra.sources"] or ""
    assert f"Suites: {SUITE}" in extra and "Signed-By: /etc/apt/keyrings/canary.asc" in extra
