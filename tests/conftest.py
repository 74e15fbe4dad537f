"""Shared test helpers. Servers bind 127.0.0.1 on free ports and are stopped by PID.

Fixtures live in the conftest.py of the test package that uses them (`unit/`,
`integration/`, `e2e/`); this file holds only the plain helpers every package imports.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


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
