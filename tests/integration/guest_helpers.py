"""Guest-area test helpers: fixture images holding the things seal operations remove."""

from __future__ import annotations

# guest path -> content. Every seal operation finds something to remove here.
SEALABLE: dict[str, str] = {
    "usr/lib/python3/dist-packages/cloudinit/__pycache__/util.cpython-311.pyc": "pyc",
    "root/.bash_history": "echo secret\n",
    "home/alice/.bash_history": "ls\n",
    "var/crash/core.1": "core",
    "var/spool/cron/crontabs/root": "* * * * * true\n",
    "var/lib/dhcp/dhclient.eth0.leases": "lease {}\n",
    "var/log/syslog": "log\n",
    "var/log/apt/history.log": "log\n",
    "etc/machine-id": "0123456789abcdef0123456789abcdef\n",
    "var/lib/dbus/machine-id": "0123456789abcdef0123456789abcdef\n",
    "var/mail/root": "mail\n",
    "etc/sysconfig/network-scripts/ifcfg-eth0": (
        "DEVICE=eth0\nBOOTPROTO=dhcp\nHWADDR=52:54:00:12:34:56\nUUID=abc\nHOSTNAME=old\n"
        "ONBOOT=yes\n"
    ),
    "etc/NetworkManager/system-connections/Wired.nmconnection": (
        "[connection]\nid=Wired\n[ethernet]\nmac-address=52:54:00:12:34:56\n[ipv4]\n"
        "method=auto\n"
    ),
    "etc/netplan/50-cloud-init.yaml": (
        "network:\n  version: 2\n  ethernets:\n    eth0:\n      match:\n        macaddress: "
        "'52:54:00:12:34:56'\n      set-name: eth0\n      dhcp4: true\n"
    ),
    "var/cache/apt/archives/foo_1.0_amd64.deb": "deb",
    "var/cache/apt/pkgcache.bin": "bin",
    "var/cache/dnf/repo.solv": "solv",
    "etc/passwd-": "root:x:0:0::/root:/bin/sh\n",
    "etc/shadow-": "root:$6$old$hash:1::::::\n",
    "var/lib/rpm/__db.001": "db",
    "etc/ssh/ssh_host_rsa_key": "KEY",
    "etc/ssh/ssh_host_rsa_key.pub": "PUB",
    "etc/ssh/ssh_host_ed25519_key": "KEY",
    "root/.ssh/authorized_keys": "ssh-ed25519 AAAA\n",
    "tmp/build.tmp": "tmp",
    "var/tmp/x": "tmp",
    "etc/udev/rules.d/70-persistent-net.rules": 'SUBSYSTEM=="net", NAME="eth0"\n',
    "var/run/utmp": "utmp",
    "var/lib/yum/uuid": "uuid",
    "etc/hosts~": "backup",
    "etc/foo.conf.bak": "backup",
    "var/lib/cloud/instance/obj.pkl": "pickle",
    "var/lib/cloud/instances/iid-old/sem/config_ssh": "x",
    "var/lib/cloud/data/instance-id": "iid-old\n",
    "var/lib/cloud/sem/config_scripts_per_once.once": "x",
    "var/log/cloud-init.log": "log\n",
    "var/lib/cloud/seed/nocloud/user-data": "#cloud-config\n",
    "var/lib/systemd/random-seed": "seed",
    "etc/krb5.keytab": "keytab",
    "etc/firewalld/zones/public.xml": "<zone/>",
    "usr/local/share/ca-certificates/site.crt": "CERT",
}

# Files no operation may touch.
SURVIVORS: dict[str, str] = {
    "usr/lib/python3/dist-packages/cloudinit/util.py": "import os\n",
    "etc/ssh/sshd_config": "PermitRootLogin no\n",
    "etc/hosts": "127.0.0.1 localhost\n",
    "etc/foo.conf": "keep\n",
    "var/lib/cloud/seed/nocloud/meta-data": "instance-id: iid-x\n",
    "srv/data/notes.txt": "keep\n",
    "usr/share/doc/readme": "keep\n",
    "etc/network/interfaces": "auto lo\niface lo inet loopback\n",
}


def read_back(image, path: str, fmt: str = "raw"):  # type: ignore[no-untyped-def]
    """A guest file's bytes (None if absent) from a fixture image, read with debugfs from the
    ext4 partition at 1 MiB: an independent reader, no appliance launch."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(image)
        if fmt != "raw":
            raw = Path(tmp) / "disk.raw"
            subprocess.run(
                ["qemu-img", "convert", "-f", fmt, "-O", "raw", str(image), str(raw)], check=True
            )
        dev = f"{raw}?offset=1048576"
        stat = subprocess.run(
            ["debugfs", "-R", f"stat {path}", dev], capture_output=True, text=True
        )
        if "File not found" in stat.stderr or "File not found" in stat.stdout:
            return None
        out = Path(tmp) / "out"
        subprocess.run(
            ["debugfs", "-R", f"dump {path} {out}", dev], capture_output=True, check=True
        )
        return out.read_bytes()
