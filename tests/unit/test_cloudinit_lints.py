"""Template lints over cloud-config: passwords and static addresses every VM would get."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from imagepipe.cloudinit.lints import lint_network_config, lint_user_data
from imagepipe.pipeline.manifest import redact
from tests.conftest import run_cli

SEED_PASSWORD = """#cloud-config
password: secret123
chpasswd: {expire: false}
ssh_pwauth: true
runcmd:
  - [systemctl, start, apache2]
"""
USERS = """#cloud-config
chpasswd:
  list: |
    root:toor
    bob:RANDOM
  users:
    - {name: carl, password: x1, type: text}
    - {name: eve, type: RANDOM}
users:
  - default
  - name: alice
    passwd: $6$abc
  - name: dave
    plain_text_passwd: hunter2
  - name: frank
    hashed_passwd: "!"
  - name: gus
    ssh_authorized_keys: [ssh-ed25519 AAAA]
"""
NET_V1 = """version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: dhcp
  - type: physical
    name: eth1
    subnets:
      - type: static
        address: 192.0.2.5/24
"""
NET_V2 = """network:
  version: 2
  ethernets:
    eth0:
      dhcp4: true
    eth1:
      addresses: [192.0.2.5/24]
    eth2:
      dhcp4: false
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    (tmp / name).write_text(text)
    return tmp / name


def test_seed_password_script(tmp_path: Path) -> None:
    found = [str(p) for p in lint_user_data(_write(tmp_path, "ud.yaml", SEED_PASSWORD), "ud.yaml")]
    assert found[0].startswith("ud.yaml:2:1: password: sets a password")
    assert found[1].startswith("ud.yaml:4:1: ssh_pwauth: allows SSH password logins")
    assert len(found) == 2  # chpasswd: {expire: false} alone sets no password
    assert not any("secret123" in f for f in found)  # never the secret itself


def test_every_password_key(tmp_path: Path) -> None:
    found = {p.path: p for p in lint_user_data(_write(tmp_path, "u.yaml", USERS))}
    assert sorted(found) == ["chpasswd.list", "chpasswd.users[0].password",
                             "users[1].passwd", "users[2].plain_text_passwd"]
    assert found["chpasswd.list"].line == 4 and "'root'" in found["chpasswd.list"].message
    assert found["users[1].passwd"].line == 12
    assert found["users[2].plain_text_passwd"].line == 14
    assert not any("toor" in str(p) or "hunter2" in str(p) for p in found.values())


def test_scripts_and_clean_config_pass(tmp_path: Path) -> None:
    assert lint_user_data(_write(tmp_path, "s.sh", "#!/bin/sh\necho password: x\n")) == []
    assert lint_user_data(_write(tmp_path, "c.yaml", "#cloud-config\nssh_pwauth: false\n")) == []


def test_static_network_config(tmp_path: Path) -> None:
    v1 = lint_network_config(_write(tmp_path, "n1.yaml", NET_V1), "n1.yaml")
    assert [str(p).split(": ", 1)[0] for p in v1] == ["n1.yaml:10:9"]
    assert "eth1" in v1[0].message
    v2 = lint_network_config(_write(tmp_path, "n2.yaml", NET_V2), "n2.yaml")
    assert [(p.path, p.line) for p in v2] == [("network.ethernets.eth1.addresses", 7),
                                              ("network.ethernets.eth2.dhcp4", 9)]
    dhcp = "version: 2\nethernets:\n  eth0: {dhcp4: true}\n"
    assert lint_network_config(_write(tmp_path, "n3.yaml", dhcp)) == []


RECIPE = """version: 1
name: t
description: a test recipe
source:
  image: {url: "http://127.0.0.1:1/x.qcow2", checksum: "sha256:%s"}
cloud_init:
  user_data: user-data.yaml
  network_config: network-config.yaml
""" % ("ab" * 32)


@pytest.mark.parametrize("allow", [False, True])
def test_validate_cli_file_line_and_allow_flags(tmp_path: Path, allow: bool) -> None:
    _write(tmp_path, "user-data.yaml", SEED_PASSWORD)
    _write(tmp_path, "network-config.yaml", NET_V2)
    seal = "seal: {allow_password: true, allow_static_ip: true}\n" if allow else ""
    _write(tmp_path, "t.yaml", RECIPE + seal)
    r = run_cli("validate", "t.yaml", cwd=tmp_path)
    if allow:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stderr
    for needle in ("user-data.yaml:2:1: password:", "user-data.yaml:4:1: ssh_pwauth:",
                   "network-config.yaml:7:7: network.ethernets.eth1.addresses:",
                   "network-config.yaml:9:7: network.ethernets.eth2.dhcp4:"):
        assert needle in r.stderr, r.stderr
    assert "secret123" not in r.stderr and "Traceback" not in r.stderr


def test_one_allow_flag_only_lifts_its_own_lint(tmp_path: Path) -> None:
    _write(tmp_path, "user-data.yaml", SEED_PASSWORD)
    _write(tmp_path, "network-config.yaml", NET_V2)
    _write(tmp_path, "t.yaml", RECIPE + "seal: {allow_password: true}\n")
    r = run_cli("validate", "--json", "t.yaml", cwd=tmp_path)
    assert r.returncode == 2
    problems = [e for e in map(json.loads, r.stdout.splitlines()) if e["event"] == "problem"]
    assert {p["path"].split(".")[0] for p in problems} == {"network"}


def test_manifest_keeps_the_lints_audit_record() -> None:
    record = {"lints": {"password_allowed": ["ud.yaml:2:1: password: ..."]},
              "publish": {"password": "hunter2"}}
    out = redact(record)
    assert out["lints"]["password_allowed"] == ["ud.yaml:2:1: password: ..."]
    assert out["publish"]["password"] == "<redacted>"
