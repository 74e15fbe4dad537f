"""A minimal recipe reader, used only while imagepipe.recipe.load is not in this checkout.

Why it exists: the pipeline (and `make image`, `build --all`, nightly) must be usable and
testable before the full recipe language lands. It reads the documented shape (extends:,
${date}/${env:NAME}/${version}, sizes like 8G) into the shared model, with plain errors naming
the file and field. It does no line/column marks and no schema validation: the real loader
(imagepipe.recipe.load.load_recipe) always takes precedence when present.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from imagepipe.errors import InputError
from imagepipe.recipe import model as m

_VAR = re.compile(r"\$\{([^}]+)\}")


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    if path in seen:
        raise InputError(f"{path}: extends: loops back to itself")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: cannot read recipe: {exc}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a recipe must be a mapping")
    parent = data.pop("extends", None)
    if parent:
        data = _merge(_read((path.parent / parent).resolve(), (*seen, path)), data)
    return data


def _expand(value: Any, version: str) -> Any:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "date":
            return time.strftime("%Y%m%d", time.gmtime())
        if name == "version":
            return version
        if name.startswith("env:"):
            return os.environ.get(name[4:], "")
        raise InputError(f"unknown variable ${{{name}}}")

    if isinstance(value, str):
        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, version) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, version) for v in value]
    return value


def _size(v: Any) -> int | None:
    if v is None:
        return None
    from imagepipe.store.maintenance import parse_size

    return v if isinstance(v, int) else parse_size(str(v))


def _path(base: Path, v: Any) -> Path | None:
    return (base / str(v)).resolve() if v else None


def _download(d: dict[str, Any]) -> dict[str, Any]:
    return {"url": d["url"], "checksum": d.get("checksum"), "checksum_url": d.get("checksum_url"),
            "mirrors": tuple(d.get("mirrors") or ()),
            "insecure_no_checksum": bool(d.get("insecure_no_checksum", False))}


def load_recipe(path: Path) -> m.Recipe:
    path = Path(path).resolve()
    data = _read(path)
    data = _expand(data, str(data.get("image_version", data.get("version_name", ""))))
    base = path.parent
    try:
        return _build(path, base, data)
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: bad or missing field: {exc}",
                         "see docs/pipeline.md and `imagepipe validate`") from None


def _build(path: Path, base: Path, d: dict[str, Any]) -> m.Recipe:
    src = d["source"]
    if "image" in src:
        source = m.Source(image=m.ImageSource(**_download(src["image"]),
                                              format=src["image"].get("format")))
    elif "iso" in src:
        inst = src["iso"].get("install") or {}
        source = m.Source(iso=m.IsoSource(**_download(src["iso"]), install=m.IsoInstall(
            kickstart=_path(base, inst.get("kickstart")),
            preseed=_path(base, inst.get("preseed")), boot_args=inst.get("boot_args"),
            timeout=int(inst.get("timeout", 3600)))))
    else:
        b = src["bootstrap"]
        source = m.Source(bootstrap=m.BootstrapSource(
            distro=b.get("distro", "debian"), suite=b.get("suite", "bookworm"),
            mirror=b.get("mirror"), packages=tuple(b.get("packages") or ()),
            variant=b.get("variant", "minbase")))
    c = d.get("customize") or {}
    ci = d.get("cloud_init")
    boot = (d.get("test") or {}).get("boot")
    pub = d.get("publish") or {"local": {}}
    local = pub.get("local")
    return m.Recipe(
        name=d["name"], description=d["description"], path=path, source=source,
        comment=d.get("comment", ""), image_version=str(d.get("image_version", "")),
        os_type=d.get("os_type"), disk=m.Disk(size=_size((d.get("disk") or {}).get("size"))),
        customize=m.Customize(
            packages=tuple(c.get("packages") or ()), run=tuple(c.get("run") or ()),
            files=tuple(m.FileSpec(dest=f["dest"], src=_path(base, f.get("src")),
                                   content=f.get("content"), mode=f.get("mode"),
                                   owner=f.get("owner")) for f in c.get("files") or ()),
            enable_services=tuple(c.get("enable_services") or ())),
        cloud_init=None if ci is None else m.CloudInit(
            user_data=_path(base, ci.get("user_data")), meta_data=_path(base, ci.get("meta_data")),
            network_config=_path(base, ci.get("network_config")),
            embed=ci.get("embed", True), seed_iso=ci.get("seed_iso", True),
            instance_id=ci.get("instance_id"), hostname=ci.get("hostname")),
        seal=m.Seal(**(d.get("seal") or {})),
        outputs=tuple(m.Output(format=o["format"], preset=o.get("preset"),
                               options=tuple(sorted((o.get("options") or {}).items())),
                               compress=bool(o.get("compress", False)), name=o.get("name"),
                               verify=bool(o.get("verify", True)))
                      for o in d.get("outputs") or [{"format": "qcow2", "preset": "kvm"}]),
        test=m.Test(boot=None if boot is None else m.BootTest(
            timeout=int(boot.get("timeout", 600)),
            http=tuple(m.HttpCheck(**h) for h in boot.get("http") or ()))),
        publish=m.Publish(local=None if local is None else m.LocalPublish(
            dir=_path(base, local.get("dir")) or Path("templates"), keep=local.get("keep")),
            ovirt=None),
        data=d)


def recipe_digest(recipe: m.Recipe) -> str:
    """sha256 of the merged, expanded recipe plus the bytes of the files it references."""
    h = hashlib.sha256(json.dumps(recipe.data, sort_keys=True, default=str).encode())
    for p in _referenced(recipe):
        if p.is_file():
            h.update(str(p.name).encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def _referenced(r: m.Recipe) -> list[Path]:
    out = [f.src for f in r.customize.files if f.src]
    if r.cloud_init:
        out += [p for p in (r.cloud_init.user_data, r.cloud_init.meta_data,
                            r.cloud_init.network_config) if p]
    return out
