"""Before a build: can the recipe's kernel drive the hardware of every output's platform?

Why read the package: the kernel's `/boot/config-*` is the only honest answer to "is AHCI /
E1000 / PVSCSI built", and it is in the kernel .deb on the mirror before anything is built.
Only the start of the .deb is read: dpkg puts `./boot/config-*` right after `System.map` at the
head of data.tar, so streaming the HTTP response through the ar and tar readers stops after
~60 KB instead of a 30-100 MB download. The Packages index is cached by its digest (from the
suite's InRelease) and each config by package and version, under STORE/kernel-configs.
An unreachable mirror is a warning, not silence and not an error: validate works offline.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imagepipe.errors import ImagepipeError, Problem
from imagepipe.recipe.model import Recipe

ARCH = "amd64"
_INDEX = f"main/binary-{ARCH}/Packages.xz"
_CONFIG_LINE = re.compile(r"^CONFIG_([A-Za-z0-9_]+)=(.*)$", re.M)


_UNREACHABLE: dict[str, str] = {}  # mirror -> why, for the rest of this process


class KernelFetchError(ImagepipeError):
    """The kernel package or its index could not be read from the mirror."""


class MirrorUnreachable(KernelFetchError):
    """No answer at all (DNS, connection, timeout): not asked again in this process."""


@dataclass(frozen=True)
class KernelConfig:
    package: str  # the versioned package, e.g. linux-image-6.1.0-50-cloud-amd64
    version: str
    options: dict[str, str]  # "SATA_AHCI" -> "y" | "m" | ...


def parse_config(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _CONFIG_LINE.findall(text)}


def _get(url: str, timeout: float, stream: bool = False) -> Any:
    import requests

    try:  # a short connect timeout: an offline host must not stall validate
        r = requests.get(url, timeout=(min(5.0, timeout), timeout), stream=stream)
    except requests.RequestException as exc:
        raise MirrorUnreachable(f"{url}: {type(exc).__name__}: {exc}") from None
    if r.status_code != 200:
        r.close()
        raise KernelFetchError(f"{url}: HTTP {r.status_code}")
    return r


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line[0].isspace() and ":" in line:
                k, _, v = line.partition(":")
                fields[k] = v.strip()
        if fields:
            yield fields


def index_digest(mirror: str, suite: str, timeout: float) -> str:
    """The sha256 InRelease gives for the suite's main Packages.xz (small, fetched each time:
    it changes when the suite does)."""
    release = _get(f"{mirror}/dists/{suite}/InRelease", timeout).text
    m = re.search(rf"^ ([0-9a-f]{{64}})\s+\d+\s+{re.escape(_INDEX)}$", release, re.M)
    if m is None:
        raise KernelFetchError(f"{mirror}/dists/{suite}/InRelease lists no {_INDEX}")
    return m.group(1)


def packages_index(mirror: str, suite: str, digest: str, timeout: float) -> str:
    """The suite's main Packages index for amd64, verified against `digest`."""
    data = _get(f"{mirror}/dists/{suite}/{_INDEX}", timeout).content
    if hashlib.sha256(data).hexdigest() != digest:
        raise KernelFetchError(f"{mirror}/dists/{suite}/{_INDEX}: digest mismatch")
    return lzma.decompress(data).decode("utf-8", "replace")


def resolve_kernel(index: str, package: str) -> dict[str, str]:
    """The stanza of the real kernel behind `package` (a meta package depends on it)."""
    by_name: dict[str, dict[str, str]] = {}
    for st in _stanzas(index):
        name = st.get("Package", "")
        if name.startswith("linux-image-"):
            by_name[name] = st
    seen: set[str] = set()
    while package not in seen:
        seen.add(package)
        found = by_name.get(package)
        if found is None:
            raise KernelFetchError(f"kernel package {package} is not in the index")
        deps = [d.strip().split()[0] for d in found.get("Depends", "").split(",") if d.strip()]
        nxt = next((d for d in deps if d.startswith("linux-image-") and d in by_name), None)
        if nxt is None:
            return found  # no kernel dependency: the real kernel package
        package = nxt
    raise KernelFetchError(f"kernel package {package}: dependency loop")


def read_ar_member_stream(f: IO[bytes], prefix: str) -> IO[bytes]:
    """Advance `f` (a .deb stream) to the ar member whose name starts with `prefix`."""
    if f.read(8) != b"!<arch>\n":
        raise KernelFetchError("not a .deb (ar archive)")
    while True:
        header = f.read(60)
        if len(header) < 60:
            raise KernelFetchError(f"no {prefix}* member in the .deb")
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith(prefix):
            return f
        f.read(size + (size & 1))


