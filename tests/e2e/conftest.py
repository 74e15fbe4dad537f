"""End-to-end fixtures: one store shared by the whole test session.

Why shared: the e2e builds are minutes long and mostly the same stages (a bootstrap tarball,
a base disk); sharing the store lets every e2e test after the first reuse what is cached, the
way a build machine does. Set IMAGEPIPE_TEST_STORE=DIR to keep it across test runs too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from imagepipe.bases import bootstrap
from tests.conftest import REPO, run_cli


def _result(stdout: str) -> dict[str, Any]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    results = [e for e in events if e.get("event") == "result"]
    assert results, f"no result event in:\n{stdout[-2000:]}"
    return results[-1]


@pytest.fixture(scope="session")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    env = os.environ.get("IMAGEPIPE_TEST_STORE")
    if env:
        path = Path(env)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("shared-store")


@pytest.fixture(scope="session")
def httpd_recipe_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the httpd recipe (its relative paths intact) so the template store it
    publishes to is private to this run."""
    mirror = bootstrap.host_mirror("debian")
    try:
        bootstrap.check_mirror(mirror, "bookworm", timeout=15)
    except bootstrap.MirrorError as exc:
        pytest.skip(f"the Debian mirror is unreachable, cannot bootstrap: {exc}")
    d = tmp_path_factory.mktemp("httpd-recipe")
    shutil.copy2(REPO / "recipes" / "httpd.yaml", d / "httpd.yaml")
    for sub in ("httpd", "base"):  # the cloud-config and the recipe it extends
        shutil.copytree(REPO / "recipes" / sub, d / sub)
    return d


@pytest.fixture(scope="session")
def httpd_build(httpd_recipe_dir: Path, shared_store: Path) -> dict[str, Any]:
    res = run_cli("--json", "build", str(httpd_recipe_dir / "httpd.yaml"), "--store",
                  str(shared_store), cwd=httpd_recipe_dir, timeout=1800)
    assert res.returncode == 0, f"build failed:\n{res.stderr[-4000:]}"
    result = _result(res.stdout)
    manifest = json.loads(Path(result["manifest"]).read_text())
    return {"result": result, "manifest": manifest, "stderr": res.stderr}
