"""Engine connection settings: flags > environment > profile file; passwords never shown."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from imagepipe.cli.ovirt import parse_size
from imagepipe.errors import InputError
from imagepipe.targets.ovirt.connection import resolve_config
from imagepipe.targets.ovirt.templates import expand_name


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    p = tmp_path / "pw"
    p.write_text("s3cret\n")
    p.chmod(0o600)  # a password file other users can read is refused
    return p


def test_flags_win_over_env_and_profile(tmp_path: Path, pw: Path) -> None:
    prof = tmp_path / "ovirt.yaml"
    prof.write_text(f"url: https://profile\nusername: prof@internal\npassword_file: {pw}\n")
    env = {"OVIRT_URL": "https://env", "OVIRT_USERNAME": "env@internal"}
    cfg = resolve_config(url="https://flag", env=env, profile_path=prof)
    assert (cfg.url, cfg.username, cfg.password) == ("https://flag", "env@internal", "s3cret")
    cfg = resolve_config(env={}, profile_path=prof)
    assert (cfg.url, cfg.username) == ("https://profile", "prof@internal")
    assert cfg.api_url == "https://profile/ovirt-engine/api"
    assert "s3cret" not in repr(cfg)


def test_named_profiles(tmp_path: Path, pw: Path) -> None:
    prof = tmp_path / "ovirt.yaml"
    prof.write_text(f"default: lab\nprofiles:\n  lab: {{url: 'https://lab', password_file: "
                    f"'{pw}'}}\n  prod: {{url: 'https://prod', password_file: '{pw}'}}\n")
    assert resolve_config(env={}, profile_path=prof).url == "https://lab"
    assert resolve_config(env={}, profile="prod", profile_path=prof).url == "https://prod"
    with pytest.raises(InputError, match="no profile named 'qa'"):
        resolve_config(env={}, profile="qa", profile_path=prof)


def test_password_sources_and_errors(tmp_path: Path) -> None:
    none = tmp_path / "none.yaml"
    cfg = resolve_config(env={"OVIRT_URL": "https://e", "OVIRT_PASSWORD": "p"}, profile_path=none)
    assert cfg.password == "p" and cfg.username == "admin@internal"
    with pytest.raises(InputError, match="no engine password"):
        resolve_config(env={"OVIRT_URL": "https://e"}, profile_path=none)
    with pytest.raises(InputError, match="no engine URL"):
        resolve_config(env={"OVIRT_PASSWORD": "p"}, profile_path=none)
    with pytest.raises(InputError, match="CA file not found"):
        resolve_config(env={"OVIRT_URL": "https://e", "OVIRT_PASSWORD": "p",
                            "OVIRT_CA_FILE": str(tmp_path / "missing.pem")}, profile_path=none)
    bad = tmp_path / "bad.yaml"
    bad.write_text("url: https://e\npassword: oops\n")
    with pytest.raises(InputError, match="password_file"):
        resolve_config(env={}, profile_path=bad)


def test_sizes_and_versioned_names() -> None:
    assert parse_size("2G") == 2 << 30 and parse_size("512M") == 512 << 20
    assert parse_size("2GiB") == 2 << 30 and parse_size("1024") == 1024
    now = datetime.datetime(2026, 1, 2, 3, 4, 5)
    assert expand_name("httpd-${date}", now) == ("httpd-20260102", "httpd-")
    assert expand_name("httpd", now) == ("httpd", None)