def config_from_deb_stream(f: IO[bytes]) -> str:
    """`./boot/config-*` of a kernel .deb read as a stream (stops as soon as it is found)."""
    data = read_ar_member_stream(f, "data.tar")
    with tarfile.open(fileobj=data, mode="r|*") as tar:
        for member in tar:
            if re.fullmatch(r"(\./)?boot/config-.*", member.name) and member.isfile():
                got = tar.extractfile(member)
                assert got is not None
                return got.read().decode("utf-8", "replace")
    raise KernelFetchError("the kernel package has no /boot/config-*")


def kernel_config(mirror: str, suite: str, package: str, cache: Path,
                  timeout: float = 20) -> KernelConfig:
    """The config of the kernel `package` resolves to on `mirror`/`suite` (cached)."""
    digest = index_digest(mirror, suite, timeout)
    resolved = cache / "resolved" / f"{digest[:32]}-{package}.json"
    if resolved.is_file():
        st = json.loads(resolved.read_text())
    else:
        st = resolve_kernel(packages_index(mirror, suite, digest, timeout), package)
        _write(resolved, json.dumps(st))
    real, version = st["Package"], st.get("Version", "")
    path = cache / f"{real}_{version.replace(':', '%3a')}.config"
    if not path.is_file():
        r = _get(f"{mirror}/{st['Filename']}", timeout, stream=True)
        try:
            text = config_from_deb_stream(r.raw)
        except (tarfile.TarError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise KernelFetchError(f"{st['Filename']}: {exc}") from None
        finally:
            r.close()
        _write(path, text)
    return KernelConfig(real, version, parse_config(path.read_text()))


def _write(path: Path, text: str) -> None:
    """Atomically (several validates may run at once and share the cache)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def check_recipe(recipe: Recipe, cache: Path, *,
                 timeout: float = 20) -> tuple[list[Problem], list[str]]:
    """(problems, warnings): every output whose hardware the recipe's kernel cannot drive."""
    from imagepipe.bases import bootstrap
    from imagepipe.convert import hardware

    src = recipe.source.bootstrap
    if src is None:
        return [], []  # image/iso sources bring their own kernel: nothing to read beforehand
    targets = [(i, o, hardware.chosen(o.preset, o.hardware)) for i, o in enumerate(recipe.outputs)]
    targets = [t for t in targets if t[2]]
    if not targets:
        return [], []
    package = bootstrap.kernel_package(src)
    mirror = bootstrap.resolve_mirror(src)
    try:
        if mirror in _UNREACHABLE:
            raise MirrorUnreachable(_UNREACHABLE[mirror])
        cfg = kernel_config(mirror, src.suite, package, cache, timeout)
    except (KernelFetchError, OSError) as exc:
        if isinstance(exc, MirrorUnreachable | OSError):  # `validate a.yaml b.yaml`: once
            _UNREACHABLE.setdefault(mirror, str(exc))
        return [], [f"cannot check that {package} drives each output's hardware: the mirror "
                    f"{mirror} is unreachable or incomplete ({exc}); not checked"]
    marks = _marks(recipe)
    problems = []
    for i, out, profile in targets:
        assert profile is not None
        lacks = hardware.missing(profile, cfg.options)
        if not lacks:
            continue
        options = hardware.preset_hardware(out.preset)
        fixes = [p for p in options if p != profile and not hardware.missing(p, cfg.options)]
        other = ("source.bootstrap.kernel: generic" if package != bootstrap.KERNELS.get(
            src.distro, {}).get("generic") else "a kernel package built with them")
        hint = (f"set outputs[{i}].hardware: {fixes[0]} (a VM setting the platform offers), "
                "or " if fixes else "") + f"use {other}"
        key: tuple[str | int, ...] = ("outputs", i, "hardware" if out.hardware else "preset")
        where = marks(key)
        problems.append(Problem(
            where[0] if where else str(recipe.path), where[1] if where else None,
            where[2] if where else None, f"outputs[{i}]",
            f"{cfg.package} {cfg.version} cannot drive {out.preset or out.format}'s hardware "
            f"{profile}: no {', '.join(lacks)}", hint))
    return problems, []


def _marks(recipe: Recipe) -> Any:
    from imagepipe.recipe.load import load_document
    from imagepipe.recipe.rules import _display

    try:
        doc, _ = load_document(_display(recipe.path))
    except (OSError, ImagepipeError):
        doc = None

    def mark(key: tuple[str | int, ...]) -> tuple[str, int, int] | None:
        m = doc.mark(key) if doc is not None else None
        return (m.file, m.line, m.col) if m is not None else None

    return mark


def check_or_warn(recipe: Recipe, store: Path | None = None) -> list[Problem]:
    """check_recipe with the store's cache; warnings printed, problems returned (the CLI
    turns them into exit 2 with the other recipe problems)."""
    from imagepipe import ui
    from imagepipe.cache_root import default_root

    if os.environ.get("IMAGEPIPE_KERNEL_CHECK", "on") == "off":
        return []
    cache = (store or default_root()) / "kernel-configs"
    problems, warnings = check_recipe(recipe, cache)
    for w in warnings:
        ui.warn(f"{recipe.path.name}: {w}")
    return problems
