"""Cross-field recipe rules: what a per-key type check cannot see.

Each rule reads the converted data (bad keys already left out and reported) and reports
located problems through the Checker, so one run lists every mistake. They run before any
download or stage: a missing checksum, an output whose preset contradicts its format, a file
that escapes the recipe directory or a broken cloud-config must never cost a build.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagepipe.errors import Problem
from imagepipe.recipe import firmware_rules
from imagepipe.recipe.schema import NAME_PATTERN, VERSION_PATTERN

if TYPE_CHECKING:
    from imagepipe.recipe.validate import Checker

SOURCES = ("image", "iso", "bootstrap")


def apply(c: Checker, d: dict[str, Any], recipe_path: Path) -> None:
    _name(c, d, recipe_path)
    _image_version(c, d)
    _source(c, d)
    _kernel(c, d)
    _outputs(c, d)
    _customize(c, d)
    _repositories(c, d)
    _seal(c, d)
    _confined_files(c, d)
    _cloud_init(c, d)
    firmware_rules.apply(c, d)


def _name(c: Checker, d: dict[str, Any], recipe_path: Path) -> None:
    if "name" in d or "name" in (c.doc.data or {}):
        return
    stem = recipe_path.name.removesuffix(".yaml").removesuffix(".yml")
    if re.match(NAME_PATTERN, stem):
        d["name"] = stem
    else:
        c.report((), f"no name: and the file name {stem!r} cannot serve as one",
                 "add name: with letters, digits, '.', '_' and '-'")


def _image_version(c: Checker, d: dict[str, Any]) -> None:
    """After `${...}` expansion (so not in the JSON Schema): one safe path component, since
    it names DIR/NAME/VERSION in the template store."""
    version = d.get("image_version")
    if isinstance(version, str) and version and (
            not re.fullmatch(VERSION_PATTERN.strip("^$"), version) or len(version) > 200):
        c.report(("image_version",), f"{version!r} is not a safe version directory name",
                 "one name of letters, digits, '.', '_', '+', '~' and '-', not starting with "
                 "'.' and without '/'")
        d.pop("image_version")


def _source(c: Checker, d: dict[str, Any]) -> None:
    src = d.get("source")
    raw = (c.doc.data or {}).get("source")
    if not isinstance(src, dict) or not isinstance(raw, dict):
        return
    given = [k for k in SOURCES if raw.get(k) is not None]
    if not given:
        c.report(("source",), "needs exactly one of image, iso, bootstrap", "add one of them")
    for extra in given[1:]:
        c.report(("source", extra), f"source has both {given[0]} and {extra}",
                 "a recipe starts from exactly one source; remove one", at_key=True)
    for kind in ("image", "iso"):
        dl = raw.get(kind)  # as written: a malformed checksum is its own problem
        if isinstance(dl, dict) and not (dl.get("checksum") or dl.get("checksum_url")
                                         or dl.get("insecure_no_checksum")):
            c.report(("source", kind), "no checksum for the download",
                     "add checksum: sha256:HEX or checksum_url:, or (unsafe) "
                     "insecure_no_checksum: true")
    install = src.get("iso", {}).get("install") if isinstance(src.get("iso"), dict) else None
    if isinstance(install, dict) and install.get("kickstart") and install.get("preseed"):
        c.report(("source", "iso", "install", "preseed"), "both kickstart and preseed given",
                 "an installer reads one of them; remove the other")


def _kernel(c: Checker, d: dict[str, Any]) -> None:
    """One kernel per image: `kernel:` and the packages' linux-image-* must not add up to two."""
    from imagepipe.bases import bootstrap
    from imagepipe.recipe.model import BootstrapSource

    src = (d.get("source") or {}).get("bootstrap")
    if not isinstance(src, dict):
        return
    distro = src.get("distro", "debian")
    flavours = bootstrap.KERNELS.get(distro, {})
    kernel = src.get("kernel")
    if kernel and flavours and kernel not in flavours:
        c.report(("source", "bootstrap", "kernel"), f"{kernel!r} is not a {distro} kernel "
                 "flavour", "use one of: " + ", ".join(flavours))
        return
    packages = [p for p in src.get("packages") or () if isinstance(p, str)]
    why = bootstrap.kernel_conflict(BootstrapSource(distro=distro, kernel=kernel,
                                                    packages=tuple(packages)))
    if why is None:
        return
    kernels = [i for i, p in enumerate(packages) if bootstrap.is_kernel_package(p)]
    at: tuple[str | int, ...] = ("source", "bootstrap", "packages", kernels[-1] if kernels else 0)
    c.report(at, f"{why}: the image would carry two kernels",
             "keep one linux-image-* in packages, or drop it and choose with "
             "source.bootstrap.kernel: " + "|".join(flavours))


