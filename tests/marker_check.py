"""The `qemu` marker check: with IMAGEPIPE_TEST_MARKER_CHECK=1, a test that runs a qemu program
(qemu-img, qemu-nbd, qemu-system-x86_64, ...) without the `qemu` marker fails.

Why: the fast selection (`-m "not qemu and ..."`) is only as good as the markers. The check
puts a directory of small wrappers first on PATH; each appends the running test's id
(PYTEST_CURRENT_TEST, which subprocesses inherit) and its own name to a log, then execs the
real program, so what the test sees is unchanged. After each test the hooks in
tests/conftest.py read the lines logged for it. Opt-in, so `make test` runs as before; the
qemu that libguestfs starts itself is not seen (that is the `guestfs` marker's business).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "IMAGEPIPE_TEST_MARKER_CHECK"
PROGRAMS = ("qemu-img", "qemu-nbd", "qemu-io", "qemu-system-x86_64", "qemu-storage-daemon")


def install(workdir: Path) -> Path | None:
    """Write the wrappers and the log under `workdir`, put them first on PATH; returns the log
    (None when the check is off or no qemu program is installed)."""
    if os.environ.get(ENV) != "1":
        return None
    bin_dir = workdir / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = workdir / "qemu-runs.log"
    log.touch()
    found = False
    for name in PROGRAMS:
        real = shutil.which(name)
        if real is None:
            continue
        found = True
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nprintf "%s\\t%s\\n" "${{PYTEST_CURRENT_TEST:-?}}" '
                           f'"{name}" >> "{log}"\nexec "{real}" "$@"\n')
        wrapper.chmod(0o755)
    if not found:
        return None
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
    return log


def runs_of(log: Path, nodeid: str) -> list[str]:
    """The qemu programs the test `nodeid` ran (its setup, call and teardown)."""
    prefix = nodeid + " ("
    return sorted({line.split("\t")[1] for line in log.read_text().splitlines()
                   if line.startswith(prefix) and "\t" in line})
