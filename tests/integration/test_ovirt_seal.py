"""seal=true on a simulator that seals like the engine: the real virt-sysprep runs on the
template's own disk copy (one appliance launch); the uploaded image itself is untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from imagepipe.testing.ovirt_engine import EngineSimulator
from tests.integration.guest_helpers import read_back
from tests.integration.ovirt_helpers import engine_args

pytestmark = [pytest.mark.ovirt, pytest.mark.guestfs, pytest.mark.slow, pytest.mark.qemu]

MACHINE_ID = "0123456789abcdef0123456789abcdef\n"


@pytest.fixture(scope="module")
def sealing_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineSimulator]:
    with EngineSimulator(tmp_path_factory.mktemp("engine"), delay=0.1, virt_sysprep=True) as s:
        yield s


def test_engine_seal_runs_virt_sysprep(sealing_sim: EngineSimulator, tmp_path: Path) -> None:
    from imagepipe.testing.fixtures import make_debian_fixture
    from tests.conftest import run_cli

    sim = sealing_sim
    image = make_debian_fixture(tmp_path / "debian.raw", files={
        "/etc/machine-id": MACHINE_ID, "/etc/ssh/ssh_host_ed25519_key": "secret key\n"})
    proc = run_cli("--json", "ovirt", "make-template", str(image), "-s", "data1",
                   "--cluster", "Default", "--name", "sealed", "--description", "d", "--seal",
                   *engine_args(sim), env={"HOME": str(sim.base)}, timeout=900)
    assert proc.returncode == 0, proc.stderr
    tpl = next(t for t in sim.state()["templates"] if t["name"] == "sealed")
    assert tpl["status"] == "ok" and tpl["sealed_by"] == "virt-sysprep"
    disk = next(d for d in sim.state()["disks"] if d["id"] == tpl["disk_ids"][0])
    # virt-sysprep reset the machine id (libguestfs writes a fresh one) and removed host keys
    assert read_back(disk["path"], "/etc/machine-id", fmt="qcow2") != MACHINE_ID.encode()
    assert read_back(disk["path"], "/etc/ssh/ssh_host_ed25519_key", fmt="qcow2") is None
    assert read_back(image, "/etc/machine-id") == MACHINE_ID.encode()  # source untouched
    assert sim.state()["vms"] == []
