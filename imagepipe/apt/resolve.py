"""Resolve first, then build: the exact package set of a bootstrap, from current apt indices.

Why apt with a private state directory, not mmdebstrap's simulate mode: `mmdebstrap
--simulate` downloads every index into a fresh temp dir on each run (~9 MB for bookworm main,
seconds to minutes), so a nightly freshness check of every recipe would cost that each time.
Here the indices live in the store (`STORE/apt/lists`, shared by all recipes and builds) and are
refetched only when a repository's InRelease changed (its sha256; an ETag or Last-Modified is
sent back when the server gives one). `apt-get --simulate install` against those indices and an
empty dpkg status then gives the full closure (name, version, arch) in ~2 s, with apt's own
solver, the one mmdebstrap runs. The bootstrap installs exactly that set (every package pinned
as `name=version`), and the installed set is checked against it, so key and content agree.

Within one `build --all` each repository's InRelease is checked once: the batch sets
IMAGEPIPE_RESOLVE_BATCH and a repository checked in the same batch is not asked again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.apt.sources import MirrorError, Repo
from imagepipe.errors import InputError

BATCH_ENV = "IMAGEPIPE_RESOLVE_BATCH"
# mmdebstrap's variants as apt patterns (see mmdebstrap(1), --variant)
VARIANT_PATTERNS: dict[str, tuple[str, ...]] = {
    "extract": (), "custom": (),
    "essential": ("?essential",),
    "apt": ("?essential", "apt"),
    "required": ("?essential", "apt", "?priority(required)"),
    "minbase": ("?essential", "apt", "?priority(required)"),
    "buildd": ("?essential", "apt", "?priority(required)", "build-essential"),
    "important": ("?essential", "apt", "?priority(required)", "?priority(important)"),
    "debootstrap": ("?essential", "apt", "?priority(required)", "?priority(important)"),
    "standard": ("?essential", "apt", "?priority(required)", "?priority(important)",
                 "?priority(standard)"),
}
_INST = re.compile(r"^Inst (\S+) \((\S+) (.*?) \[([^\]]+)\]\)", re.M)


@dataclass
class Settings:
    """Where the indices live (the store) and whether the network may be used (`--offline`):
    set once per build by `configure`."""

    store_root: Path | None = None  # None: the default store
    offline: bool = False


settings = Settings()


def configure(store_root: Path | None, offline: bool = False) -> None:
    settings.store_root = store_root
    settings.offline = offline


def apt_state() -> AptState:
    from imagepipe.cache_root import default_root

    root = (settings.store_root or default_root()).expanduser().absolute()
    return AptState(root / "apt")


class ResolveError(MirrorError):
    """The package set cannot be resolved (indices unreachable, apt failed)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    arch: str

    def pin(self) -> str:
        return f"{self.name}={self.version}"


@dataclass
class Resolved:
    """A resolved package set and how it was obtained."""

    packages: list[Package]
    repos: list[str]
    resolved_at: str
    fetch_seconds: float = 0.0
    resolve_seconds: float = 0.0
    offline: bool = False
    fetched: list[str] = field(default_factory=list)  # repositories whose indices changed

    def as_map(self) -> dict[str, str]:
        """name -> "version arch": the key material (`--explain` diffs it per package)."""
        return {p.name: f"{p.version} {p.arch}" for p in self.packages}

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_map(), sort_keys=True).encode()).hexdigest()


