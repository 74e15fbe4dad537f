"""Tiny guest disks that libguestfs inspects as Debian 12, built in ~0.3 s without the appliance.

Why: a real Debian image takes minutes to bootstrap; seal/inject/lint tests only need a guest
that `inspect_os` recognizes (os-release, /bin, fstab, an ELF binary) plus the files under
test. `mkfs.ext4 -d TREE` packs a directory into the partition directly.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from imagepipe.sizes import parse_size

OS_RELEASE = """PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""

BASE_FILES: dict[str, str] = {
    "etc/os-release": OS_RELEASE,
    "etc/debian_version": "12.5\n",
    "etc/fstab": "/dev/sda1 / ext4 defaults 0 1\n",
    "etc/hostname": "fixture\n",
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\n",
    "etc/group": "root:x:0:\n",
}

def _write_tree(root: Path, files: Mapping[str, bytes | str], busybox: bool) -> None:
    for d in ("usr/bin", "usr/sbin", "usr/lib", "tmp", "var/tmp", "root", "var/lib", "var/log",
              "proc", "sys", "dev", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for link in ("bin", "sbin", "lib"):
        (root / link).symlink_to(f"usr/{link}")
    (root / "tmp").chmod(0o1777)
    elf = shutil.which("busybox") if busybox else "/usr/bin/true"
    assert elf is not None, "busybox-static is not installed (apt-get install busybox-static)"
    shutil.copy(elf, root / "usr/bin/ls")
    if busybox:
        shutil.copy(elf, root / "usr/bin/busybox")
        for applet in ("sh", "cat", "echo", "mkdir", "touch", "rm", "ln", "chmod", "chown",
                       "test", "true", "false", "sleep", "printf", "id", "env"):
            if applet != "ls":
                (root / "usr/bin" / applet).symlink_to("busybox")
    merged: dict[str, bytes | str] = {**BASE_FILES, **files}
    for rel, content in merged.items():
        target = root / rel.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        if isinstance(content, str):
            target.write_text(content)
        else:
            target.write_bytes(content)
    (root / "etc/shadow").chmod(0o640)


def make_debian_fixture(path: Path, files: Mapping[str, bytes | str] | None = None,
                        size: str = "64M", busybox: bool = False) -> Path:
    """Write a raw MBR disk at `path` with one ext4 partition holding a Debian-12-like tree.

    `files` maps guest paths to contents (added or replacing the base files). With `busybox`,
    /bin/sh and common applets come from Debian's busybox-static, so commands can run inside.
    """
    from imagepipe.tools.run import run

    total = parse_size(size)
    offset = 1024 * 1024
    with tempfile.TemporaryDirectory(prefix="imagepipe-fixture-") as tmp:
        root = Path(tmp) / "root"
        root.mkdir()
        _write_tree(root, files or {}, busybox)
        with open(path, "wb") as f:
            f.truncate(total)
        run(["sfdisk", "--quiet", str(path)], input="label: dos\nstart=2048, type=83\n")
        fs_kib = (total - offset) // 1024
        run(["mkfs.ext4", "-q", "-F", "-L", "root", "-E", f"offset={offset}", "-d", str(root),
             str(path), f"{fs_kib}k"])
    return path
