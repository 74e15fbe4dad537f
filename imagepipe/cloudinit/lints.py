"""Template lints over the cloud-config every VM of a template runs.

Why: the seal's lints read /etc/shadow and the image's network files, but the user-data and
network-config shipped with the template (baked seed, seed ISO, oVirt initialization script)
reach every clone too. A `password:` there gives every VM the same password; `ssh_pwauth: true`
opens SSH to it; a static address gives every VM the same IP. Each finding names file:line (the
marked YAML loader keeps lines). `seal.allow_password` / `seal.allow_static_ip` turn a finding
from an error into an audit entry of the manifest. The findings never quote the secret itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from imagepipe.errors import Problem
from imagepipe.recipe.yaml_marks import Doc, Key, parse, problem

PASSWORD_HINT = ("give VMs SSH keys (ssh_authorized_keys) and set passwords per VM, or allow it "
                 "explicitly with seal.allow_password: true")
STATIC_HINT = ("use DHCP (v1 `type: dhcp`, v2 `dhcp4: true`) and set addresses per VM, or allow "
               "it explicitly with seal.allow_static_ip: true")
LOCKED = ("!", "*", "!!", "x")  # hash values that never match a password
TRUE = (True, "true", "True", "yes", "on", 1)


def _doc(path: Path, name: str) -> Doc | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None  # the validator already reports an unreadable file
    doc, problems = parse(text, name)
    return None if problems or not isinstance(doc.data, dict) else doc


def _at(doc: Doc, key: Key, message: str, hint: str) -> Problem:
    return problem(doc.key_marks.get(key) or doc.mark(key), key, message, hint)


def lint_user_data(path: Path, name: str | None = None) -> list[Problem]:
    """Passwords every VM would get from this cloud-config (empty for scripts and MIME)."""
    name = name or str(path)
    try:
        head = path.read_text(encoding="utf-8").lstrip()[:13]
    except (OSError, UnicodeDecodeError):
        return []
    if not head.startswith("#cloud-config"):
        return []
    doc = _doc(path, name)
    return list(_passwords(doc)) if doc is not None else []


def _usable(value: Any) -> bool:
    return isinstance(value, str) and value.strip() not in ("", *LOCKED)


def _passwords(doc: Doc) -> Iterator[Problem]:
    d: dict[str, Any] = doc.data
    if _usable(d.get("password")):
        yield _at(doc, ("password",), "sets a password for the default user (every VM gets it)",
                  PASSWORD_HINT)
    if d.get("ssh_pwauth") in TRUE:
        yield _at(doc, ("ssh_pwauth",), "allows SSH password logins",
                  PASSWORD_HINT)
    yield from _chpasswd(doc, d.get("chpasswd"))
    users = d.get("users")
    for i, user in enumerate(users if isinstance(users, list) else ()):
        if not isinstance(user, dict):
            continue
        locked = user.get("lock_passwd") in TRUE and "lock_passwd" in user
        for key in ("passwd", "hashed_passwd", "plain_text_passwd"):
            if _usable(user.get(key)) and not (locked and key == "passwd"):
                yield _at(doc, ("users", i, key), f"user {user.get('name', '?')!r} gets a "
                          f"password ({key}) in every VM", PASSWORD_HINT)


def _chpasswd(doc: Doc, chp: Any) -> Iterator[Problem]:
    """`chpasswd.list` (text or list of `user:password`) and `chpasswd.users` (cloud-init 22.3+).

    RANDOM is allowed: cloud-init makes a different password for each VM."""
    if not isinstance(chp, dict):
        return
    entries = chp.get("list")
    if isinstance(entries, str):
        base = doc.mark(("chpasswd", "list"))
        # a block scalar (`list: |`) starts on the line after its key
        first = (base.line + (1 if "\n" in entries.rstrip("\n") or entries.endswith("\n")
                              else 0)) if base else None
        for n, line in enumerate(entries.splitlines()):
            user, _, pw = line.strip().partition(":")
            if pw and pw.upper() not in ("R", "RANDOM"):
                yield Problem(base.file if base else "", first + n if first else None, None,
                              "chpasswd.list", f"sets a password for {user!r} in every VM",
                              PASSWORD_HINT)
    elif isinstance(entries, list):
        for i, line in enumerate(entries):
            user, _, pw = str(line).partition(":")
            if pw and pw.upper() not in ("R", "RANDOM"):
                yield _at(doc, ("chpasswd", "list", i), f"sets a password for {user!r} in "
                          "every VM", PASSWORD_HINT)
    users = chp.get("users")
    for i, u in enumerate(users if isinstance(users, list) else ()):
        if isinstance(u, dict) and _usable(u.get("password")) and u.get("type") != "RANDOM" \
                and str(u.get("password")).upper() != "RANDOM":
            yield _at(doc, ("chpasswd", "users", i, "password"),
                      f"sets a password for {u.get('name', '?')!r} in every VM", PASSWORD_HINT)


def lint_network_config(path: Path, name: str | None = None) -> list[Problem]:
    """Static addresses in a NoCloud network-config (version 1 or 2, `network:` wrapper too)."""
    doc = _doc(path, name or str(path))
    if doc is None:
        return []
    d: dict[str, Any] = doc.data
    root: Key = ()
    if isinstance(d.get("network"), dict):
        d, root = d["network"], ("network",)
    if d.get("version") == 1 or isinstance(d.get("config"), list):
        return list(_v1(doc, d, root))
    return list(_v2(doc, d, root))


def _v1(doc: Doc, d: dict[str, Any], root: Key) -> Iterator[Problem]:
    for i, iface in enumerate(d.get("config") or ()):
        if not isinstance(iface, dict):
            continue
        for j, sub in enumerate(iface.get("subnets") or ()):
            if isinstance(sub, dict) and str(sub.get("type", "")).startswith("static"):
                yield _at(doc, (*root, "config", i, "subnets", j, "type"),
                          f"static address for {iface.get('name', '?')!r} (every VM gets it)",
                          STATIC_HINT)


def _v2(doc: Doc, d: dict[str, Any], root: Key) -> Iterator[Problem]:
    for kind in ("ethernets", "bonds", "bridges", "vlans", "wifis"):
        devices = d.get(kind)
        for dev, conf in (devices.items() if isinstance(devices, dict) else ()):
            if not isinstance(conf, dict):
                continue
            if conf.get("addresses"):
                yield _at(doc, (*root, kind, dev, "addresses"),
                          f"static address for {dev!r} (every VM gets it)", STATIC_HINT)
            elif conf.get("dhcp4") in (False, "false", "no", "off"):
                yield _at(doc, (*root, kind, dev, "dhcp4"),
                          f"dhcp4: false for {dev!r}: no address unless static", STATIC_HINT)


def cloud_config_lints(user_data: Path | None, network_config: Path | None, *,
                       display: Any = str) -> tuple[list[Problem], list[Problem]]:
    """(password findings, static-address findings) of a recipe's cloud_init files."""
    pw = lint_user_data(user_data, str(display(user_data))) if user_data else []
    net = (lint_network_config(network_config, str(display(network_config)))
           if network_config else [])
    return pw, net


def lint_record(user_data: Path | None, network_config: Path | None) -> dict[str, Any]:
    """The manifest's audit entry: what the allow flags let through (file:line, no secrets)."""
    pw, net = cloud_config_lints(user_data, network_config)
    return {"passed": True, "password_allowed": [str(p) for p in pw],
            "static_ip_allowed": [str(p) for p in net]}

