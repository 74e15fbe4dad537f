"""`imagepipe templates diff` through the real CLI, on two synthetic published versions (their
manifests differ in packages, output sizes, seal operations and allowed lints)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli


def _version(store: Path, name: str, version: str, packages: list[tuple[str, str]] | None,
             size: int, ops: list[str], static: list[str], mtime: float) -> Path:
    d = store / name / version
    d.mkdir(parents=True)
    manifest: dict[str, Any] = {
        "recipe": {"name": name, "sha256": version},
        "outputs": [{"path": str(d / f"{name}.qcow2"), "file_size": size,
                     "virtual_size": 3 << 30, "sha256": version * 8}],
        "stages": [{"stage": "guest", "record": {
            "seal": {"operations": ops, "skipped": [], "files_removed": 20 * len(ops)},
            "lints": {"passed": True, "static_ip_allowed": static, "password_allowed": []}}}],
        "packages": None if packages is None else
        [{"name": n, "version": v, "arch": "amd64", "source": n} for n, v in packages]}
    (d / "manifest.json").write_text(json.dumps(manifest))
    os.utime(d, (mtime, mtime))
    return d


@pytest.fixture
def store(tmp_path: Path) -> Path:
    now = time.time()
    _version(tmp_path, "web", "1", [("ancient", "1")], 1, ["machine-id"], [], now - 300)
    _version(tmp_path, "web", "20261201", [("apache2", "2.4.62-1~deb12u1"), ("canary", "1.0"),
                                           ("openssl", "3.0.22-1~deb12u2"), ("gone", "1")],
             500 << 20, ["machine-id", "logfiles"], [], now - 200)
    _version(tmp_path, "web", "20261202", [("apache2", "2.4.62-1~deb12u2"), ("canary", "1.1"),
                                           ("openssl", "3.0.20-1~deb12u2"), ("new", "0.1")],
             520 << 20, ["machine-id", "ssh-hostkeys"],
             ["/etc/network/interfaces:5: static"], now - 100)
    (tmp_path / "web" / "latest").symlink_to("20261202")
    return tmp_path


def test_default_is_the_two_newest(store: Path) -> None:
    res = run_cli("templates", "diff", "web", "--dir", str(store))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "web 20261201 -> web 20261202" in out
    assert "^ canary 1.0 -> 1.1" in out
    assert "^ apache2 2.4.62-1~deb12u1 -> 2.4.62-1~deb12u2" in out
    assert "v openssl 3.0.22-1~deb12u2 -> 3.0.20-1~deb12u2 (downgrade)" in out
    assert "+ new 0.1" in out and "- gone 1" in out
    assert "1 added, 1 removed, 2 upgraded, 1 downgraded, 0 unchanged" in out
    assert "web.qcow2: 500.0 MiB -> 520.0 MiB (+20.0 MiB)" in out
    assert "seal: +ssh-hostkeys; -logfiles" in out
    assert "lints: static_ip_allowed: +1 -0" in out


def test_json_and_explicit_versions(store: Path) -> None:
    res = run_cli("templates", "diff", "web", "1", "20261202", "--dir", str(store), "--json")
    assert res.returncode == 0, res.stderr
    r = [json.loads(line) for line in res.stdout.splitlines() if line.startswith("{")][-1]
    assert r["event"] == "result" and (r["old"], r["new"]) == ("1", "20261202")
    p = r["packages"]
    assert {x["name"] for x in p["added"]} == {"apache2", "canary", "openssl", "new"}
    assert p["removed"] == [{"name": "ancient", "arch": "amd64", "version": "1"}]
    assert r["outputs"][0]["file_size"]["delta"] == (520 << 20) - 1
    assert r["seal"]["operations_added"] == ["ssh-hostkeys"]
    assert r["seal"]["files_removed"] == {"old": 20, "new": 40}
    # global --json gives the same answer
    res2 = run_cli("--json", "templates", "diff", "web", "1", "20261202", "--dir", str(store))
    assert json.loads(res2.stdout.splitlines()[-1])["packages"] == p


def test_only_old_given_compares_with_the_newest(store: Path) -> None:
    res = run_cli("templates", "diff", "web", "1", "--dir", str(store))
    assert res.returncode == 0 and "web 1 -> web 20261202" in res.stdout


def test_bad_input_exit_2(store: Path, tmp_path: Path) -> None:
    res = run_cli("templates", "diff", "nope", "--dir", str(store))
    assert res.returncode == 2 and "no template 'nope'" in res.stderr
    res = run_cli("templates", "diff", "web", "7", "20261202", "--dir", str(store))
    assert res.returncode == 2 and "no version '7'" in res.stderr and "20261201" in res.stderr
    _version(tmp_path / "one", "solo", "1", [], 1, [], [], time.time())
    res = run_cli("templates", "diff", "solo", "--dir", str(tmp_path / "one"))
    assert res.returncode == 2 and "a diff needs two" in res.stderr


def test_version_without_inventory_says_so(store: Path) -> None:
    _version(store, "old", "a", None, 1, [], [], time.time() - 10)
    _version(store, "old", "b", [("x", "1")], 1, [], [], time.time())
    res = run_cli("templates", "diff", "old", "--dir", str(store))
    assert res.returncode == 0 and "package lists unknown" in res.stdout
