"""Where the engine is and how we log in: flags > environment > profile file.

Why this order: a flag is the most explicit statement of intent, the environment is how CI
injects secrets (OVIRT_PASSWORD_FILE preferred: a password in the environment is visible to
other processes of the same user), and ~/.config/imagepipe/ovirt.yaml keeps the rest out of
every command line. Passwords are never printed: `EngineConfig.__repr__` hides them, and no
option takes a password value on the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe.errors import ImagepipeError, InputError

PROFILE_FILE = Path("~/.config/imagepipe/ovirt.yaml")
PROFILE_KEYS = {"url", "username", "password_file", "ca_file", "insecure"}


class EngineError(ImagepipeError):
    """The engine refused or failed an operation; the message carries the engine's reason."""


@dataclass(frozen=True)
class EngineConfig:
    url: str
    username: str
    password: str = field(repr=False)
    ca_file: Path | None = None
    insecure: bool = False

    @property
    def api_url(self) -> str:
        base = self.url.rstrip("/")
        if base.endswith("/ovirt-engine/api"):
            return base
        return base + "/ovirt-engine/api"

    @property
    def base_url(self) -> str:
        return self.api_url[: -len("/ovirt-engine/api")]


def _profile(path: Path, name: str | None) -> dict[str, Any]:
    """Read a profile: either flat keys, or `profiles: {name: {...}}` with `default: name`."""
    import yaml

    path = path.expanduser()
    if not path.exists():
        if name:
            raise InputError(f"{path}: no such profile file", "create it or drop --profile")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of settings")
    if "profiles" in data:
        profiles = data["profiles"] or {}
        chosen = name or data.get("default")
        if chosen is None:
            return {}
        if chosen not in profiles:
            raise InputError(f"{path}: profiles: no profile named {chosen!r}",
                             f"known: {', '.join(sorted(profiles)) or 'none'}")
        data = profiles[chosen] or {}
    elif name:
        raise InputError(f"{path}: has no `profiles:` mapping, so --profile {name} is unknown")
    unknown = sorted(set(data) - PROFILE_KEYS)
    if unknown:
        raise InputError(f"{path}: unknown keys {unknown}",
                         f"allowed: {', '.join(sorted(PROFILE_KEYS))}; passwords go in a "
                         "password_file, never in this file")
    return dict(data)


def resolve_config(*, url: str | None = None, username: str | None = None,
                   password_file: Path | None = None, ca_file: Path | None = None,
                   insecure: bool = False, profile: str | None = None,
                   env: Mapping[str, str] | None = None,
                   profile_path: Path = PROFILE_FILE) -> EngineConfig:
    """Merge flags, environment and profile into one EngineConfig (InputError when incomplete)."""
    env = os.environ if env is None else env
    prof = _profile(Path(env.get("IMAGEPIPE_OVIRT_PROFILE_FILE", str(profile_path))), profile)
    url = url or env.get("OVIRT_URL") or prof.get("url")
    username = username or env.get("OVIRT_USERNAME") or prof.get("username") or "admin@internal"
    if not url:
        raise InputError("no engine URL given",
                         "pass --engine https://engine.example.com, set OVIRT_URL, or add "
                         f"`url:` to {profile_path}")
    if not url.lower().startswith("https://"):  # http:// would send the password in clear
        raise InputError(f"engine URL must start with https://: {url!r}",
                         "the engine's API and SSO are served over TLS; use https://ENGINE")
    pw_file = password_file or env.get("OVIRT_PASSWORD_FILE") or prof.get("password_file")
    if pw_file:
        password = read_password_file(Path(str(pw_file)).expanduser())
    elif env.get("OVIRT_PASSWORD"):
        password = env["OVIRT_PASSWORD"]
    else:
        raise InputError("no engine password given",
                         "pass --password-file FILE or set OVIRT_PASSWORD_FILE")
    ca = ca_file or env.get("OVIRT_CA_FILE") or prof.get("ca_file")
    ca_path = Path(str(ca)).expanduser() if ca else None
    if ca_path is not None and not ca_path.is_file():
        raise InputError(f"CA file not found: {ca_path}",
                         "download it from https://ENGINE/ovirt-engine/services/pki-resource"
                         "?resource=ca-certificate&format=X509-PEM-CA")
    return EngineConfig(url=url, username=username, password=password, ca_file=ca_path,
                        insecure=bool(insecure or prof.get("insecure") is True))


