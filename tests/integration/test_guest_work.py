"""Lints (one file per static-IP/password style), customize, inject and seal via run_guest_work,
all read back from one appliance launch on a busybox fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from imagepipe.errors import LintError
from imagepipe.guest.seal.lints import run_lints
from imagepipe.guest.work import run_guest_work
from imagepipe.recipe.model import (
    AptRepository,
    CloudInit,
    Customize,
    FileSpec,
    ImageSource,
    Recipe,
    Seal,
    Source,
)
from imagepipe.testing.fixtures import make_debian_fixture
from imagepipe.tools.guestfs import GuestCommandError, GuestSession

pytestmark = [pytest.mark.guestfs, pytest.mark.qemu]

# guest path -> (content, line the lint must name)
STATIC = {
    "/etc/network/interfaces": (
        "auto lo\niface lo inet loopback\n\nauto eth0\n"
        "iface eth0 inet static\n  address 10.0.0.5/24\n",
        5,
    ),
    "/etc/network/interfaces.d/eth1": ("iface eth1 inet6 static\n  address fd00::5/64\n", 1),
    "/etc/sysconfig/network-scripts/ifcfg-eth0": (
        "DEVICE=eth0\nBOOTPROTO=none\nIPADDR=10.0.0.5\nPREFIX=24\n",
        2,
    ),
    "/etc/sysconfig/network-scripts/ifcfg-eth1": (
        'DEVICE=eth1\nBOOTPROTO="static"\nIPADDR0="10.0.1.5"\n',
        2,
    ),
    "/etc/NetworkManager/system-connections/lan.nmconnection": (
        "[connection]\nid=lan\n[ipv4]\naddress1=10.0.0.5/24\nmethod=manual\n",
        5,
    ),
    "/etc/netplan/01-static.yaml": (
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      addresses: [10.0.0.5/24]\n",
        5,
    ),
    "/etc/netplan/02-nodhcp.yaml": (
        "network:\n  version: 2\n  ethernets:\n    eth1:\n      dhcp4: false\n",
        5,
    ),
}
DHCP_OK = {
    "/etc/network/interfaces": "auto lo\niface lo inet loopback\nauto eth0\niface eth0 inet dhcp\n"
    "source /etc/network/interfaces.d/*\n",
    "/etc/netplan/01-static.yaml": "network:\n  version: 2\n  ethernets:\n    eth0:\n"
    "      dhcp4: true\n      nameservers:\n"
    "        addresses: [10.0.0.1]\n",
}
SHADOW = (
    "root:$6$salt$usablehash:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
    "alice:$y$j9T$abc$def:19000:0:99999:7:::\nbob::19000:0:99999:7:::\n"
    "svc:$6$x$y:19000:0:99999:7:::\nlocked:!$6$x$y:19000:0:99999:7:::\n"
)
PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/usr/sbin/nologin\n"
    "alice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n"
    "svc:x:999:999::/:/usr/sbin/nologin\nlocked:x:1002:1002::/:/bin/sh\n"
)
LOCKED_SHADOW = "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n"
UNIT = (
    "[Unit]\nDescription=demo\n[Service]\nExecStart=/bin/true\n[Install]\n"
    "WantedBy=multi-user.target\n"
)
USER_DATA = "#cloud-config\nruncmd:\n  - [ systemctl, start, httpd ]\n"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Any:
    img = tmp_path_factory.mktemp("work") / "disk.img"
    files = {k.lstrip("/"): v[0] for k, v in STATIC.items()}
    files.update(
        {
            "etc/shadow": SHADOW,
            "etc/passwd": PASSWD,
            "etc/ssh/ssh_host_rsa_key": "K",
            "etc/machine-id": "abc\n",
            "var/lib/cloud/instance/x": "state",
            "etc/group": "root:x:0:\nalice:x:1000:\n",
        }
    )
    make_debian_fixture(img, files, busybox=True)
    with GuestSession(img, fmt="raw") as s:
        yield s


def _lint(session: Any, **kw: bool) -> list[Any]:
    try:
        run_lints(session, **kw)
    except LintError as e:
        return e.problems
    return []


def test_lints_static_ip_every_style(session: Any) -> None:
    found = {(p.file, p.line) for p in _lint(session, allow_password=True)}
    assert found == {(path, line) for path, (_, line) in STATIC.items()}


def test_lints_passwords(session: Any) -> None:
    problems = _lint(session, allow_static_ip=True)
    assert {p.path for p in problems} == {"root", "alice", "bob"}  # svc: nologin; locked: '!'
    assert all(p.file == "/etc/shadow" for p in problems)
    assert {p.line for p in problems} == {1, 3, 4}
    assert "EMPTY" in next(p.message for p in problems if p.path == "bob")


def test_lints_allowed_and_error_text(session: Any) -> None:
    assert run_lints(session, allow_static_ip=True, allow_password=True).passed
    with pytest.raises(LintError, match=r"/etc/netplan/02-nodhcp.yaml:5: dhcp4: DHCP turned off"):
        run_lints(session)


def test_failed_command_reports_code_and_output(session: Any) -> None:
    with pytest.raises(GuestCommandError) as exc:
        session.sh("echo first line; echo 'the real reason' >&2; exit 7")
    assert exc.value.returncode == 7
    assert "the real reason" in str(exc.value) and "exit 7" in str(exc.value)


@pytest.fixture(scope="module")
def worked(session: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    # make the guest clean for the lints, then run all guest work in the same launch
    for path in STATIC:
        session.g.rm_f(path)
    for path, content in DHCP_OK.items():
        session.write(path, content)
    session.write("/etc/shadow", LOCKED_SHADOW)
    d = tmp_path_factory.mktemp("recipe")
    (d / "user-data.yaml").write_text(USER_DATA)
    (d / "motd").write_text("uploaded from the recipe dir\n")
    (d / "repo.asc").write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nkey\n")
    recipe = Recipe(
        name="t",
        description="",
        path=d / "recipe.yaml",
        source=Source(image=ImageSource(url="file:///dev/null")),
        customize=Customize(
            run=("echo built > /etc/built-by; mkdir -p /srv/www",),
            files=(
                FileSpec(dest="/etc/motd", src=d / "motd"),
                FileSpec(dest="/srv/secret", content="s3cret\n", mode="0600", owner="alice:alice"),
                FileSpec(dest="/etc/systemd/system/demo.service", content=UNIT),
            ),
            enable_services=("demo",),
            repositories=(AptRepository("http://apt.example/debian", "stable",
                                        key=d / "repo.asc"),),
        ),
        cloud_init=CloudInit(user_data=d / "user-data.yaml", hostname="web1"),
        seal=Seal(operations="defaults"),
    )
    return run_guest_work(Path("unused"), recipe, instance_id="iid-test-1",
                          session=session).to_json()


def test_customize_read_back(session: Any, worked: dict[str, Any]) -> None:
    s = session
    assert s.read_text("/etc/built-by") == "built\n"
    assert s.read_text("/etc/motd") == "uploaded from the recipe dir\n"
    st = s.g.statns("/srv/secret")
    assert (st["st_mode"] & 0o7777, st["st_uid"], st["st_gid"]) == (0o600, 1000, 1000)
    link = "/etc/systemd/system/multi-user.target.wants/demo.service"
    assert s.g.readlink(link) == "/etc/systemd/system/demo.service"
    assert worked["customize"]["services"] == ["demo.service"]
    # customize.repositories: deb822 + the key under /etc/apt/keyrings (apt guest)
    assert s.read_text("/etc/apt/keyrings/repo.asc").startswith("-----BEGIN PGP")
    extra = s.read_text("/etc/apt/sources.list.d/extra.sources")
    assert "URIs: http://apt.example/debian" in extra
    assert "Signed-By: /etc/apt/keyrings/repo.asc" in extra
    assert worked["customize"]["repositories"][0]["suite"] == "stable"


def test_inject_read_back(session: Any, worked: dict[str, Any]) -> None:
    s = session
    assert s.read_text("/var/lib/cloud/seed/nocloud/user-data") == USER_DATA
    meta = yaml.safe_load(s.read_text("/var/lib/cloud/seed/nocloud/meta-data"))
    assert meta == {"instance-id": "iid-test-1", "local-hostname": "web1"}
    assert not s.exists("/var/lib/cloud/seed/nocloud/network-config")
    dropin = s.read_text("/etc/cloud/cloud.cfg.d/90_imagepipe_datasource.cfg")
    ds = yaml.safe_load(dropin)["datasource_list"]
    assert ds[-2:] == ["NoCloud", "None"] and "ConfigDrive" in ds and "Azure" in ds
    assert worked["cloud_init"]["instance_id"] == "iid-test-1"


def test_sealed_after_customize(session: Any, worked: dict[str, Any]) -> None:
    s = session
    assert not s.glob("/etc/ssh/ssh_host_*")
    assert s.read_text("/etc/machine-id") == ""
    assert not s.exists("/var/lib/cloud/instance")
    assert worked["seal"]["files_removed"] >= 2 and worked["lints"]["passed"]
    assert worked["verification"]["verified"]
    assert worked["guest"]["distro"] == "debian" and worked["guest"]["major"] == 12