def _outputs(c: Checker, d: dict[str, Any]) -> None:
    from imagepipe import formats
    from imagepipe.recipe.schema import _presets

    seen: dict[tuple[str, str], int] = {}
    for i, out in enumerate(d.get("outputs") or ()):
        if not isinstance(out, dict):
            continue
        path: tuple[str | int, ...] = ("outputs", i)
        fmt, preset = out.get("format"), out.get("preset")
        preset_fmt = _preset_format(preset) if preset and preset in _presets() else None
        if fmt is None and preset_fmt:
            out["format"] = fmt = preset_fmt
        elif fmt is None:
            raw = (c.doc.data or {}).get("outputs", [])
            if not (isinstance(raw, list) and i < len(raw) and isinstance(raw[i], dict)
                    and ("format" in raw[i] or "preset" in raw[i])):
                c.report(path, "an output needs a format or a preset", "e.g. format: qcow2")
            continue
        if preset_fmt and fmt != preset_fmt:
            c.report((*path, "preset"), f"preset {preset!r} writes {preset_fmt}, not {fmt}",
                     f"use format: {preset_fmt} or another preset")
        if formats.is_container(fmt):
            allowed: frozenset[str] = frozenset()
            can_compress = False
        else:
            f = formats.get(fmt)
            allowed, can_compress = f.option_keys, f.compress_options is not None
        for key in out.get("options", {}):
            if key not in allowed:
                from imagepipe.recipe.validate import did_you_mean

                c.report((*path, "options", key), f"option {key!r} is not allowed for {fmt}",
                         did_you_mean(key, sorted(allowed)) if allowed else
                         f"{fmt} takes no options", at_key=True)
        _hardware(c, path, preset, out.get("hardware"))
        if out.get("compress") and not can_compress:
            c.report((*path, "compress"), f"{fmt} cannot be compressed",
                     "use qcow2 or vmdk, or the `compressed` preset")
        stem = (out.get("name") or d.get("name") or "", fmt)
        if stem in seen:
            c.report(path, f"writes the same file as outputs[{seen[stem]}]",
                     "give one of them its own `name:`")
        seen[stem] = i


def _hardware(c: Checker, path: tuple[str | int, ...], preset: str | None,
              hardware: str | None) -> None:
    """`hardware:` must be a choice the output's platform offers."""
    from imagepipe.convert.hardware import preset_hardware

    offered = preset_hardware(preset)
    if hardware and preset and hardware not in offered:
        c.report((*path, "hardware"), f"{preset!r} platforms do not offer {hardware}",
                 "choose one of: " + ", ".join(offered) if offered else "drop hardware:")


def _preset_format(preset: str) -> str | None:
    from imagepipe.convert.presets import PRESETS

    return PRESETS[preset].format


def _customize(c: Checker, d: dict[str, Any]) -> None:
    cust = d.get("customize")
    if not isinstance(cust, dict):
        return
    allow_abs = bool(cust.get("allow_absolute_paths"))
    raw_files = ((c.doc.data or {}).get("customize") or {}).get("files") or []
    for i, spec in enumerate(cust.get("files") or ()):
        path = ("customize", "files", i)
        raw = raw_files[i] if i < len(raw_files) and isinstance(raw_files[i], dict) else {}
        if not isinstance(spec, dict):
            continue
        if ("src" in raw) == ("content" in raw):
            c.report(path, "a file needs exactly one of src and content")
        src = spec.get("src")
        if src is None or allow_abs:
            continue
        written = str(raw.get("src", ""))
        base = c.base_dir((*path, "src"))
        if Path(written).is_absolute():
            c.report((*path, "src"), f"absolute path {written}",
                     "use a path relative to the recipe, or set "
                     "customize.allow_absolute_paths: true")
        elif not src.is_relative_to(base):
            c.report((*path, "src"), f"{written} escapes the recipe directory {base}",
                     "keep files next to the recipe, or set customize.allow_absolute_paths: true")


