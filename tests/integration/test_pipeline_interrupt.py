"""Ctrl-C while the boot test runs in a worker thread beside the converts.

Signals reach only the main thread; the boot test waits in a worker for a guest that may take
minutes. The build must still stop at once (exit 130) and leave no qemu process behind, not
sit until the boot test's own timeout.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagepipe.tools import qemu_img
from tests.integration.base_helpers import qemu_pids_using

pytestmark = [pytest.mark.qemu]


def test_ctrl_c_during_a_parallel_boot_test_stops_the_build_and_its_vm(tmp_path: Path) -> None:
    disk = tmp_path / "blank.qcow2"
    qemu_img.create(disk, "qcow2", 16 * 1024**2)  # never boots: the test would wait 600 s
    digest = hashlib.sha256(disk.read_bytes()).hexdigest()
    recipe = tmp_path / "cancel.yaml"
    recipe.write_text(f"""version: 1
name: cancel
description: a boot test interrupted by Ctrl-C
source:
  image: {{url: "file://{disk}", checksum: "sha256:{digest}"}}
seal: {{operations: none}}
outputs: [{{format: qcow2}}, {{format: vdi}}]
test:
  boot: {{timeout: 600, memory: 256M, http: [{{port: 80, path: /, status: 200}}]}}
publish: {{local: {{dir: templates}}}}
""")
    store = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "imagepipe", "build", str(recipe),
                             "--store", str(store)], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not qemu_pids_using(store) and proc.poll() is None:
            assert time.monotonic() < deadline, "the boot test VM never started"
            time.sleep(0.5)
        assert proc.poll() is None, proc.communicate()
        time.sleep(2)  # the VM is up; the converts are done or running beside it
        sent = time.monotonic()
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert time.monotonic() - sent < 60, "the interrupt waited for the boot test's timeout"
    assert qemu_pids_using(store) == []
    assert not (tmp_path / "templates").exists()  # publish never ran
