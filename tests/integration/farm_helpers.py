"""Helpers for the farm tests: a private redis-server, `imagepipe worker` processes, the
five small recipes and a client whose stderr is followed line by line.

Everything is a real process on 127.0.0.1 with a free port, stopped by PID.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import free_port

ENV = {**os.environ, "IMAGEPIPE_ACCEL": "tcg", "PYTHONUNBUFFERED": "1"}


def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class Redis:
    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tmp / f"redis-{self.port}.log"
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        import redis

        self.client = redis.Redis(port=self.port, decode_responses=True)

        def up() -> bool:
            try:
                return bool(self.client.ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_for(up, 10, "redis-server")

    def stop(self) -> None:
        stop(self.proc)


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float = 15) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM) if _own_group(proc) else proc.terminate()
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _own_group(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


class Worker:
    def __init__(self, url: str, name: str, tmp: Path, via_env: bool = False) -> None:
        """`via_env`: the broker URL from IMAGEPIPE_BROKER instead of --broker (its builds
        must still run locally, never be sent back to the farm)."""
        self.name = name
        self.store = tmp / f"store-{name}"
        self.log = tmp / f"worker-{name}.log"
        broker = [] if via_env else ["--broker", url]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "imagepipe", "worker", *broker, "--store",
             str(self.store), "--name", name],
            stdout=open(self.log, "w"), stderr=subprocess.STDOUT,
            env={**ENV, "IMAGEPIPE_BROKER": url} if via_env else ENV, start_new_session=True)
        wait_for(lambda: "ready" in self.text() or self.proc.poll() is not None, 60,
                 f"worker {name}")
        assert self.proc.poll() is None, self.text()

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def builds_running(self) -> list[int]:
        """PIDs of `imagepipe build` processes using this worker's store."""
        out = []
        for p in Path("/proc").iterdir():
            if p.name.isdigit():
                try:
                    cmd = (p / "cmdline").read_bytes().split(b"\0")
                except OSError:
                    continue
                if b"build" in cmd and str(self.store).encode() in cmd:
                    out.append(int(p.name))
        return out


class Client:
    """`imagepipe build ...` in the background; stderr lines collected as they come."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "imagepipe", *args], cwd=cwd,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=ENV)
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        rx = re.compile(pattern)
        found: list[re.Match[str]] = []

        def seen() -> bool:
            found[:] = [m for m in map(rx.search, list(self.lines)) if m]
            return bool(found) or self.proc.poll() is not None

        wait_for(seen, timeout, f"a line matching {pattern!r}")
        assert found, "\n".join(self.lines)
        return found[0]

    def finish(self, timeout: float) -> tuple[int, str]:
        assert self.proc.stdout is not None
        out = self.proc.stdout.read() if self.proc.wait(timeout=timeout) is not None else ""
        self._t.join(timeout=5)
        return self.proc.returncode, out


def make_sources(www: Path) -> dict[str, str]:
    """Five distinct tiny Debian-like disks (distinct: no recipe hits another's cache, so the
    rerun counts are the same on any worker); two as qcow2. name -> file in www."""
    from imagepipe.testing.fixtures import make_debian_fixture

    names = {}
    for i in range(1, 6):
        raw = www / f"disk{i}.raw"
        make_debian_fixture(raw, {"etc/hostname": f"disk{i}\n"}, size="24M")
        if i in (2, 5):
            qcow = www / f"disk{i}.qcow2"
            subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
                            str(qcow)], check=True)
            raw.unlink()
            names[f"disk{i}"] = qcow.name
        else:
            names[f"disk{i}"] = raw.name
    return names


def _sum(path: Path) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def write_recipes(d: Path, www: Path, base_url: str, motd: str) -> Path:
    """Four convert-only recipes and one with guest work (it extends a base, copies a file in
    and seals): the five recipes of the farm tests, in `d/recipes`. One guest recipe only: a
    libguestfs launch costs 15-80 s on the shared 2-core machine."""
    names = make_sources(www) if not any(www.iterdir()) else {
        p.stem: p.name for p in sorted(www.iterdir())}
    r = d / "recipes"
    if r.exists():
        shutil.rmtree(r)
    (r / "base").mkdir(parents=True)
    (r / "files").mkdir()
    (r / "files/motd").write_text(motd)

    def src(i: int) -> str:
        f = names[f"disk{i}"]
        fmt = "qcow2" if f.endswith(".qcow2") else "raw"
        return (f'  image: {{url: "{base_url}/{f}", checksum: "{_sum(www / f)}", '
                f'format: {fmt}}}\n')

    plain = "seal: {operations: none}\n"
    (r / "conv-a.yaml").write_text(
        f"version: 1\nname: conv-a\ndescription: convert only\nsource:\n{src(1)}{plain}"
        "outputs:\n  - {format: qcow2}\n  - {format: vmdk}\n")
    (r / "conv-b.yaml").write_text(
        f"version: 1\nname: conv-b\ndescription: convert only\nsource:\n{src(2)}{plain}"
        "outputs:\n  - {format: raw}\n")
    (r / "conv-c.yaml").write_text(
        f"version: 1\nname: conv-c\ndescription: convert only\nsource:\n{src(3)}{plain}"
        "outputs:\n  - {format: vdi}\n  - {format: vhdx}\n")
    (r / "conv-d.yaml").write_text(
        f"version: 1\nname: conv-d\ndescription: convert only\nsource:\n{src(4)}{plain}"
        "outputs:\n  - {format: vhd}\n")
    (r / "base/sealed.yaml").write_text(
        "version: 1\ndescription: a sealed base\nseal: {operations: defaults}\n"
        "outputs:\n  - {format: qcow2}\n")
    (r / "sealed-b.yaml").write_text(
        f"version: 1\nextends: base/sealed.yaml\nname: sealed-b\ndescription: sealed, "
        f"with a file\nsource:\n{src(5)}customize:\n  files:\n"
        "    - {dest: /etc/motd, src: files/motd}\n")
    return r


def table(summary: str) -> list[tuple[str, ...]]:
    """The summary table's rows without the seconds column."""
    rows = []
    for line in summary.splitlines():
        cols = line.split()
        if len(cols) >= 4 and cols[1] in ("ok", "FAILED", "result"):
            rows.append((cols[0], cols[1], *cols[3:]))
    return rows
