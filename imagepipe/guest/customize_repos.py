"""`customize.repositories` and `customize.update` for image and ISO bases.

Why inside the guest with its own package manager: a downloaded cloud image (or an installed
ISO) was frozen when the vendor built it; the only way to bring it to the current security
fixes is the guest's apt/dnf/zypper, against the repositories it will keep using. Extra
repositories are written the way each manager expects them (apt: deb822 with `Signed-By` and
the key under /etc/apt/keyrings/, as for bootstrapped images; dnf/yum and zypper: a `.repo`
file with `gpgkey=`), before packages are installed, so `customize.packages` can use them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from imagepipe.errors import ImagepipeError
from imagepipe.recipe.model import AptRepository

RPM_KEYS = "/etc/pki/rpm-gpg"
REPO_DIRS = {"dnf": "/etc/yum.repos.d", "yum": "/etc/yum.repos.d", "zypper": "/etc/zypp/repos.d"}


@dataclass(frozen=True)
class GuestFile:
    path: str
    data: bytes
    mode: int = 0o644


def _slug(repo: AptRepository, i: int) -> str:
    host = re.sub(r"^[a-z]+://", "", repo.url).split("/")[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", f"imagepipe-{i}-{host}-{repo.suite}").strip("-")


def repository_files(manager: str, repos: tuple[AptRepository, ...]) -> list[GuestFile]:
    """The files that add `repos` to a guest managed by `manager`."""
    if not repos:
        return []
    if manager == "apt":
        from imagepipe.apt import sources as apt_sources

        files = []
        extra = apt_sources.extra_repos(repos)
        for r, spec in zip(extra, repos, strict=True):
            if r.image_key and spec.key is not None:
                files.append(GuestFile(r.image_key, spec.key.read_bytes()))
        files.append(GuestFile("/etc/apt/sources.list.d/extra.sources",
                               apt_sources.deb822(extra).encode()))
        return files
    if manager not in REPO_DIRS:
        raise ImagepipeError(f"cannot add repositories: unsupported package manager "
                             f"{manager!r} in the guest", "use customize.files and .run instead")
    files = []
    for i, rpm in enumerate(repos):
        slug = _slug(rpm, i)
        lines = [f"[{slug}]", f"name={rpm.url} {rpm.suite}", f"baseurl={rpm.url}", "enabled=1"]
        if rpm.key is not None:
            key_path = f"{RPM_KEYS}/{slug}.asc"
            files.append(GuestFile(key_path, rpm.key.read_bytes()))
            lines += ["gpgcheck=1", "repo_gpgcheck=0", f"gpgkey=file://{key_path}"]
        else:
            lines.append("gpgcheck=0")
        if manager == "zypper":
            lines += ["type=rpm-md", "autorefresh=1"]
        files.append(GuestFile(f"{REPO_DIRS[manager]}/{slug}.repo",
                               ("\n".join(lines) + "\n").encode()))
    return files


def update_command(manager: str) -> str:
    """Upgrade every installed package (new dependencies allowed), non-interactively."""
    if manager == "apt":
        return ("export DEBIAN_FRONTEND=noninteractive; apt-get -q update && "
                "apt-get -q -y -o Dpkg::Options::=--force-confold "
                "-o Dpkg::Options::=--force-confdef dist-upgrade && apt-get -q clean")
    if manager == "dnf":
        return "dnf -y upgrade --refresh && dnf clean all"
    if manager == "yum":
        return "yum -y update && yum clean all"
    if manager == "zypper":
        return "zypper -n --gpg-auto-import-keys refresh && zypper -n update && zypper clean"
    raise ImagepipeError(f"cannot update: unsupported package manager {manager!r} in the guest",
                         "remove customize.update, or update with customize.run")


def upgraded_count(manager: str, output: str) -> int | None:
    """How many packages the update changed, read from the manager's summary (None: unknown)."""
    patterns = {"apt": r"(\d+) upgraded, (\d+) newly installed",
                "dnf": r"(?:Upgrade|Upgraded)\s+(\d+) Packages?",
                "yum": r"(?:Upgrade|Updated)\s+(\d+) Packages?",
                "zypper": r"(\d+) packages? to upgrade"}
    m = re.search(patterns.get(manager, r"$^"), output)
    if m is None:
        return 0 if re.search(r"Nothing to do|No packages marked for update", output) else None
    return sum(int(g) for g in m.groups())


def apply(session: Any, repos: tuple[AptRepository, ...], update: bool) -> dict[str, Any]:
    """Add the repositories, then upgrade if asked; the manifest record."""
    from imagepipe import ui

    manager = session.info.package_management
    record: dict[str, Any] = {}
    if repos:
        for f in repository_files(manager, repos):
            session.write(f.path, f.data, mode=f.mode)
        record["repositories"] = [{"url": r.url, "suite": r.suite,
                                   "components": list(r.components),
                                   "key": r.key.name if r.key else None,
                                   "trusted": r.trusted} for r in repos]
        record["warnings"] = [f"repository {r.url} {r.suite} is trusted without a signature "
                              "check (trusted: true)" for r in repos if r.trusted]
    if update:
        ui.detail(f"guest: upgrading every package ({manager})")
        cmd = update_command(manager)
        out = session.sh(cmd)
        record["update"] = {"manager": manager, "command": cmd,
                            "upgraded": upgraded_count(manager, str(out or ""))}
    return record
