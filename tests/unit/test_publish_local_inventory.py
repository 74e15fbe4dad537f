"""publish.local with an inventory: sbom.spdx.json beside the outputs and in SHA256SUMS, the
package changes against the version it replaces, and "unchanged" decided by the outputs only
(the SBOM differs every build: its date)."""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from imagepipe.recipe.model import ImageSource, Recipe, Source
from imagepipe.stages.base import Artifact, StageContext
from imagepipe.stages.publish_local import LocalPublishOptions, LocalPublishStage


def _publish(tmp: Path, data: bytes, packages: list[tuple[str, str]], built: str,
             version: str) -> dict[str, Any]:
    out = tmp / f"src-{version}" / "web.qcow2"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    manifest = {"recipe": {"name": "web", "image_version": version, "sha256": "ab"},
                "built_at": built,
                "outputs": [{"path": str(out), "store_path": str(out), "sha256": digest[7:]}],
                "inventory": {"format": "deb", "distro": "debian", "distro_version": "12",
                              "database": "/var/lib/dpkg/status"},
                "packages": [{"name": n, "version": v, "arch": "all", "source": n}
                             for n, v in packages]}
    recipe = Recipe(name="web", description="d", path=tmp / "web.yaml",
                    source=Source(image=ImageSource(url="file:///dev/null")))
    stage = LocalPublishStage(LocalPublishOptions(dir=str(tmp / "templates"), name="web",
                                                  version=version))
    with ExitStack() as stack:
        from imagepipe.store import Store

        ctx = StageContext(recipe=recipe, store=Store(tmp / "store"),
                           workdir=tmp / "work", build_dir=tmp, stage_id="publish.local",
                           key="k" * 64, log_path=tmp / "logs" / "p.log", exit_stack=stack,
                           manifest=manifest)
        inputs = {"output.0": Artifact(path=out, kind="image", format="qcow2", digest=digest)}
        return dict(stage.run(ctx, inputs).metadata)


def test_sbom_published_changes_recorded_unchanged_by_outputs(tmp_path: Path) -> None:
    first = _publish(tmp_path, b"one", [("canary", "1.0"), ("base", "1")],
                     "2026-12-01T02:00:00Z", "1")
    assert first["previous"] is None
    d = Path(first["dir"])
    sums = (d / "SHA256SUMS").read_text()
    sbom = d / "sbom.spdx.json"
    assert f"{hashlib.sha256(sbom.read_bytes()).hexdigest()}  sbom.spdx.json" in sums
    assert "web.qcow2" in sums and first["files"]["sbom.spdx.json"] == str(sbom)
    assert json.loads((d / "manifest.json").read_text())["sbom"]["errors"] == []

    second = _publish(tmp_path, b"two", [("canary", "1.1"), ("base", "1")],
                      "2026-12-02T02:00:00Z", "2")
    assert second["previous"] == "1" and second["unchanged"] is False
    assert second["changes"]["upgraded"] == [{"name": "canary", "arch": "all", "old": "1.0",
                                              "new": "1.1"}]
    # same outputs, a later build (so a different SBOM): nothing published
    third = _publish(tmp_path, b"two", [("canary", "1.1"), ("base", "1")],
                     "2026-12-03T02:00:00Z", "3")
    assert third["unchanged"] is True and third["version"] == "2"
    assert not (tmp_path / "templates" / "web" / "3").exists()
