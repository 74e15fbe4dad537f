"""Run one test build in a subprocess: `python -m tests.integration.pipeline_runner SPEC.json`.

SPEC: {"tmp", "url", "digest", "store", "outputs": [[fmt, preset]], "convert": "module:Class"}.
Used by the kill -9 and lock tests, which need a build in another process.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from imagepipe import stages, ui
from imagepipe.pipeline import BuildOptions, build
from tests.integration.pipeline_helpers import image_recipe


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    ui.configure()
    if spec.get("convert"):
        stages.STAGES["convert"] = spec["convert"]
    recipe = image_recipe(Path(spec["tmp"]), spec["url"], spec["digest"],
                          outputs=tuple(tuple(o) for o in spec["outputs"]))
    report = build(recipe, BuildOptions(store=Path(spec["store"]), wait=spec.get("wait", True)))
    print(json.dumps({"ok": report.ok, "rerun": report.rerun,
                      "outputs": report.manifest["outputs"]}))


if __name__ == "__main__":
    main()
