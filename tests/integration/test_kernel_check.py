"""`imagepipe validate` reads the kernel's config from the mirror's .deb and refuses an output
whose platform hardware that kernel cannot drive.

The mirror is served on 127.0.0.1 from a temp dir: real .debs made with `dpkg-deb --build`
(a meta package depending on a versioned kernel package whose /boot/config-* lacks AHCI and
E1000, as Debian's cloud kernel does), a Packages.xz and an InRelease naming its sha256.
"""

from __future__ import annotations

import hashlib
import lzma
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import REPO, free_port, run_cli

CLOUD_CONFIG = ("CONFIG_VIRTIO_PCI=y\nCONFIG_VIRTIO_BLK=m\nCONFIG_SCSI_VIRTIO=m\n"
                "CONFIG_VIRTIO_NET=m\nCONFIG_VMXNET3=m\nCONFIG_VMWARE_PVSCSI=m\n"
                "CONFIG_HYPERV=m\nCONFIG_HYPERV_STORAGE=m\nCONFIG_HYPERV_NET=m\n"
                "# CONFIG_SATA_AHCI is not set\n# CONFIG_E1000 is not set\n")


def _deb(root: Path, name: str, version: str, depends: str | None,
         config: str | None) -> Path:
    tree = root / "build" / name
    (tree / "DEBIAN").mkdir(parents=True)
    control = f"Package: {name}\nVersion: {version}\nArchitecture: amd64\n" \
              f"Maintainer: t <t@example.org>\nDescription: test kernel\n"
    if depends:
        control += f"Depends: {depends}\n"
    (tree / "DEBIAN" / "control").write_text(control)
    if config is not None:
        (tree / "boot").mkdir()
        (tree / "boot" / "System.map-6.1.0-9-cloud-amd64").write_text("map\n" * 1000)
        (tree / "boot" / "config-6.1.0-9-cloud-amd64").write_text(config)
        (tree / "lib" / "modules").mkdir(parents=True)
    out = root / "debian" / "pool" / f"{name}_{version}_amd64.deb"
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(tree), str(out)],
                   check=True, capture_output=True)
    return out


def _stanza(deb: Path, root: Path) -> str:
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True,
                          text=True).stdout
    return info.rstrip("\n") + f"\nFilename: {deb.relative_to(root / 'debian')}\n" \
        f"Size: {deb.stat().st_size}\n"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mirror")
    debs = [_deb(root, "linux-image-cloud-amd64", "6.1.1-1",
                 "linux-image-6.1.0-9-cloud-amd64 (= 6.1.1-1)", None),
            _deb(root, "linux-image-6.1.0-9-cloud-amd64", "6.1.1-1", None, CLOUD_CONFIG)]
    packages = "\n".join(_stanza(d, root) for d in debs)
    dists = root / "debian" / "dists" / "bookworm"
    (dists / "main" / "binary-amd64").mkdir(parents=True)
    xz = lzma.compress(packages.encode())
    (dists / "main" / "binary-amd64" / "Packages.xz").write_bytes(xz)
    (dists / "InRelease").write_text(
        f"Suite: bookworm\nSHA256:\n {hashlib.sha256(xz).hexdigest()} {len(xz)} "
        "main/binary-amd64/Packages.xz\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(REPO / "tests/integration/httpserver.py"),
                             str(root), str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.get(f"{url}/__control/reset", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield f"{url}/debian"
    finally:
        proc.terminate()
        proc.wait(10)


def _recipe(tmp_path: Path, mirror: str) -> Path:
    shutil.copytree(REPO / "recipes" / "base", tmp_path / "base")
    f = tmp_path / "cloud.yaml"
    f.write_text(f"""version: 1
extends: base/debian12.yaml
description: cloud kernel everywhere
source:
  bootstrap:
    mirror: {mirror}
    kernel: cloud
    packages: [openssh-server]
outputs:
  - {{format: qcow2, preset: kvm}}
  - {{format: vdi, preset: virtualbox}}
  - {{format: vmdk, preset: vsphere, hardware: pvscsi+vmxnet3}}
  - {{format: vhdx, preset: hyperv}}
""")
    return f


def test_cloud_kernel_with_a_virtualbox_output_is_refused_with_the_reason(
        tmp_path: Path, mirror: str) -> None:
    f = _recipe(tmp_path, mirror)
    res = run_cli("validate", str(f), env={"IMAGEPIPE_STORE": str(tmp_path / "store")})
    assert res.returncode == 2, res.stdout + res.stderr
    lines = [line for line in res.stderr.splitlines() if "cannot drive" in line]
    assert len(lines) == 1, res.stderr  # kvm, pvscsi vsphere and hyperv are fine
    assert f"{f}:11:" in lines[0] and "outputs[1]" in lines[0]
    assert "linux-image-6.1.0-9-cloud-amd64 6.1.1-1" in lines[0]
    assert "CONFIG_SATA_AHCI, CONFIG_E1000" in lines[0]
    assert "hardware: virtio-scsi+virtio-net" in lines[0]  # the fix the platform offers
    cached = list((tmp_path / "store" / "kernel-configs").glob("*.config"))
    assert [c.name for c in cached] == ["linux-image-6.1.0-9-cloud-amd64_6.1.1-1.config"]


def test_the_suggested_hardware_passes(tmp_path: Path, mirror: str) -> None:
    f = _recipe(tmp_path, mirror)
    f.write_text(f.read_text().replace("preset: virtualbox}",
                                       "preset: virtualbox, hardware: virtio-scsi+virtio-net}"))
    res = run_cli("validate", str(f), env={"IMAGEPIPE_STORE": str(tmp_path / "store")})
    assert res.returncode == 0, res.stderr
    assert "OK" in res.stdout and "warning" not in res.stderr


def test_an_unreachable_mirror_is_a_warning(tmp_path: Path) -> None:
    f = _recipe(tmp_path, f"http://127.0.0.1:{free_port()}/debian")
    res = run_cli("validate", str(f), env={"IMAGEPIPE_STORE": str(tmp_path / "store")})
    assert res.returncode == 0, res.stderr
    assert "unreachable" in res.stderr and "not checked" in res.stderr
