"""`imagepipe build` of a recipe whose guest stage runs for real (fixture image served over
HTTP): the engine stores the sealed qcow2 and the seed ISO, the manifest carries the guest
record, and a rebuild reuses the cached guest stage (no second launch)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from imagepipe.testing.fixtures import make_debian_fixture
from tests.conftest import run_cli

from .guest_helpers import SEALABLE, read_back
from .pipeline_helpers import sha256

pytestmark = [pytest.mark.guestfs, pytest.mark.qemu]

USER_DATA = "#cloud-config\nruncmd:\n  - [ systemctl, restart, apache2 ]\n"


def test_build_with_guest_stage(tmp_path: Path, server, http_root: Path) -> None:
    raw = make_debian_fixture(tmp_path / "base.raw", dict(SEALABLE), busybox=True)
    src = http_root / "base.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(src)],
                   check=True)
    (tmp_path / "user-data.yaml").write_text(USER_DATA)
    (tmp_path / "motd").write_text("from the recipe dir\n")
    recipe = tmp_path / "web.yaml"
    recipe.write_text(f"""\
version: 1
name: web
description: guest stage test
image_version: "1"
source:
  image:
    url: {server.url}/base.qcow2
    checksum: {sha256(src)}
customize:
  files:
    - {{dest: /etc/motd, src: motd, mode: "0644"}}
  run:
    - echo built > /etc/built
cloud_init:
  user_data: user-data.yaml
  hostname: web1
outputs:
  - {{format: qcow2}}
publish:
  local: {{dir: {tmp_path / "templates"}}}
""")
    args = ("--json", "build", str(recipe), "--store", str(tmp_path / "store"))
    first = run_cli(*args, timeout=400)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    version = tmp_path / "templates" / "web" / "1"
    manifest = json.loads((version / "manifest.json").read_text())
    guest = next(s for s in manifest["stages"] if s["stage"] == "guest")
    rec = guest["record"]
    assert rec["seal"]["files_removed"] > 20 and "machine-id" in rec["seal"]["operations"]
    assert rec["lints"]["passed"] and rec["verification"]["verified"]
    iid = rec["cloud_init"]["instance_id"]
    assert iid == "iid-imagepipe-" + guest["key"][:16]
    assert guest["output"]["format"] == "qcow2"
    # the inventory (the fixture has no dpkg database: an empty list) and its SBOM
    assert manifest["inventory"]["format"] == "deb" and manifest["packages"] == []
    assert "sbom.spdx.json" in (version / "SHA256SUMS").read_text()
    assert manifest["sbom"]["errors"] == []
    # the published qcow2 holds the guest work, read back independently
    out = next(version.glob("*.qcow2"))
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out)],
                                     capture_output=True, text=True, check=True).stdout)
    assert "backing-filename" not in info
    assert read_back(out, "/etc/motd", "qcow2") == b"from the recipe dir\n"
    assert read_back(out, "/etc/built", "qcow2") == b"built\n"
    assert read_back(out, "/etc/machine-id", "qcow2") == b""
    assert read_back(out, "/etc/ssh/ssh_host_rsa_key", "qcow2") is None
    meta = yaml.safe_load(read_back(out, "/var/lib/cloud/seed/nocloud/meta-data", "qcow2") or b"")
    assert meta == {"instance-id": iid, "local-hostname": "web1"}
    # the seed ISO is published beside it, with the same meta-data
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(version / "seed.iso"))
    buf = io.BytesIO()
    iso.get_file_from_iso_fp(buf, joliet_path="/meta-data")
    iso.close()
    assert yaml.safe_load(buf.getvalue()) == meta
    # a rebuild reuses the guest stage
    again = run_cli(*args, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    result = next(e for e in map(json.loads, again.stdout.splitlines()) if e["event"] == "result")
    assert "guest" not in result["rerun"]
    second = json.loads(Path(result["manifest"]).read_text())
    assert next(s for s in second["stages"] if s["stage"] == "guest")["cached"] is True
