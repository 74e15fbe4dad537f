"""Template lints from the seed's rules: no fixed IP address, no default password.

Why after sealing: these read the files the clone will actually boot with. A static address in
a template gives every clone the same IP; a usable password hash lets anyone who knows the
template's password into every clone. Each finding names the file and line; the build fails
(LintError, exit 1) unless the recipe/flag allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from imagepipe.errors import LintError, Problem
from imagepipe.tools.guestfs import GuestSession

NOLOGIN_SHELLS = (
    "/usr/sbin/nologin",
    "/sbin/nologin",
    "/bin/false",
    "/usr/bin/false",
    "/bin/sync",
    "",
)


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for n, line in enumerate(text.splitlines(), 1):
        yield n, line.split("#", 1)[0].rstrip()


def lint_ifupdown(path: str, text: str) -> list[Problem]:
    return [
        Problem(
            path,
            n,
            None,
            "",
            f"static IPv4/IPv6 address: '{line.strip()}'",
            "use 'inet dhcp' (or pass --allow-static-ip)",
        )
        for n, line in _lines(text)
        if re.match(r"\s*iface\s+\S+\s+inet6?\s+static\b", line)
    ]


def lint_ifcfg(path: str, text: str) -> list[Problem]:
    values = {}
    for n, line in _lines(text):
        m = re.match(r"\s*([A-Z0-9_]+)=[\"']?([^\"']*)", line)
        if m:
            values[m.group(1)] = (n, m.group(2).strip().lower())
    proto = values.get("BOOTPROTO")
    if proto and proto[1] in ("static", "none") and any(k.startswith("IPADDR") for k in values):
        return [
            Problem(
                path,
                proto[0],
                None,
                "BOOTPROTO",
                f"static address (BOOTPROTO={proto[1]} with IPADDR)",
                "use BOOTPROTO=dhcp (or pass --allow-static-ip)",
            )
        ]
    return []


def lint_nmconnection(path: str, text: str) -> list[Problem]:
    problems, section = [], ""
    for n, line in _lines(text):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1]
        elif section in ("ipv4", "ipv6") and re.fullmatch(r"method\s*=\s*manual", s):
            problems.append(
                Problem(
                    path,
                    n,
                    None,
                    f"{section}.method",
                    "static address (method=manual)",
                    "use method=auto (or --allow-static-ip)",
                )
            )
    return problems


def lint_netplan(path: str, text: str) -> list[Problem]:
    """netplan (and cloud-init network-config v2): `addresses:` or `dhcp4: false` on a device;
    v1 `type: static` subnets."""
    problems = []
    for n, line in _lines(text):
        s = line.strip()
        if re.match(r"-?\s*addresses\s*:", s) and "nameservers" not in _parent(text, n):
            problems.append(
                Problem(
                    path,
                    n,
                    None,
                    "addresses",
                    "static address",
                    "use dhcp4: true (or pass --allow-static-ip)",
                )
            )
        elif re.fullmatch(r"dhcp[46]\s*:\s*(false|no|off)", s):
            problems.append(
                Problem(
                    path,
                    n,
                    None,
                    s.split(":")[0],
                    "DHCP turned off",
                    "use dhcp4: true (or pass --allow-static-ip)",
                )
            )
        elif re.fullmatch(r"-?\s*type\s*:\s*static6?", s):
            problems.append(
                Problem(
                    path,
                    n,
                    None,
                    "type",
                    "static subnet (network-config v1)",
                    "use type: dhcp (or pass --allow-static-ip)",
                )
            )
    return problems


def _parent(text: str, lineno: int) -> str:
    """The nearest less-indented key above line `lineno` (to skip nameservers.addresses)."""
    lines = text.splitlines()
    indent = len(lines[lineno - 1]) - len(lines[lineno - 1].lstrip())
    for line in reversed(lines[: lineno - 1]):
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            return line.strip()
    return ""


def lint_shadow(path: str, shadow: str, passwd: str) -> list[Problem]:
    shells = {f[0]: f[6] for f in (ln.split(":") for ln in passwd.splitlines()) if len(f) > 6}
    problems = []
    for n, line in enumerate(shadow.splitlines(), 1):
        fields = line.split(":")
        if len(fields) < 2 or not fields[0]:
            continue
        user, hashed = fields[0], fields[1]
        login = user == "root" or shells.get(user, "") not in NOLOGIN_SHELLS
        if not login or hashed.startswith(("!", "*")):
            continue
        what = (
            "an EMPTY password (login without password)"
            if hashed == ""
            else "a usable password hash"
        )
        problems.append(
            Problem(
                path,
                n,
                None,
                user,
                f"user '{user}' has {what}",
                "lock it (passwd -l) and use SSH keys via cloud-init (or pass --allow-password)",
            )
        )
    return problems


NETWORK_SOURCES = (
    ("/etc/network/interfaces", lint_ifupdown),
    ("/etc/network/interfaces.d/*", lint_ifupdown),
    ("/etc/sysconfig/network-scripts/ifcfg-*", lint_ifcfg),
    ("/etc/NetworkManager/system-connections/*", lint_nmconnection),
    ("/etc/netplan/*.yaml", lint_netplan),
    ("/etc/netplan/*.yml", lint_netplan),
    ("/var/lib/cloud/seed/nocloud/network-config", lint_netplan),
)


@dataclass
class LintReport:
    """Lints passed; the findings the recipe/flags allowed; with a recipe, the cloud-config's
    lint record (imagepipe.cloudinit.lints)."""

    static_ip_allowed: list[str] = field(default_factory=list)
    password_allowed: list[str] = field(default_factory=list)
    cloud_config: dict[str, Any] | None = None
    passed: bool = True

    def to_json(self) -> dict[str, Any]:
        """The manifest's `lints` record."""
        record: dict[str, Any] = {
            "passed": self.passed,
            "static_ip_allowed": self.static_ip_allowed,
            "password_allowed": self.password_allowed,
        }
        if self.cloud_config is not None:
            record["cloud_config"] = self.cloud_config
        return record


def run_lints(
    session: GuestSession, *, allow_static_ip: bool = False, allow_password: bool = False
) -> LintReport:
    """Raise LintError with every finding not allowed; return what passed (and was allowed)."""
    s = session
    static: list[Problem] = []
    for pattern, fn in NETWORK_SOURCES:
        for path in s.glob(pattern):
            if s.is_file(path):
                static += fn(path, s.read_text(path))
    password: list[Problem] = []
    if s.is_file("/etc/shadow"):
        passwd = s.read_text("/etc/passwd") if s.is_file("/etc/passwd") else ""
        password = lint_shadow("/etc/shadow", s.read_text("/etc/shadow"), passwd)
    blocking = ([] if allow_static_ip else static) + ([] if allow_password else password)
    if blocking:
        raise LintError(
            blocking,
            "the template would be unsafe to clone; fix the image or "
            "allow it explicitly (seal.allow_static_ip / seal.allow_password)",
        )
    return LintReport([str(p) for p in static], [str(p) for p in password])
