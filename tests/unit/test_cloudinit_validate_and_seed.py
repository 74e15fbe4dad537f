"""User-data validation, meta-data, the seed ISO (read back with pycdlib, blkid, isoinfo), the
guest CLI paths that need no appliance, and docs/guest.md against the seal registry."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from imagepipe.cloudinit.seed import build_seed_iso, make_meta_data
from imagepipe.cloudinit.validate import detect_kind, validate_user_data
from imagepipe.guest.seal import operations
from imagepipe.guest.seal.lints import lint_ifcfg, lint_netplan, lint_nmconnection, lint_shadow
from imagepipe.guest.seal.ops.net_hwaddr import strip_netplan
from tests.conftest import REPO, run_cli

SEED_SCRIPT = """#cloud-config
runcmd
- [ yum, update, -y]
- [ yum, install, httpd, -y]
- [ systemctl, start, httpd]
- [ systemctl, enable, httpd]
- [ firewall-offline-cmd, --add-service=SERVICE]
"""


def _write(tmp_path: Path, text: str, name: str = "user-data") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_seed_script_rejected_once_at_line_2(tmp_path: Path) -> None:
    problems = validate_user_data(_write(tmp_path, SEED_SCRIPT))
    assert len(problems) == 1
    p = problems[0]
    assert p.line == 2 and "top level must be a mapping" in p.message
    assert "'runcmd' needs a colon" in (p.hint or "")
    assert str(p).startswith(f"{tmp_path}/user-data:2:1:")


def test_fixed_seed_script_passes(tmp_path: Path) -> None:
    fixed = SEED_SCRIPT.replace("runcmd\n", "runcmd:\n")
    assert validate_user_data(_write(tmp_path, fixed)) == []


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    (p,) = validate_user_data(_write(tmp_path, "#cloud-config\nruncmd:\n  - [ls, -l\n"))
    assert p.line == 4 and p.col is not None and "YAML syntax error" in p.message


def test_unknown_key_did_you_mean_and_wrong_type(tmp_path: Path) -> None:
    text = "#cloud-config\nruncmdd:\n  - ls\npackages: 5\n"
    problems = validate_user_data(_write(tmp_path, text))
    by_path = {p.path: p for p in problems}
    assert by_path["runcmdd"].line == 2 and "did you mean 'runcmd'" in by_path["runcmdd"].hint
    assert by_path["packages"].line == 4 and "not of type 'array'" in by_path["packages"].message


def test_nested_schema_error_mapped_to_line(tmp_path: Path) -> None:
    text = "#cloud-config\nwrite_files:\n  - path: /etc/x\n    permissions: 644\n    bogus: 1\n"
    problems = validate_user_data(_write(tmp_path, text))
    assert problems and all(p.line is not None and p.line >= 3 for p in problems)
    assert any(p.path.startswith("write_files.0") for p in problems)


def test_header_and_kinds(tmp_path: Path) -> None:
    (p,) = validate_user_data(_write(tmp_path, "runcmd:\n  - ls\n"))
    assert p.line == 1 and "#cloud-config" in p.message
    (p,) = validate_user_data(_write(tmp_path, "# cloud-config\nruncmd: [ls]\n"))
    assert "must be exactly '#cloud-config'" in (p.hint or "")
    assert validate_user_data(_write(tmp_path, "#!/bin/sh\necho hi\n")) == []
    mime = 'Content-Type: multipart/mixed; boundary="x"\nMIME-Version: 1.0\n\n--x--\n'
    assert detect_kind(mime) == "mime" and validate_user_data(_write(tmp_path, mime)) == []
    assert detect_kind("#!/bin/bash\n") == "shell script"
    (p,) = validate_user_data(_write(tmp_path, "#include\nhttp://x\n"))
    assert "not supported" in p.message
    assert validate_user_data(tmp_path / "missing")[0].message.startswith("cannot read")


def test_meta_data() -> None:
    a, b = yaml.safe_load(make_meta_data()), yaml.safe_load(make_meta_data())
    assert a["instance-id"] != b["instance-id"] and "local-hostname" not in a
    assert yaml.safe_load(make_meta_data("iid-1", "web1")) == {
        "instance-id": "iid-1",
        "local-hostname": "web1",
    }


def test_seed_iso_read_back(tmp_path: Path) -> None:
    import pycdlib

    iso_path = tmp_path / "seed.iso"
    ud, md, nc = b"#cloud-config\nruncmd: [ls]\n", make_meta_data("iid-9"), b"version: 2\n"
    build_seed_iso(iso_path, ud, md, nc)
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        assert iso.has_joliet() and iso.has_rock_ridge()
        for name, data in (("user-data", ud), ("meta-data", md), ("network-config", nc)):
            for kw in ({"joliet_path": f"/{name}"}, {"rr_path": f"/{name}"}):
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, **kw)
                assert buf.getvalue() == data
    finally:
        iso.close()
    blkid = subprocess.run(
        ["blkid", "-o", "export", str(iso_path)], capture_output=True, text=True, check=True
    ).stdout
    assert "LABEL=cidata" in blkid and "TYPE=iso9660" in blkid
    if shutil.which("isoinfo"):
        listing = subprocess.run(
            ["isoinfo", "-J", "-f", "-i", str(iso_path)], capture_output=True, text=True, check=True
        ).stdout
        assert set(listing.split()) == {"/user-data", "/meta-data", "/network-config"}
    assert not list(tmp_path.glob(".*tmp"))


def test_lint_functions() -> None:
    assert lint_ifcfg("f", "BOOTPROTO=dhcp\nIPADDR=1.2.3.4\n") == []
    assert lint_ifcfg("f", "BOOTPROTO=none\n") == []  # no address: not static
    assert lint_nmconnection("f", "[ipv4]\nmethod=auto\n[ipv6]\nmethod=manual\n")[0].line == 4
    assert (
        lint_netplan(
            "f",
            "network:\n  ethernets:\n    e:\n      dhcp4: true\n"
            "      nameservers:\n        addresses: [1.1.1.1]\n",
        )
        == []
    )
    v1 = "version: 1\nconfig:\n  - type: physical\n    subnets:\n      - type: static\n"
    assert lint_netplan("f", v1)[0].line == 5
    assert lint_shadow("s", "root:!:1\nx:*:1\n", "") == []


def test_netplan_mac_match_removed_with_set_name() -> None:
    text = (
        "network:\n  version: 2\n  ethernets:\n    id0:\n      match:\n"
        "        macaddress: '52:54:00:00:00:01'\n      set-name: eth0\n      dhcp4: true\n"
    )
    out = yaml.safe_load(strip_netplan(text))
    assert out["network"]["ethernets"]["id0"] == {"dhcp4": True}
    keep = "network:\n  ethernets:\n    e:\n      match: {name: 'en*', macaddress: 'x'}\n"
    assert yaml.safe_load(strip_netplan(keep))["network"]["ethernets"]["e"] == {
        "match": {"name": "en*"}
    }


def test_docs_list_exactly_the_registry() -> None:
    doc = (REPO / "docs/guest.md").read_text()
    table = set(re.findall(r"^\| `([a-z0-9-]+)` \|", doc, re.M))
    assert table == set(operations())
    for name, op in operations().items():
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}` |"))
        assert ("yes" if op.default else "no") in row.split("|")[2]


def test_cli_list_operations_and_bad_input(tmp_path: Path) -> None:
    r = run_cli("seal", "--list-operations")
    assert r.returncode == 0
    assert {line.split()[0] for line in r.stdout.splitlines()[:-1]} == set(operations())
    ud = _write(tmp_path, SEED_SCRIPT)
    img = tmp_path / "x.img"
    img.write_bytes(b"\0" * 4096)
    r = run_cli("inject", str(img), "--user-data", str(ud), "-o", str(tmp_path / "o.img"))
    assert r.returncode == 2 and f"{ud}:2:1" in r.stderr and "runcmd" in r.stderr
    assert not (tmp_path / "o.img").exists()
    r = run_cli("seal", str(img), "--operations", "defaults,-bogus-op", "-o", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown seal operation" in r.stderr
    r = run_cli("seed-iso", "--user-data", str(ud), "-o", str(tmp_path / "s.iso"))
    assert r.returncode == 2 and not (tmp_path / "s.iso").exists()
    good = _write(tmp_path, SEED_SCRIPT.replace("runcmd\n", "runcmd:\n"), "good")
    r = run_cli(
        "seed-iso", "--user-data", str(good), "--hostname", "h1", "-o", str(tmp_path / "s.iso")
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.iso").stat().st_size > 0


def test_install_command_per_package_manager() -> None:
    from imagepipe.errors import ImagepipeError
    from imagepipe.guest.customize import install_command

    apt = install_command("apt", ("apache2", "curl"))
    assert "apt-get -q update" in apt and apt.endswith("install apache2 curl")
    assert "DEBIAN_FRONTEND=noninteractive" in apt
    assert install_command("dnf", ("httpd",)) == "dnf -y install httpd"
    assert install_command("yum", ("a b",)) == "yum -y install 'a b'"
    try:
        install_command("pacman", ("x",))
    except ImagepipeError as e:
        assert "pacman" in str(e)
    else:
        raise AssertionError("unsupported package manager accepted")


def test_missing_cloud_init_validator_is_a_problem_not_silence(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without cloud-init's Python package a cloud-config is reported, never passed unchecked;
    scripts need no schema and still pass."""
    import sys

    from imagepipe.cloudinit import validate

    monkeypatch.setitem(sys.modules, "cloudinit.config.schema", None)  # import fails
    validate._schema.cache_clear()
    try:
        (p,) = validate_user_data(_write(tmp_path, "#cloud-config\npackages: [httpd]\n"))
        assert "schema validator" in p.message and "not installed" in p.message
        assert p.hint is not None and "apt-get install cloud-init" in p.hint
        assert validate_user_data(_write(tmp_path, "#!/bin/sh\necho hi\n")) == []
    finally:
        validate._schema.cache_clear()  # the next test loads the real schema again


def test_unreadable_binary_or_huge_user_data_is_one_whole_file_problem(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from imagepipe import limits

    (p,) = validate_user_data(tmp_path / "missing.yaml")
    assert p.line is None and "cannot read user-data" in p.message and p.hint
    gz = tmp_path / "user-data.gz"
    gz.write_bytes(b"\x1f\x8b\x08\x00binary")
    (p,) = validate_user_data(gz)
    assert "not UTF-8 text (byte 1)" in p.message and "gzip" in (p.hint or "")
    monkeypatch.setattr(limits, "MAX_USER_DATA_BYTES", 8)
    (p,) = validate_user_data(_write(tmp_path, "#cloud-config\npackages: [httpd]\n"))
    assert "more than the" in p.message and p.file.endswith("user-data")