class AptState:
    """The private apt tree under `root` (STORE/apt): lists, keys, one lock."""

    def __init__(self, root: Path, arch: str = "amd64") -> None:
        self.root = root
        self.arch = arch
        self.lists = root / "lists"
        self.keys = root / "keys"
        self.meta = root / "repos"
        self.sets = root / "resolved"
        for d in (self.lists / "partial", self.keys, self.meta, self.sets, root / "empty",
                  root / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        if not (root / "status").exists():  # never touched again: its mtime is in pkgcache
            (root / "status").touch()

    @contextlib.contextmanager
    def lock(self, shared: bool = False) -> Iterator[None]:
        """Exclusive while indices are rewritten, shared while apt reads them."""
        with open(self.root / "imagepipe.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def host_key(self, path: str | None) -> str | None:
        """apt reads armoured keys only from files named *.asc: keep a copy named so."""
        if path is None or path.startswith("/usr/share/keyrings/"):
            return path
        data = Path(path).read_bytes()
        ext = ".gpg" if path.endswith(".gpg") and not data.startswith(b"-----BEGIN") else ".asc"
        dest = self.keys / f"{hashlib.sha256(data).hexdigest()[:16]}{ext}"
        if not dest.exists():
            tmp = dest.with_suffix(".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, dest)
        return str(dest)

    def host_repo(self, repo: Repo) -> Repo:
        from dataclasses import replace

        return replace(repo, signed_by=self.host_key(repo.signed_by))

    def apt_options(self, source_list: Path) -> list[str]:
        empty = self.root / "empty"
        opts = {"Dir::State": self.root, "Dir::State::lists": self.lists,
                "Dir::State::status": self.root / "status", "Dir::Cache": self.root / "cache",
                "Dir::Etc::SourceList": source_list, "Dir::Etc::SourceParts": empty,
                "Dir::Etc::Preferences": empty / "none",
                "Dir::Etc::PreferencesParts": empty, "Dir::Etc::Parts": empty,
                "APT::Architecture": self.arch, "APT::Architectures": self.arch,
                "Acquire::Languages": "none", "APT::Get::List-Cleanup": "0",
                "Debug::NoLocking": "1", "APT::Install-Recommends": "0",
                "Dir::Cache::pkgcache": "pkgcache.bin",
                "Dir::Cache::srcpkgcache": "srcpkgcache.bin"}
        return [a for k, v in opts.items() for a in ("-o", f"{k}={v}")]

    # -- indices ---------------------------------------------------------------------------
    def refresh(self, repos: list[Repo], timeout: float = 120) -> tuple[float, list[str]]:
        """Bring every repository's indices up to date; (seconds spent, repos refetched)."""
        start = time.monotonic()
        fetched = []
        batch = os.environ.get(BATCH_ENV, "")
        with self.lock():
            for repo in repos:
                meta_path = self.meta / f"{_rid(repo)}.json"
                meta = _read_json(meta_path)
                if batch and meta.get("batch") == batch and meta.get("ok"):
                    continue  # checked in this build --all already
                release, headers = _fetch_release(repo, meta, timeout)
                digest = hashlib.sha256(release).hexdigest() if release is not None else None
                if digest is None or digest != meta.get("release") or not meta.get("ok"):
                    self._update(repo, timeout)
                    fetched.append(repo.id)
                    if digest is None:  # unchanged (304): keep the last digest
                        digest = meta.get("release")
                meta.update({"repo": repo.id, "release": digest, "batch": batch, "ok": True,
                             "checked": time.time(), **headers})
                _write_json(meta_path, meta)
        return time.monotonic() - start, fetched

    def _update(self, repo: Repo, timeout: float) -> None:
        from imagepipe.tools.run import run

        src = self.root / f"sources-{_rid(repo)}.list"
        src.write_text(self.host_repo(repo).line() + "\n")
        res = run(["apt-get", *self.apt_options(src), "update"], timeout=timeout, check=False)
        out = res.stdout + res.stderr
        if res.returncode != 0 or re.search(r"^(E|W): (Failed|The repository|GPG|.*NO_PUBKEY"
                                            r"|.*not signed)", out, re.M):
            raise ResolveError(f"cannot read the package indices of {repo.id}",
                               _last_lines(out) + "; check the URL, suite and key (or use "
                               "--offline to reuse the last resolved package set)")

    # -- resolving -------------------------------------------------------------------------
    def simulate(self, repos: list[Repo], variant: str, packages: list[str]) -> list[Package]:
        """The full package set `apt-get install` would install into an empty system."""
        from imagepipe.tools.run import run

        text = "".join(self.host_repo(r).line() + "\n" for r in repos)
        # One file per repository set, rewritten only when it changes: apt keeps its parsed
        # cache (pkgcache.bin) valid only while the sources and status files are untouched.
        src = self.root / f"sources-set-{hashlib.sha256(text.encode()).hexdigest()[:16]}.list"
        if not src.is_file() or src.read_text() != text:
            tmp = src.with_name(f".{src.name}.{os.getpid()}")
            tmp.write_text(text)
            os.replace(tmp, src)
        argv = ["apt-get", *self.apt_options(src), "--simulate", "--quiet", "install",
                *VARIANT_PATTERNS.get(variant, ()), *packages]
        with self.lock(shared=True):
            res = run(argv, timeout=300, check=False)
        if res.returncode != 0:
            from imagepipe.apt.sources import MISSING_PATTERNS

            out = res.stdout + res.stderr
            missing = list(dict.fromkeys(m for rx in MISSING_PATTERNS for m in rx.findall(out)))
            if missing:
                raise InputError(f"package{'s' if len(missing) > 1 else ''} not found in "
                                 f"{', '.join(r.suite for r in repos)}: {', '.join(missing)}",
                                 "check source.bootstrap.packages in the recipe")
            raise ResolveError("apt could not resolve the package set", _last_lines(out))
        pkgs = {m.group(1): Package(m.group(1), m.group(2), m.group(4))
                for m in _INST.finditer(res.stdout)}
        return sorted(pkgs.values(), key=lambda p: p.name)

    def save_set(self, name: str, resolved: Resolved) -> None:
        _write_json(self.sets / f"{name}.json", {
            "packages": [p.__dict__ for p in resolved.packages], "repos": resolved.repos,
            "resolved_at": resolved.resolved_at})

    def load_set(self, name: str) -> Resolved | None:
        data = _read_json(self.sets / f"{name}.json")
        if not data.get("packages"):
            return None
        return Resolved([Package(**p) for p in data["packages"]], data.get("repos", []),
                        data.get("resolved_at", "?"), offline=True)


def resolve(state: AptState, repos: list[Repo], variant: str, packages: list[str], *,
            offline: bool = False) -> Resolved:
    """The package set for these repositories, variant and packages (`offline`: the last one
    resolved for exactly this input, never the network)."""
    name = hashlib.sha256(json.dumps([[r.line() for r in repos], variant, packages])
                          .encode()).hexdigest()[:24]
    if offline:
        last = state.load_set(name)
        if last is None:
            raise InputError("--offline: no package set was resolved for this bootstrap yet",
                             "run the build once online (it resolves and remembers the set)")
        ui.info(f"offline: reusing the package set resolved at {last.resolved_at} "
                f"({len(last.packages)} packages); the mirror was not asked")
        return last
    fetch_s, fetched = state.refresh(repos)
    start = time.monotonic()
    pkgs = state.simulate(repos, variant, packages)
    out = Resolved(pkgs, [r.id for r in repos],
                   time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), fetch_s,
                   time.monotonic() - start, fetched=fetched)
    state.save_set(name, out)
    return out


def _rid(repo: Repo) -> str:
    return hashlib.sha256(repo.id.encode()).hexdigest()[:16]


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def _last_lines(text: str, n: int = 3) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.startswith(("E:", "W:", "Err"))]
    return " | ".join((lines or text.strip().splitlines() or ["no output"])[-n:])


def _fetch_release(repo: Repo, meta: dict[str, Any],
                   timeout: float) -> tuple[bytes | None, dict[str, str]]:
    """The repository's InRelease (or Release) bytes; None when the server said 304."""
    if repo.uri.startswith("file:"):
        base = Path(repo.uri.removeprefix("file://").removeprefix("file:"))
        for name in ("InRelease", "Release"):
            p = base / "dists" / repo.suite / name
            if p.is_file():
                return p.read_bytes(), {}
        raise InputError(f"no InRelease or Release in {base}/dists/{repo.suite}",
                         "check the repository URL and suite")
    import requests

    cond = {}
    if meta.get("etag"):
        cond["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        cond["If-Modified-Since"] = meta["last_modified"]
    last_error = ""
    for name in ("InRelease", "Release"):
        url = f"{repo.uri}/dists/{repo.suite}/{name}"
        try:
            r = requests.get(url, headers=cond, timeout=(10, timeout))
        except requests.RequestException as exc:
            raise ResolveError(f"package repository {repo.uri} is unreachable: "
                               f"{type(exc).__name__}",
                               "check the network, or build with --offline to reuse the "
                               "last resolved package set") from exc
        if r.status_code == 304:
            return None, {}
        if r.status_code == 200:
            headers = {k: v for k, v in (("etag", r.headers.get("ETag")),
                                         ("last_modified", r.headers.get("Last-Modified")))
                       if v}
            return r.content, headers
        last_error = f"{url}: HTTP {r.status_code}"
    raise InputError(f"suite {repo.suite!r} not found on {repo.uri} ({last_error})",
                     "check the suite and URL of the repository in the recipe")


def clear(root: Path) -> None:
    """Forget every index and resolved set (tests, `cache` maintenance)."""
    shutil.rmtree(root, ignore_errors=True)
