"""Package inventory pieces without a guest: dpkg status parsing, dpkg version order (python3-apt
and the pure-Python fallback agree), purls, the SPDX document (checked by spdx-tools' own
validator), package changes, and the nightly summary lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagepipe.inventory import debversion
from imagepipe.inventory.diff import package_changes
from imagepipe.inventory.packages import parse_dpkg_status, rpm_version
from imagepipe.inventory.spdx import make_sbom, purl, validate, write_sbom
from imagepipe.pipeline.batch import BatchResult, summary

STATUS = """\
Package: apache2
Status: install ok installed
Priority: optional
Architecture: amd64
Version: 2.4.62-1~deb12u2
Description: Apache HTTP Server
 a continuation line: with a colon

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u9

Package: libc6
Status: install ok installed
Architecture: i386
Source: glibc
Version: 2.36-9+deb12u9

Package: libstdc++6
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 12.2.0-14+deb12u1

Package: old-removed
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1

Package: tzdata
Status: hold ok installed
Architecture: all
Version: 2024a-0+deb12u1
"""


def test_parse_dpkg_status_installed_only_with_sources() -> None:
    pkgs = parse_dpkg_status(STATUS)
    assert [(p["name"], p["arch"]) for p in pkgs] == [
        ("apache2", "amd64"), ("libc6", "amd64"), ("libc6", "i386"), ("libstdc++6", "amd64"),
        ("tzdata", "all")]
    by = {(p["name"], p["arch"]): p for p in pkgs}
    assert by[("apache2", "amd64")] == {"name": "apache2", "version": "2.4.62-1~deb12u2",
                                        "arch": "amd64", "source": "apache2"}
    assert by[("libc6", "i386")]["source"] == "glibc"
    assert by[("libstdc++6", "amd64")]["source"] == "gcc-12"
    assert by[("libstdc++6", "amd64")]["source_version"] == "12.2.0-14"


def test_rpm_source_from_the_source_rpm_name() -> None:
    from imagepipe.inventory.packages import _rpm_source

    assert _rpm_source({"app2_name": "bash-devel",
                        "app2_source_package": "bash-5.1.8-9.el9.src.rpm"}) == "bash"
    assert _rpm_source({"app2_name": "x", "app2_source_package": ""}) == "x"


def test_rpm_version_epoch() -> None:
    assert rpm_version({"app2_version": "5.2", "app2_release": "3.el9", "app2_epoch": 0}) \
        == "5.2-3.el9"
    assert rpm_version({"app2_version": "1.1", "app2_release": "1", "app2_epoch": 2}) \
        == "2:1.1-1"


PAIRS = [("1.0", "1.0"), ("1.0~rc1", "1.0"), ("1:1.0", "2.0"), ("1.0a", "1.0+"),
         ("2.4.62-1~deb12u1", "2.4.62-1~deb12u2"), ("1.0", "1.0-0"), ("1.0~~", "1.0~"),
         ("3.0.20-1~deb12u2", "3.0.22-1~deb12u2"), ("6.1.176-1", "6.1.192-3"),
         ("1.01", "1.1"), ("1.0-1", "1.0"), ("1.2.3", "1.2.10"), ("0:1", "1"),
         ("2.36-9+deb12u4", "2.36-9"), ("1.0+dfsg", "1.0"), ("1.0.", "1.0"),
         ("7.88.1-10+deb12u8", "7.88.1-10+deb12u12"), ("1:2.3:4-1", "1:2.3:5-1"),
         ("1.0-1-2", "1.0-1-10"), ("9", "10"), ("a", "b"), ("1.0~", "1.0")]


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


@pytest.mark.parametrize(("a", "b"), PAIRS)
def test_version_order_matches_dpkg(a: str, b: str) -> None:
    py = debversion.py_version_compare(a, b)
    assert _sign(py) == -_sign(debversion.py_version_compare(b, a))
    apt_pkg = pytest.importorskip("apt_pkg")
    apt_pkg.init_system()
    assert _sign(py) == _sign(apt_pkg.version_compare(a, b))


def test_purls() -> None:
    apache = {"name": "apache2", "version": "2.4.68-1~deb12u1", "arch": "amd64",
              "source": "apache2"}
    assert purl(apache, fmt="deb", distro="debian", distro_version="12") == \
        "pkg:deb/debian/apache2@2.4.68-1~deb12u1?arch=amd64&distro=debian-12"
    libstd = {"name": "libstdc++6", "version": "1:12.2.0+x", "arch": "amd64", "source": "gcc-12"}
    assert purl(libstd, fmt="deb", distro="debian", distro_version="12") == \
        "pkg:deb/debian/libstdc%2B%2B6@1:12.2.0%2Bx?arch=amd64&distro=debian-12&upstream=gcc-12"
    bash = {"name": "bash", "version": "1:5.1.8-9.el9", "arch": "x86_64", "source": "bash"}
    assert purl(bash, fmt="rpm", distro="rhel", distro_version="9") == \
        "pkg:rpm/redhat/bash@5.1.8-9.el9?arch=x86_64&distro=rhel-9&epoch=1"


def _manifest(packages: list[dict[str, str]] | None) -> dict:
    return {"recipe": {"name": "web", "image_version": "7", "sha256": "ab" * 32,
                       "description": "Web"},
            "built_at": "2026-12-02T01:02:03Z",
            "outputs": [{"path": "/t/web.qcow2", "sha256": "cd" * 32}],
            "inventory": {"format": "deb", "distro": "debian", "distro_version": "12",
                          "database": "/var/lib/dpkg/status"},
            "packages": packages}


def test_sbom_is_valid_spdx_and_deterministic(tmp_path: Path) -> None:
    pytest.importorskip("spdx_tools")
    m = _manifest(parse_dpkg_status(STATUS))
    path = write_sbom(tmp_path, m)
    assert path is not None and path.name == "sbom.spdx.json"
    assert validate(path) == []
    doc = json.loads(path.read_text())
    assert doc["spdxVersion"] == "SPDX-2.3" and len(doc["packages"]) == 6
    ids = [p["SPDXID"] for p in doc["packages"]]
    assert len(set(ids)) == len(ids)  # libc6 twice (two architectures), distinct ids
    contains = [r for r in doc["relationships"] if r["relationshipType"] == "CONTAINS"]
    assert len(contains) == 5
    assert make_sbom(m) == doc  # same manifest, same document
    assert make_sbom({**m, "inventory": None}) is None


def test_sbom_validator_catches_a_broken_document(tmp_path: Path) -> None:
    pytest.importorskip("spdx_tools")
    m = _manifest(parse_dpkg_status(STATUS))
    path = write_sbom(tmp_path, m)
    assert path is not None
    doc = json.loads(path.read_text())
    doc["relationships"][0]["relatedSpdxElement"] = "SPDXRef-Nowhere"
    path.write_text(json.dumps(doc))
    assert validate(path)


def test_package_changes() -> None:
    old = [{"name": "a", "version": "1.0", "arch": "amd64"},
           {"name": "b", "version": "2.0~rc1", "arch": "all"},
           {"name": "c", "version": "1.0+deb12u2", "arch": "amd64"},
           {"name": "gone", "version": "1", "arch": "amd64"}]
    new = [{"name": "a", "version": "1.0", "arch": "amd64"},
           {"name": "b", "version": "2.0", "arch": "all"},
           {"name": "c", "version": "1.0+deb12u1", "arch": "amd64"},
           {"name": "fresh", "version": "3", "arch": "amd64"}]
    ch = package_changes(old, new)
    assert ch["added"] == [{"name": "fresh", "arch": "amd64", "version": "3"}]
    assert ch["removed"] == [{"name": "gone", "arch": "amd64", "version": "1"}]
    assert ch["upgraded"] == [{"name": "b", "arch": "all", "old": "2.0~rc1", "new": "2.0"}]
    assert ch["downgraded"][0]["name"] == "c" and ch["unchanged"] == 1
    assert package_changes(None, new)["known"] is False


def test_nightly_summary_lists_changed_packages() -> None:
    ch = package_changes([{"name": "canary", "version": "1.0", "arch": "all"}],
                         [{"name": "canary", "version": "1.1", "arch": "all"}])
    results = [BatchResult(Path("recipes/web.yaml"), True, 10.0, 3, 9, published="20261202",
                           changes=ch),
               BatchResult(Path("recipes/db.yaml"), True, 1.0, 0, 9),
               BatchResult(Path("recipes/new.yaml"), True, 5.0, 9, 9, published="1")]
    text = summary(results)
    assert "web 20261202: 1 packages changed" in text
    assert "^ canary 1.0 -> 1.1" in text
    assert "new 1: first published version" in text
    assert "db " not in text.split("published:")[1]


def test_published_from_local_or_ovirt_records() -> None:
    from imagepipe.pipeline.batch import _published

    ch = {"known": True, "added": [], "removed": [], "upgraded": [], "downgraded": [],
          "unchanged": 3}
    assert _published({"local": {"version": "7", "unchanged": False, "changes": ch}}) == \
        ("7", ch)
    assert _published({"local": {"version": "7", "unchanged": True}}) == (None, None)
    ov = {"template_name": "web", "version_number": 3, "version_name": "20261202",
          "reused": False, "changes": ch}
    assert _published({"local": None, "ovirt": ov}) == ("oVirt web v3 (20261202)", ch)
    assert _published({"ovirt": {**ov, "reused": True}}) == (None, None)
