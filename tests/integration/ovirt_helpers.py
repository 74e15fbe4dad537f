"""Helpers of the oVirt tests: small real images, the CLI against the simulator, clean-up
checks. The `sim` fixture is in conftest.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from imagepipe.testing.ovirt_engine import EngineSimulator
from tests.conftest import run_cli

MiB = 1 << 20


def make_image(path: Path, *, size: int = 64 * MiB, fmt: str = "qcow2",
               chunks: tuple[tuple[int, int], ...] = ((0, 1), (20, 2), (63, 1))) -> Path:
    """A sparse image with random data at (offset MiB, length MiB) chunks, in `fmt`."""
    raw = path.with_suffix(".src.raw")
    with open(raw, "wb") as f:
        f.truncate(size)
        for off, length in chunks:
            f.seek(off * MiB)
            f.write(os.urandom(length * MiB))
    if fmt == "raw":
        raw.rename(path)
    else:
        subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(path)],
                       check=True)
        raw.unlink()
    return path


def identical(a: Path, b: Path, fmt_b: str | None = None) -> bool:
    argv = ["qemu-img", "compare", str(a), str(b)]
    if fmt_b:
        argv[2:2] = ["-F", fmt_b]
    return subprocess.run(argv, capture_output=True).returncode == 0


def engine_args(sim: EngineSimulator) -> list[str]:
    return ["--engine", sim.url, "--password-file", str(sim.password_file),
            "--ca-file", str(sim.ca_file)]


def ovirt(sim: EngineSimulator, *args: str, json_mode: bool = True,
          timeout: float = 120) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run `imagepipe [--json] ovirt ARGS` against the simulator; returns (proc, result event)."""
    pre = ["--json"] if json_mode else []
    proc = run_cli(*pre, "ovirt", *args, *engine_args(sim), timeout=timeout,
                   env={"HOME": str(sim.base)})
    result: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("result", "error"):
                result = event
    return proc, result


def disk_path(sim: EngineSimulator, disk_id: str) -> Path:
    for d in sim.state()["disks"]:
        if d["id"] == disk_id:
            return Path(d["path"])
    raise AssertionError(f"disk {disk_id} not on the simulator")


def assert_clean(sim: EngineSimulator, *, disks_before: set[str]) -> None:
    """Nothing leaked: no new disk, no VM, no transfer in flight, no ticket, no qemu-nbd."""
    sim.wait_idle(30)
    state = sim.state()
    leaked = {d["id"]: (d["name"], d["status"]) for d in state["disks"]
              if d["id"] not in disks_before}
    assert not leaked, f"disks left behind: {leaked}"
    assert state["vms"] == [], f"VMs left behind: {state['vms']}"
    assert sim.live_tickets() == [], "imageio tickets left behind"
    for t in state["transfers"]:
        assert t["nbd_pid"] is None, f"qemu-nbd still running for transfer {t['id']}"


def disk_ids(sim: EngineSimulator) -> set[str]:
    return {d["id"] for d in sim.state()["disks"]}
