"""Shared pieces of the fault suite (tests/integration/test_faults_*.py, marker `faults`).

Every test there starts from a reproduced fault of issue 11 and asserts the fixed behaviour
through the real CLI (a subprocess, as a user runs it). Images are tiny and sources are
file:// or a local HTTP server, so no appliance is launched and nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO


def make_image(path: Path, size: str = "16M", data: bytes = b"imagepipe fault\n") -> Path:
    """A small world-readable qcow2 with known bytes at 1 MiB."""
    raw = path.with_suffix(".raw")
    subprocess.run(["truncate", "-s", size, str(raw)], check=True)
    with open(raw, "r+b") as f:
        f.seek(1 << 20)
        f.write(data * 100)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True)
    raw.unlink()
    path.chmod(0o644)
    return path


def digest(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def write_recipe(d: Path, image: Path, stem: str = "r", **over: object) -> Path:
    """A recipe building `image` (file://) into one raw output, guest work off."""
    data: dict[str, object] = {
        "name": "t", "description": "fault test", "image_version": "1.0",
        "source": {"image": {"url": f"file://{image}", "checksum": digest(image)}},
        "seal": {"operations": "none"},
        "outputs": [{"format": "raw"}],
        "publish": {"local": {"dir": str(d / "templates")}},
    }
    data.update(over)
    path = d / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
        timeout: float = 300, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    """`imagepipe ARGS` in a subprocess (optionally under another umask)."""
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("PYTHONPATH", str(REPO))
    pre = (lambda: os.umask(umask)) if umask is not None else None  # noqa: E731
    return subprocess.run([sys.executable, "-m", "imagepipe", *args], capture_output=True,
                          text=True, env=full_env, cwd=cwd, timeout=timeout,
                          preexec_fn=pre)