def _repositories(c: Checker, d: dict[str, Any]) -> None:
    """Extra repositories: a key stays inside the recipe directory; exactly one of key and
    trusted (an unsigned repository is a choice made in writing)."""
    src = d.get("source") if isinstance(d.get("source"), dict) else {}
    boot = src.get("bootstrap") if isinstance(src, dict) else None
    places: list[tuple[tuple[str | int, ...], Any]] = [
        (("source", "bootstrap", "repositories"),
         boot.get("repositories") if isinstance(boot, dict) else None),
        (("customize", "repositories"),
         (d.get("customize") or {}).get("repositories")
         if isinstance(d.get("customize"), dict) else None)]
    for where, repos in places:
        for i, repo in enumerate(repos or ()):
            if not isinstance(repo, dict):
                continue
            path: tuple[str | int, ...] = (*where, i)
            key, trusted = repo.get("key"), bool(repo.get("trusted"))
            if key is None and not trusted:
                c.report(path, "an extra repository needs a key (or trusted: true)",
                         "add key: FILE.asc (its ASCII-armoured public key, next to the "
                         "recipe)")
            if key is not None and trusted:
                c.report((*path, "trusted"), "trusted: true with a key",
                         "remove trusted: the key is checked")
            if isinstance(key, Path):
                base = c.base_dir((*path, "key"))
                if not key.is_relative_to(base):
                    c.report((*path, "key"), f"{key} escapes the recipe directory {base}",
                             "keep the key file next to the recipe")


def _seal(c: Checker, d: dict[str, Any]) -> None:
    spec = (d.get("seal") or {}).get("operations")
    if not isinstance(spec, str):
        return
    from imagepipe.guest.seal import unknown_operations

    for message, hint in unknown_operations(spec):  # every bad name, not just the first
        c.report(("seal", "operations"), message, hint)


# Files whose bytes end up in published artifacts (the seed ISO, the installer ISO): they must
# live in the directory of the recipe file that names them, symlinks resolved, so a recipe
# cannot copy /etc/shadow into a world-readable seed.iso.
CONFINED_FILES = (("cloud_init", "user_data"), ("cloud_init", "meta_data"),
                  ("cloud_init", "network_config"), ("source", "iso", "install", "kickstart"),
                  ("source", "iso", "install", "preseed"))


def _confined_files(c: Checker, d: dict[str, Any]) -> None:
    for key in CONFINED_FILES:
        value: Any = d
        for part in key:
            value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, Path):
            continue
        base = c.base_dir(key)
        if not value.is_relative_to(base):
            c.report(key, f"{value} is outside the recipe directory {base}",
                     "keep files next to the recipe (symlinks are resolved)")
            _drop(d, key)  # not read or validated further


def _drop(d: dict[str, Any], key: tuple[str, ...]) -> None:
    parent: Any = d
    for part in key[:-1]:
        parent = parent.get(part)
    parent.pop(key[-1], None)


def _cloud_init(c: Checker, d: dict[str, Any]) -> None:
    ci = d.get("cloud_init") or {}
    for key in ("meta_data", "network_config"):
        if isinstance(ci.get(key), Path):
            _yaml_mapping(c, ci[key], key.replace("_", "-"))
    user_data = ci.get("user_data")
    if isinstance(user_data, Path):
        from imagepipe.cloudinit.validate import validate_user_data

        # The user-data's own problems carry its own file name and lines.
        c.problems.extend(validate_user_data(_display(user_data)))
    _cloud_config_lints(c, d, ci)


def _cloud_config_lints(c: Checker, d: dict[str, Any], ci: dict[str, Any]) -> None:
    """Passwords and static addresses every VM would get (imagepipe.cloudinit.lints)."""
    from imagepipe.cloudinit.lints import cloud_config_lints

    seal = d.get("seal") or {}
    ud, net = ci.get("user_data"), ci.get("network_config")
    pw, static = cloud_config_lints(ud if isinstance(ud, Path) else None,
                                    net if isinstance(net, Path) else None, display=_display)
    if not seal.get("allow_password"):
        c.problems.extend(pw)
    if not seal.get("allow_static_ip"):
        c.problems.extend(static)


def _yaml_mapping(c: Checker, path: Path, what: str) -> None:
    """meta-data and network-config are YAML mappings; a broken one is named by its line."""
    from imagepipe.recipe.yaml_marks import parse_file

    doc, problems = parse_file(path, str(_display(path)))
    c.problems.extend(problems)
    if not problems and not isinstance(doc.data, dict):
        c.problems.append(Problem(str(_display(path)), 1, 1, "", f"{what} must be a YAML "
                                  "mapping of keys", "e.g. instance-id: ... / version: 2"))


def _display(path: Path) -> Path:
    """`path` relative to the current directory when it is below it (shorter messages)."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
