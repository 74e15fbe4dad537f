"""Template sizes as a figure: each output of the httpd content with the cloud kernel
(recipes/httpd-cloud.yaml), its file size and its ratio to the bytes the guest uses.

Targets (issue 15, KVM/oVirt with the cloud kernel): qcow2 (kvm preset) <= 450 MiB,
compressed (zstd qcow2) <= 200 MiB. Builds into the default store (BENCH_STORE=DIR for another),
so a store that already holds the build answers in seconds; a cold one takes ~5-8 minutes.
The recipe's boot test is left out (it does not change any output).
Also prints the ten largest directories of the image (the manifest's `content`).
BENCH_SIZE_RECIPE=recipes/httpd.yaml measures another recipe (targets then informative).
Skipped (exit 0 with a line saying why) when the Debian mirror is unreachable.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
IMAGEPIPE = [sys.executable, "-m", "imagepipe"]
MiB = 1 << 20
TARGETS = {"kvm": 450 * MiB, "compressed": 200 * MiB}


def build(recipe: Path, store: Path | None) -> tuple[float, dict[str, Any]]:
    start = time.monotonic()
    argv = [*IMAGEPIPE, "--json", "build", str(recipe)]
    if store is not None:
        argv += ["--store", str(store)]
    res = subprocess.run(argv, capture_output=True, text=True, cwd=recipe.parent, timeout=3600)
    if res.returncode != 0:
        raise SystemExit(f"build failed (exit {res.returncode}):\n{res.stderr[-3000:]}")
    result = [e for e in (json.loads(x) for x in res.stdout.splitlines() if x.startswith("{"))
              if e.get("event") == "result"][-1]
    return time.monotonic() - start, json.loads(Path(result["manifest"]).read_text())


def preset_of(output: dict[str, Any]) -> str:
    return str(output.get("preset") or output.get("format_name"))


def main() -> int:
    sys.path.insert(0, str(REPO))
    from imagepipe.bases import bootstrap

    try:
        bootstrap.check_mirror(bootstrap.host_mirror("debian"), "bookworm", timeout=15)
    except bootstrap.MirrorError as exc:
        print(f"size: skipped, the Debian mirror is unreachable ({exc})")
        return 0
    src = REPO / os.environ.get("BENCH_SIZE_RECIPE", "recipes/httpd-cloud.yaml")
    store = Path(os.environ["BENCH_STORE"]) if os.environ.get("BENCH_STORE") else None
    with tempfile.TemporaryDirectory(prefix="bench-size-") as tmp:
        work = Path(tmp)
        for f in src.parent.glob("*.yaml"):
            shutil.copy2(f, work / f.name)  # the recipe and what it extends
        for sub in ("base", "httpd"):
            shutil.copytree(src.parent / sub, work / sub)
        # Sizes do not depend on the boot test (a stage beside the converts): leave it out, so
        # the figure is not hostage to a TCG boot on a loaded machine.
        (work / "bench-size.yaml").write_text(f"extends: {src.name}\ntest: {{boot: null}}\n")
        seconds, m = build(work / "bench-size.yaml", store)
    used = (m.get("content") or {}).get("used_bytes") or 0
    print(f"recipe: {src.relative_to(REPO)} (built or cached in {seconds:.0f} s)")
    print(f"guest data used: {used / MiB:.0f} MiB")
    failed = False
    for o in m["outputs"]:
        preset = preset_of(o)
        size = int(o.get("file_size") or 0)
        target = TARGETS.get(preset)
        verdict = ""
        if target is not None:
            ok = size <= target
            failed |= not ok
            verdict = f"  (target <= {target // MiB} MiB: {'ok' if ok else 'MISSED'})"
        ratio = o.get("ratio_to_used")
        print(f"{Path(o['path']).name:<34} {preset:<11} {size / MiB:8.0f} MiB  "
              f"ratio {ratio if ratio is not None else '-':>5}{verdict}")
    print("largest directories:")
    for d in (m.get("content") or {}).get("largest_dirs", []):
        print(f"  {d['bytes'] / MiB:8.1f} MiB  {d['path']}")
    is_default = "BENCH_SIZE_RECIPE" not in os.environ
    return 1 if failed and is_default else 0
