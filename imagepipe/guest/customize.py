"""Customize a guest in the shared appliance: packages, files, commands, services.

Why in the one session instead of virt-customize: the same launch then injects and seals
(measured: two launches cost ~30 s more). Order is fixed and documented: packages, files,
commands, services, so a command can use what was installed and written, and a service unit
written by `files:` can be enabled. Failures name the command, its exit code and last lines.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from dataclasses import dataclass, fields
from typing import Any

from imagepipe import ui
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.recipe.model import Customize, FileSpec
from imagepipe.tools.guestfs import GuestSession

UNIT_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")


def install_command(package_management: str, packages: tuple[str, ...]) -> str:
    """The guest's own package manager command line for `packages`."""
    pkgs = shlex.join(packages)
    if package_management == "apt":
        return (
            "export DEBIAN_FRONTEND=noninteractive; apt-get -q update && "
            f"apt-get -q -y -o Dpkg::Options::=--force-confold install {pkgs}"
        )
    if package_management in ("dnf", "yum"):
        return f"{package_management} -y install {pkgs}"
    if package_management == "zypper":
        return f"zypper -n install {pkgs}"
    raise ImagepipeError(
        f"cannot install packages: unsupported package manager {package_management!r} in the guest",
        "use customize.run instead",
    )


def _ids(session: GuestSession, owner: str) -> tuple[int, int]:
    """Numeric uid/gid for "user[:group]" from the GUEST's passwd/group files."""
    user, _, group = owner.partition(":")

    def lookup(db: str, name: str, field: int) -> int:
        if name.isdigit():
            return int(name)
        text = session.read_text(db) if session.is_file(db) else ""
        for line in text.splitlines():
            parts = line.split(":")
            if parts[0] == name and len(parts) > field:
                return int(parts[field])
        raise InputError(
            f"owner {owner!r}: no {name!r} in the guest's {db}",
            "create the user first (customize.run) or use numeric ids",
        )

    uid = lookup("/etc/passwd", user, 2)
    gid = lookup("/etc/group", group, 2) if group else lookup("/etc/passwd", user, 3)
    return uid, gid


def write_file(session: GuestSession, spec: FileSpec) -> None:
    if spec.src is not None:
        data = spec.src.read_bytes()
    else:
        data = (spec.content or "").encode()
    mode = int(spec.mode, 8) if spec.mode else 0o644
    session.write(spec.dest, data, mode=mode)
    if spec.owner:
        uid, gid = _ids(session, spec.owner)
        session.g.chown(uid, gid, spec.dest)


def enable_service(session: GuestSession, name: str) -> str:
    """`systemctl enable` done offline: symlink the unit into each WantedBy target's .wants."""
    unit = name if "." in name else f"{name}.service"
    path = next((f"{d}/{unit}" for d in UNIT_DIRS if session.exists(f"{d}/{unit}")), None)
    if path is None:
        raise ImagepipeError(
            f"cannot enable service {name!r}: no unit {unit} in the guest ({', '.join(UNIT_DIRS)})",
            "install its package first",
        )
    text = session.read_text(path)
    install = text.split("[Install]", 1)[1] if "[Install]" in text else ""
    targets = [
        t
        for m in re.finditer(r"(?m)^\s*(?:WantedBy|RequiredBy)\s*=\s*(.+)$", install)
        for t in m.group(1).split()
    ]
    if not targets:
        raise ImagepipeError(f"cannot enable {unit}: its unit file has no WantedBy= in [Install]")
    for target in targets:
        kind = (
            "requires" if re.search(rf"RequiredBy\s*=.*{re.escape(target)}", install) else "wants"
        )
        link = f"/etc/systemd/system/{target}.{kind}/{unit}"
        session.mkdir_p(posixpath.dirname(link))
        if session.is_symlink(link) or session.exists(link):
            session.g.rm_f(link)
        session.g.ln_s(path, link)
    return unit


@dataclass
class CustomizeResult:
    """What `customize:` did (None: that step had nothing to do and is left out of the record).
    The field order is the manifest's key order."""

    repositories: list[dict[str, Any]] | None = None
    warnings: list[str] | None = None
    update: dict[str, Any] | None = None
    packages: list[str] | None = None
    files: list[str] | None = None
    commands: int | None = None
    services: list[str] | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's `customize` record."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}


def customize(session: GuestSession, spec: Customize) -> CustomizeResult:
    """Apply a recipe's `customize:`; returns what was done (the manifest record)."""
    assert session.info is not None
    result = CustomizeResult()
    if spec.repositories or spec.update:  # first: packages may come from these repositories
        from imagepipe.guest import customize_repos

        result = CustomizeResult(**customize_repos.apply(session, spec.repositories, spec.update))
    if spec.packages:
        ui.detail(f"guest: installing {len(spec.packages)} package(s)")
        ui.phase(f"customize: installing {len(spec.packages)} package(s)")
        session.sh(install_command(session.info.package_management, spec.packages))
        result.packages = list(spec.packages)
    for f in spec.files:
        write_file(session, f)
    if spec.files:
        result.files = [f.dest for f in spec.files]
    for cmd in spec.run:
        ui.detail(f"guest: run {cmd}")
        ui.phase(f"customize: run {cmd[:40]}")
        session.sh(cmd)
    if spec.run:
        result.commands = len(spec.run)
    if spec.enable_services:
        result.services = [enable_service(session, s) for s in spec.enable_services]
    return result