def read_password_file(path: Path) -> str:
    """The password in `path`, which must be a regular file readable by its owner only (mode
    0600 or 0400) and hold a non-empty first line. Why so strict: a 0644 password file is a
    password every local user can read, and an empty one fails only at the engine, later and
    less clearly (as ssh does with private keys)."""
    import stat

    from imagepipe.limits import MAX_PASSWORD_FILE_BYTES

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"password file {path} is not a regular file")
        if st.st_mode & 0o077:
            raise InputError(f"password file {path} has mode {stat.S_IMODE(st.st_mode):04o}: "
                             "other users may read it", f"chmod 600 {path}")
        if st.st_size > MAX_PASSWORD_FILE_BYTES:
            raise InputError(f"password file {path} is {st.st_size} bytes: not a password file",
                             "put only the password in it")
        password = path.read_text().split("\n", 1)[0].rstrip("\r")
    except OSError as exc:
        raise InputError(f"cannot read the password file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(f"password file {path} is not UTF-8 text") from None
    if not password:
        raise InputError(f"password file {path} is empty",
                         "write the engine password on its first line")
    return password


def describe_sdk_error(exc: BaseException) -> str:
    """The engine's own words: fault detail without the Java list brackets, else the reason."""
    fault = getattr(exc, "fault", None)
    if fault is not None:
        detail = (fault.detail or "").strip()
        if detail.startswith("[") and detail.endswith("]"):
            detail = detail[1:-1]
        text = detail or fault.reason or str(exc)
        code = getattr(exc, "code", None)
        return f"{text} (HTTP {code})" if code else text
    return str(exc)


class PassThrough(Exception):  # noqa: N818 - a marker base, not an error of its own
    """Base of imagepipe's own signals raised inside an `engine_errors` block (a transfer the
    caller may retry): passed through unchanged, never reported as an unreadable reply."""


@contextmanager
def engine_errors(doing: str) -> Iterator[None]:
    """Turn SDK exceptions into EngineError carrying what we were doing and the engine's reason."""
    import ovirtsdk4 as sdk

    try:
        yield
    except sdk.AuthError as exc:
        raise EngineError(f"{doing}: authentication failed: {describe_sdk_error(exc)}",
                          "check --username and the password file") from None
    except sdk.ConnectionError as exc:
        raise EngineError(f"{doing}: cannot reach the engine: {exc}",
                          "check --engine and --ca-file") from None
    except sdk.Error as exc:
        text = describe_sdk_error(exc)
        if "SSL" in text or "certificate" in text:
            raise EngineError(f"{doing}: TLS verification failed: {text}",
                              "pass the engine's CA with --ca-file (or OVIRT_CA_FILE)") from None
        raise EngineError(f"{doing}: {text}") from None
    except (ImagepipeError, PassThrough, KeyboardInterrupt):
        raise
    except Exception as exc:  # the SDK's parsers fail oddly on a reply with no/garbled body
        raise EngineError(f"{doing}: the engine sent a reply imagepipe cannot read "
                          f"({type(exc).__name__}: {exc or 'empty'})",
                          "check the engine's logs (a proxy or a failing engine?)") from None


@contextmanager
def connect(cfg: EngineConfig) -> Iterator[Any]:
    """An authenticated ovirtsdk4.Connection, closed (token revoked) on exit."""
    import ovirtsdk4 as sdk

    con = sdk.Connection(url=cfg.api_url, username=cfg.username, password=cfg.password,
                         ca_file=str(cfg.ca_file) if cfg.ca_file else None,
                         insecure=cfg.insecure, timeout=120)
    try:
        with engine_errors("logging in to the engine"):
            con.authenticate()
        yield con
    finally:
        try:
            con.close()
        except Exception:  # logging out is best effort; the token expires anyway
            pass
