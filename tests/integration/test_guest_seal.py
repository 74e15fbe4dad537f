"""Every seal operation on one fixture that has the thing: read back that it is gone, that
unrelated files survive, and that --dry-run removed nothing. One appliance launch."""

from __future__ import annotations

from typing import Any

import pytest

from imagepipe.guest.seal import operations, select
from imagepipe.guest.seal.run import seal, verify
from imagepipe.testing.fixtures import make_debian_fixture
from imagepipe.tools.guestfs import GuestSession

from .guest_helpers import SEALABLE, SURVIVORS

pytestmark = [pytest.mark.guestfs, pytest.mark.qemu]

# operation -> guest paths that must be gone after it ran
GONE = {
    "bash-history": ["/root/.bash_history", "/home/alice/.bash_history"],
    "crash-data": ["/var/crash/core.1"],
    "cron-spool": ["/var/spool/cron/crontabs/root"],
    "dhcp-client-state": ["/var/lib/dhcp/dhclient.eth0.leases"],
    "logfiles": ["/var/log/syslog", "/var/log/apt/history.log"],
    "mail-spool": ["/var/mail/root"],
    "net-nmconn": ["/etc/NetworkManager/system-connections/Wired.nmconnection"],
    "package-manager-cache": [
        "/var/cache/apt/archives/foo_1.0_amd64.deb",
        "/var/cache/apt/pkgcache.bin",
        "/var/cache/dnf/repo.solv",
    ],
    "passwd-backups": ["/etc/passwd-", "/etc/shadow-"],
    "rpm-db": ["/var/lib/rpm/__db.001"],
    "ssh-hostkeys": [
        "/etc/ssh/ssh_host_rsa_key",
        "/etc/ssh/ssh_host_rsa_key.pub",
        "/etc/ssh/ssh_host_ed25519_key",
    ],
    "ssh-userdir": ["/root/.ssh"],
    "tmp-files": ["/tmp/build.tmp", "/var/tmp/x"],
    "udev-persistent-net": ["/etc/udev/rules.d/70-persistent-net.rules"],
    "utmp": ["/var/run/utmp"],
    "yum-uuid": ["/var/lib/yum/uuid"],
    "backup-files": ["/etc/hosts~", "/etc/foo.conf.bak"],
    "cloud-init-state": [
        "/var/lib/cloud/instance",
        "/var/lib/cloud/instances",
        "/var/lib/cloud/data",
        "/var/lib/cloud/sem",
        "/var/log/cloud-init.log",
    ],
    "random-seed": ["/var/lib/systemd/random-seed"],
    "kerberos-data": ["/etc/krb5.keytab"],
    "firewall-rules": ["/etc/firewalld/zones/public.xml"],
    "ca-certificates": ["/usr/local/share/ca-certificates/site.crt"],
    "user-account": ["/home/alice"],
    "python-bytecode": ["/usr/lib/python3/dist-packages/cloudinit/__pycache__"],
}
# operations checked by content instead of absence (below)
EDITS = {"machine-id", "net-hwaddr", "net-hostname", "lvm-uuids"}

USERS = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\nalice:!:19000:0:99999:7:::\n",
    "etc/group": "root:x:0:\nalice:x:1000:\n",
}


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    img = tmp_path_factory.mktemp("seal") / "disk.img"
    make_debian_fixture(img, {**SEALABLE, **SURVIVORS, **USERS})
    with GuestSession(img, fmt="raw") as s:
        dry = seal(s, "all", dry_run=True)
        after_dry = {p: s.exists(p) for ops in GONE.values() for p in ops}
        result = seal(s, "all")
        again = seal(s, "all")  # idempotent: nothing left to remove
        yield s, dry, after_dry, result, again


def test_every_operation_is_covered() -> None:
    assert set(GONE) | EDITS == set(operations())


def test_dry_run_lists_and_keeps(sealed: Any) -> None:
    _, dry, after_dry, _, _ = sealed
    assert all(after_dry.values()), [p for p, e in after_dry.items() if not e]
    assert "/etc/ssh/ssh_host_rsa_key" in dry.removed["ssh-hostkeys"]
    assert dry.files_removed > 30


@pytest.mark.parametrize("op", sorted(GONE))
def test_operation_removed_its_files(sealed: Any, op: str) -> None:
    s, _, _, result, _ = sealed
    assert op in result.operations
    left = [p for p in GONE[op] if s.exists(p) or s.is_symlink(p)]
    assert not left


def test_unrelated_files_survive(sealed: Any) -> None:
    s = sealed[0]
    for rel, content in SURVIVORS.items():
        assert s.read_text("/" + rel) == content, rel
    assert s.is_dir("/var/log") and s.is_dir("/tmp") and s.is_dir("/var/lib/cloud/seed/nocloud")
    assert s.g.statns("/tmp")["st_mode"] & 0o7777 == 0o1777
    assert "alice" not in s.read_text("/etc/passwd") and "root:" in s.read_text("/etc/passwd")


def test_machine_id_emptied_not_deleted(sealed: Any) -> None:
    s = sealed[0]
    assert s.is_file("/etc/machine-id") and s.read_text("/etc/machine-id") == ""
    assert s.g.readlink("/var/lib/dbus/machine-id") == "/etc/machine-id"


def test_mac_addresses_and_hostname_gone(sealed: Any) -> None:
    s = sealed[0]
    ifcfg = s.read_text("/etc/sysconfig/network-scripts/ifcfg-eth0")
    assert "HWADDR" not in ifcfg and "UUID" not in ifcfg and "HOSTNAME" not in ifcfg
    assert "BOOTPROTO=dhcp" in ifcfg and "ONBOOT=yes" in ifcfg
    netplan = s.read_text("/etc/netplan/50-cloud-init.yaml")
    assert "macaddress" not in netplan and "dhcp4: true" in netplan


def test_idempotent_and_verified(sealed: Any) -> None:
    s, _, _, result, again = sealed
    assert result.files_removed > 30
    assert again.files_removed == 0 and not again.edited
    checked = verify(s, result.operations)
    assert checked.verified
    # every applied operation with a read-back is checked, and only those
    assert checked.checks == [n for n in result.operations if operations()[n].verify]
    assert {"ssh-hostkeys", "machine-id", "cloud-init-state"} <= set(checked.checks)
    assert verify(s, ["bash-history"]).checks == []


def test_selection_syntax() -> None:
    chosen = select("defaults,-ssh-hostkeys,+user-account")
    assert "ssh-hostkeys" not in chosen and "user-account" in chosen and "machine-id" in chosen
    assert "kerberos-data" not in chosen
    assert select("none") == [] and select("none,machine-id") == ["machine-id"]
    from imagepipe.errors import InputError

    with pytest.raises(InputError, match="did you mean 'machine-id'"):
        select("defaults,-machine-idd")
