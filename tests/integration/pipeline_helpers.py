"""Helpers of the pipeline/fetch/store tests: the local HTTP server and tiny images (the
server fixtures are in conftest.py).

Why a real server process: resume, drops, wrong bytes and 404s must be proven against a real
socket, and the request log (what the server actually sent) is the evidence the tests assert.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

SERVER = Path(__file__).with_name("httpserver.py")


class HttpServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, str(SERVER), str(root), str(self.port)],
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "serving" in line, line
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                self.control("reset")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("test HTTP server did not start")

    def control(self, what: str, **params: object) -> bytes:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        with urllib.request.urlopen(f"{self.url}/__control/{what}?{query}", timeout=10) as r:
            return bytes(r.read())

    def fault(self, path: str, kind: str, **params: object) -> None:
        self.control("fault", path=path, kind=kind, **params)

    def log(self, path: str | None = None) -> list[dict[str, object]]:
        entries = json.loads(self.control("log"))
        return [e for e in entries if path is None or e["path"] == path]

    def stop(self) -> None:
        try:
            os.kill(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        if self.proc.stdout:
            self.proc.stdout.close()


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def random_file(path: Path, size: int, seed: int = 1) -> Path:
    """Deterministic incompressible bytes."""
    out = bytearray()
    block = hashlib.sha256(str(seed).encode()).digest()
    h = hashlib.sha256()
    while len(out) < size:
        h.update(block)
        out += h.digest() * 128  # 4 KiB per round
    path.write_bytes(bytes(out[:size]))
    return path


def make_qcow2(path: Path, size: str = "16M", data: bytes = b"imagepipe test\n") -> Path:
    """A small qcow2 with a few known bytes written at offset 1 MiB."""
    raw = path.with_suffix(".raw")
    subprocess.run(["truncate", "-s", size, str(raw)], check=True)
    with open(raw, "r+b") as f:
        f.seek(1 << 20)
        f.write(data * 1000)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(path)],
                   check=True)
    raw.unlink()
    return path


def image_recipe(tmp: Path, url: str, digest: str, *, name: str = "t",
                 outputs: tuple[tuple[str, str | None], ...] = (("qcow2", None),),
                 publish_dir: Path | None = None, keep: int | None = None,
                 **fields: object) -> object:
    """A Recipe with an `image:` source and the guest stage off (no appliance needed)."""
    from imagepipe.recipe import model as m

    return m.Recipe(
        name=name, description="pipeline test", path=tmp / f"{name}.yaml",
        source=m.Source(image=m.ImageSource(url=url, checksum=digest)),
        seal=m.Seal(operations="none"),
        outputs=tuple(m.Output(format=f, preset=p) for f, p in outputs),
        publish=m.Publish(local=m.LocalPublish(dir=publish_dir or tmp / "templates", keep=keep)),
        **fields)  # type: ignore[arg-type]
