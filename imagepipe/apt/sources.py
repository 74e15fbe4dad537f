"""Which apt repositories a bootstrapped image is built from, and the sources it ships.

Why in one place: the resolver (imagepipe.apt.resolve), mmdebstrap and the image's own
`/etc/apt/sources.list.d/*.sources` must name exactly the same repositories, or the package set
that keys the rootfs would not be the one installed, and VMs made from the template could not
`apt upgrade` from where it came. By default a Debian/Ubuntu base uses SUITE, SUITE-updates and
SUITE-security (`source.bootstrap.updates: true`): a template without the security suite ships
known holes. The image lists them in deb822 form with `Signed-By`, as Debian 12's cloud images
do; keys of extra repositories are installed under /etc/apt/keyrings/.

The mirror's vocabulary (components, the host's own sources, `MirrorError`, apt's "no such
package" messages) lives here too, so the resolver does not import the bootstrap above it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from imagepipe.errors import ImagepipeError
from imagepipe.recipe.model import AptRepository, BootstrapSource

DEFAULT_SECURITY = {"debian": "http://deb.debian.org/debian-security",
                    "ubuntu": "http://security.ubuntu.com/ubuntu"}
ARCHIVE_KEYRINGS = {"debian": "/usr/share/keyrings/debian-archive-keyring.gpg",
                    "ubuntu": "/usr/share/keyrings/ubuntu-archive-keyring.gpg"}
NO_UPDATES = ("sid", "unstable", "experimental", "rc-buggy")  # suites without -updates/-security
IMAGE_KEYRINGS = "/etc/apt/keyrings"
COMPONENTS = {"debian": "main", "ubuntu": "main,universe"}
# apt/mmdebstrap messages that name a package the mirror does not have
MISSING_PATTERNS = (re.compile(r"Unable to locate package (\S+)"),
                    re.compile(r"Package '?([^' ]+)'? has no installation candidate"),
                    re.compile(r"Couldn't find any package by (?:glob|regex) '([^']+)'"))


@dataclass(frozen=True)
class Repo:
    """One apt repository entry: a URI, one suite, its components and how it is trusted."""

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None  # keyring path on the build host
    image_key: str | None = None  # where the key goes in the image (extra repositories)
    trusted: bool = False  # `trusted: true`: no signature check (warned about)
    origin: str = "distro"  # "distro" or "extra"

    @property
    def id(self) -> str:
        return f"{self.uri} {self.suite} {' '.join(self.components)}"

    def line(self) -> str:
        """A one-line `deb` entry for apt on the build host (resolve and mmdebstrap)."""
        opts = []
        if self.trusted:
            opts.append("trusted=yes")
        elif self.signed_by:
            opts.append(f"signed-by={self.signed_by}")
        head = f"deb [{' '.join(opts)}] " if opts else "deb "
        return f"{head}{self.uri} {self.suite} {' '.join(self.components)}"


def host_security_mirror(distro: str, apt_dir: Path = Path("/etc/apt")) -> str | None:
    """The security mirror the build host's apt is configured with, if any."""
    for uri, suites in source_entries(apt_dir):
        if distro in uri and ("security" in uri or any(s.endswith("-security") for s in suites)):
            return uri.rstrip("/")
    return None


def security_mirror(src: BootstrapSource) -> str:
    return (src.security_mirror or host_security_mirror(src.distro)
            or DEFAULT_SECURITY.get(src.distro, DEFAULT_SECURITY["debian"])).rstrip("/")


def distro_repos(src: BootstrapSource, mirror: str) -> list[Repo]:
    """SUITE (+ SUITE-updates + SUITE-security unless `updates: false` or a rolling suite)."""
    comps = tuple(COMPONENTS.get(src.distro, "main").split(","))
    keyring = ARCHIVE_KEYRINGS.get(src.distro)
    repos = [Repo(mirror, src.suite, comps, keyring)]
    if src.updates and src.suite not in NO_UPDATES:
        repos.append(Repo(mirror, f"{src.suite}-updates", comps, keyring))
        repos.append(Repo(security_mirror(src), f"{src.suite}-security", comps, keyring))
    return repos


def extra_repos(repos: tuple[AptRepository, ...]) -> list[Repo]:
    """The recipe's extra repositories; each key is installed as /etc/apt/keyrings/NAME."""
    out: list[Repo] = []
    used: set[str] = set()
    for i, r in enumerate(repos):
        image_key = None
        if r.key is not None:
            name = r.key.name if r.key.suffix in (".asc", ".gpg") else f"{r.key.name}.asc"
            if name in used:
                name = f"repo{i}-{name}"
            used.add(name)
            image_key = f"{IMAGE_KEYRINGS}/{name}"
        out.append(Repo(r.url.rstrip("/"), r.suite, tuple(r.components),
                        str(r.key) if r.key is not None else None, image_key, r.trusted,
                        "extra"))
    return out


def all_repos(src: BootstrapSource, mirror: str) -> list[Repo]:
    return [*distro_repos(src, mirror), *extra_repos(src.repositories)]


def trust_warnings(repos: list[Repo]) -> list[str]:
    return [f"apt repository {r.uri} {r.suite} is trusted without a signature check "
            "(trusted: true)" for r in repos if r.trusted]


def deb822(repos: list[Repo], keyring_in_image: bool = True) -> str:
    """The image's sources file: one stanza per URI (+ components and key), suites joined."""
    stanzas: dict[tuple[str, tuple[str, ...], str | None, bool], list[str]] = {}
    for r in repos:
        key = r.image_key if (keyring_in_image and r.image_key) else r.signed_by
        stanzas.setdefault((r.uri, r.components, key, r.trusted), []).append(r.suite)
    parts = []
    for (uri, comps, key, trusted), suites in stanzas.items():
        lines = ["Types: deb", f"URIs: {uri}", f"Suites: {' '.join(suites)}",
                 f"Components: {' '.join(comps)}"]
        if trusted:
            lines.append("Trusted: yes")
        elif key:
            lines.append(f"Signed-By: {key}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def image_files(src: BootstrapSource, mirror: str) -> dict[str, str | Path]:
    """Path in the image -> text (sources files) or host Path (keys to copy)."""
    files: dict[str, str | Path] = {
        f"/etc/apt/sources.list.d/{src.distro}.sources": deb822(distro_repos(src, mirror))}
    extra = extra_repos(src.repositories)
    if extra:
        files["/etc/apt/sources.list.d/extra.sources"] = deb822(extra)
        for r, spec in zip(extra, src.repositories, strict=True):
            if r.image_key and spec.key is not None:
                files[r.image_key] = spec.key
    return files


class MirrorError(ImagepipeError):
    """The package mirror cannot be reached (network, DNS, proxy)."""


def source_entries(apt_dir: Path) -> Iterator[tuple[str, list[str]]]:
    """(uri, suites) of every enabled `deb` entry in sources.list(.d), one-line and deb822."""
    files = [apt_dir / "sources.list", *sorted((apt_dir / "sources.list.d").glob("*.list"))]
    for f in files:
        if not f.is_file():
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
            if len(words) >= 3 and words[0] == "deb":
                yield words[1], [words[2]]
    for f in sorted((apt_dir / "sources.list.d").glob("*.sources")):
        for stanza in re.split(r"\n\s*\n", f.read_text(errors="replace")):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for uri in fields.get("uris", "").split():
                yield uri, fields.get("suites", "").split()
