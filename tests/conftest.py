"""Shared test helpers. Servers bind 127.0.0.1 on free ports and are stopped by PID.

Fixtures live in the conftest.py of the test package that uses them (`unit/`,
`integration/`, `e2e/`); this file holds only the plain helpers every package imports.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import marker_check

REPO = Path(__file__).resolve().parent.parent
_QEMU_LOG: Path | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Install the opt-in `qemu` marker check (tests/marker_check.py)."""
    global _QEMU_LOG
    if os.environ.get(marker_check.ENV) == "1":
        _QEMU_LOG = marker_check.install(Path(tempfile.mkdtemp(prefix="imagepipe-marker-check-")))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _QEMU_LOG is not None:
        shutil.rmtree(_QEMU_LOG.parent, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item,
                              call: pytest.CallInfo[None]) -> Iterator[None]:
    """Fail a test that ran a qemu program without the `qemu` marker (check on only)."""
    outcome = yield
    report = outcome.get_result()
    if _QEMU_LOG is None or report.when != "teardown" or item.get_closest_marker("qemu"):
        return
    ran = marker_check.runs_of(_QEMU_LOG, item.nodeid)
    if ran:
        report.outcome = "failed"
        report.longrepr = f"ran {', '.join(ran)} without @pytest.mark.qemu"


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 600, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run `imagepipe ARGS` in a subprocess, as a user does."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    return subprocess.run([sys.executable, "-m", "imagepipe", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout, input=input)
