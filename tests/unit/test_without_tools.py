"""The runner behind `make test-fast` really hides the heavy tools (tests/without_tools/run.py):
the shadow PATH has no qemu, mmdebstrap or libguestfs program but everything else, and
`import guestfs` fails in a Python started with its PYTHONPATH."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

_SPEC = importlib.util.spec_from_file_location("without_tools_run",
                                               REPO / "tests" / "without_tools" / "run.py")
assert _SPEC is not None and _SPEC.loader is not None
without_tools = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(without_tools)


def test_shadow_path_hides_the_heavy_tools_and_keeps_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("qemu-img", "qemu-system-x86_64", "mmdebstrap", "virt-sysprep", "guestfish",
                 "sh", "sfdisk", "not-executable"):
        (src / name).write_text("#!/bin/sh\n")
        (src / name).chmod(0o644 if name == "not-executable" else 0o755)
    shadow = tmp_path / "bin"
    shadow.mkdir()
    hidden = without_tools.shadow_path(shadow, str(src))
    assert sorted(os.listdir(shadow)) == ["sfdisk", "sh"]
    assert hidden == ["guestfish", "mmdebstrap", "qemu-img", "qemu-system-x86_64",
                      "virt-sysprep"]


def test_import_guestfs_fails_with_the_stand_in_first_on_the_path() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "tests" / "without_tools"))
    res = subprocess.run([sys.executable, "-c", "import guestfs"], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 1
    assert "ImportError: guestfs is hidden" in res.stderr
