"""The httpd template's package inventory and SBOM, checked against the image itself.

Uses the session's one real httpd build (tests/e2e/conftest.py). The manifest's `packages`
must equal what `dpkg-query -W` prints when run *inside* the published image (through
libguestfs, read-only), and the published `sbom.spdx.json` must pass the SPDX project's own
validator (`pyspdxtools -i`) and be listed with its right hash in SHA256SUMS.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from imagepipe.tools.guestfs import GuestSession

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.qemu, pytest.mark.guestfs]


def _published(build: dict[str, Any]) -> Path:
    return Path(build["manifest"]["publish"]["local"]["dir"])


def test_manifest_packages_equal_dpkg_query_in_the_image(httpd_build: dict[str, Any]) -> None:
    m = httpd_build["manifest"]
    qcow2 = next(Path(o["path"]) for o in m["outputs"] if o["format"] == "qcow2")
    fmt = "${db:Status-Status}\\t${Package}\\t${Version}\\t${Architecture}\\n"
    with GuestSession(qcow2, fmt="qcow2", readonly=True) as s:
        lines = s.g.command_lines(["dpkg-query", "-W", f"-f={fmt}"])
    in_image = sorted((p, v, a) for st, p, v, a in (ln.split("\t") for ln in lines if ln)
                      if st == "installed")
    manifest = sorted((p["name"], p["version"], p["arch"]) for p in m["packages"])
    assert manifest == in_image
    names = {p["name"] for p in m["packages"]}
    assert {"apache2", "openssl", "cloud-init", "systemd"} <= names
    assert m["inventory"]["count"] == len(m["packages"]) > 100
    libc = next(p for p in m["packages"] if p["name"] == "libc6")
    assert libc["source"] == "glibc"


def test_published_sbom_validates_and_is_in_sha256sums(httpd_build: dict[str, Any]) -> None:
    d = _published(httpd_build)
    sbom = d / "sbom.spdx.json"
    tool = Path(sys.executable).parent / "pyspdxtools"
    res = subprocess.run([str(tool), "-i", str(sbom)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    sums = dict(reversed(line.split("  ", 1)) for line in
                (d / "SHA256SUMS").read_text().splitlines())
    assert sums["sbom.spdx.json"] == hashlib.sha256(sbom.read_bytes()).hexdigest()
    doc = json.loads(sbom.read_text())
    m = httpd_build["manifest"]
    assert len(doc["packages"]) == len(m["packages"]) + 1  # + the image itself
    apache = next(p for p in doc["packages"] if p["name"] == "apache2")
    ver = next(p["version"] for p in m["packages"] if p["name"] == "apache2")
    assert apache["externalRefs"][0]["referenceLocator"] == \
        f"pkg:deb/debian/apache2@{ver.replace('+', '%2B')}?arch=amd64&distro=debian-12"
    describes = [r for r in doc["relationships"] if r["relationshipType"] == "DESCRIBES"]
    assert describes == [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                          "relatedSpdxElement": "SPDXRef-Image"}]
    assert m["sbom"]["validated_by"] == "spdx-tools" and m["sbom"]["errors"] == []
