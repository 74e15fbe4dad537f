"""`sbom.spdx.json`: an SPDX 2.3 JSON document of the image's installed packages.

Why plain JSON and not the spdx-tools model classes: the document is a direct mapping of the
manifest's package list (one SPDX package per installed package, a purl each, the image as the
described package), SPDX 2.3 JSON is a fixed published format, and a build must not need an
optional library to write it. The SPDX project's own validator (spdx-tools, the `sbom` extra,
`pyspdxtools -i FILE`) checks every document we write when it is installed, and always in the
tests, so the format cannot drift unnoticed.

The document is deterministic: the same manifest gives the same bytes (its namespace is a
UUIDv5 of the build's identity), so the copy in the build directory and the published copy
agree, and SHA256SUMS can list it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

SBOM_NAME = "sbom.spdx.json"
NAMESPACE = uuid.UUID("8d0c8e7c-5d7e-4b8e-9a51-6b1f0a3c2e10")  # imagepipe's UUIDv5 namespace
# purl namespaces by libguestfs distro name (purl-spec: "redhat" for RHEL)
PURL_VENDOR = {"rhel": "redhat", "redhat-based": "redhat", "opensuse": "opensuse"}


def _pct(text: str) -> str:
    """purl percent-encoding: everything but unreserved characters; ':' stays readable."""
    return quote(text, safe="").replace("%3A", ":")


def purl(pkg: Mapping[str, Any], *, fmt: str, distro: str, distro_version: str) -> str:
    """`pkg:deb/debian/apache2@2.4.62-1~deb12u2?arch=amd64&distro=debian-12`; for rpm the
    epoch moves to an `epoch=` qualifier, as the purl spec defines for that type."""
    version = str(pkg.get("version", ""))
    qualifiers = {"arch": str(pkg.get("arch") or ""), "distro": f"{distro}-{distro_version}"}
    if fmt == "rpm" and re.match(r"^\d+:", version):
        epoch, version = version.split(":", 1)
        qualifiers["epoch"] = epoch
    name = str(pkg["name"])
    if fmt == "deb" and pkg.get("source") and pkg["source"] != name:
        qualifiers["upstream"] = str(pkg["source"])
    quals = "&".join(f"{k}={_pct(v)}" for k, v in sorted(qualifiers.items()) if v)
    vendor = PURL_VENDOR.get(distro, distro)
    return f"pkg:{fmt}/{_pct(vendor)}/{_pct(name)}@{_pct(version)}" + (f"?{quals}" if quals
                                                                         else "")


def _spdx_id(prefix: str, *parts: str) -> str:
    return "SPDXRef-" + prefix + "-" + re.sub(r"[^A-Za-z0-9.-]+", "-", "-".join(parts))


def make_sbom(manifest: Mapping[str, Any]) -> dict[str, Any] | None:
    """The SPDX document for a manifest with an inventory, or None without one."""
    from imagepipe import __version__

    inv = manifest.get("inventory") or {}
    packages = manifest.get("packages")
    if not inv or packages is None:
        return None
    recipe = manifest.get("recipe") or {}
    name = str(recipe.get("name") or "image")
    built = str(manifest.get("built_at") or "1970-01-01T00:00:00Z")
    image_version = str(recipe.get("image_version") or built)
    identity = json.dumps([name, image_version, built, recipe.get("sha256"),
                           sorted(o.get("sha256") or "" for o in manifest.get("outputs", []))])
    doc_uuid = uuid.uuid5(NAMESPACE, identity)
    fmt, distro = str(inv.get("format")), str(inv.get("distro"))
    distro_version = str(inv.get("distro_version"))
    image_id = "SPDXRef-Image"
    spdx_packages: list[dict[str, Any]] = [{
        "SPDXID": image_id, "name": name, "versionInfo": image_version,
        "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
        "primaryPackagePurpose": "OPERATING-SYSTEM",
        "supplier": "NOASSERTION", "licenseConcluded": "NOASSERTION",
        "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
        "description": str(recipe.get("description") or f"disk image {name}"),
        "comment": f"{distro} {distro_version} disk image built by imagepipe from recipe "
                   f"{name} (sha256 {recipe.get('sha256')}); outputs: "
                   + ", ".join(f"{Path(str(o.get('path'))).name} sha256:{o.get('sha256')}"
                               for o in manifest.get("outputs", [])),
    }]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": image_id}]
    for i, pkg in enumerate(packages):
        pid = _spdx_id("Package", str(i), fmt, str(pkg["name"]), str(pkg.get("arch") or ""))
        entry: dict[str, Any] = {
            "SPDXID": pid, "name": pkg["name"], "versionInfo": pkg["version"],
            "downloadLocation": "NOASSERTION", "filesAnalyzed": False,
            "supplier": "NOASSERTION", "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION", "copyrightText": "NOASSERTION",
            "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                              "referenceLocator": purl(pkg, fmt=fmt, distro=distro,
                                                       distro_version=distro_version)}],
        }
        if pkg.get("source"):
            src_version = pkg.get("source_version") or pkg["version"]
            entry["sourceInfo"] = f"built from {fmt} source package {pkg['source']} " \
                                  f"{src_version}"
        spdx_packages.append(entry)
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS",
                              "relatedSpdxElement": pid})
    return {
        "spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{name}-{image_version}",
        "documentNamespace": f"https://spdx.org/spdxdocs/imagepipe-{_pct(name)}-{doc_uuid}",
        "creationInfo": {"created": built, "creators": [f"Tool: imagepipe-{__version__}"],
                         "comment": f"installed packages read from {inv.get('database')} "
                                    "in the sealed image"},
        "packages": spdx_packages,
        "relationships": relationships,
    }


def write_sbom(directory: Path, manifest: Mapping[str, Any]) -> Path | None:
    """Write `sbom.spdx.json` into `directory` (atomically); None if there is no inventory."""
    import os

    doc = make_sbom(manifest)
    if doc is None:
        return None
    path = directory / SBOM_NAME
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def validate(path: Path) -> list[str] | None:
    """The SPDX project's validator's messages for `path` ([] = valid), or None when the
    spdx-tools library (the `sbom` extra) is not installed."""
    try:
        from spdx_tools.spdx.parser.parse_anything import parse_file
        from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document
    except ImportError:
        return None
    doc = parse_file(str(path))
    return [m.validation_message for m in validate_full_spdx_document(doc)]


def write_checked_sbom(directory: Path, manifest: dict[str, Any]) -> list[Path]:
    """`sbom.spdx.json` beside the manifest when the build has an inventory; the SPDX
    validator's verdict (when spdx-tools is installed) goes into `manifest["sbom"]`.
    Here, not in the manifest module, so that the local publish stage can call it without
    importing the pipeline layer above it."""
    path = write_sbom(directory, manifest)
    if path is None:
        return []
    errors = validate(path)
    manifest["sbom"] = {"file": path.name, "format": "SPDX-2.3 JSON",
                        "validated_by": None if errors is None else "spdx-tools",
                        "errors": errors or []}
    if errors:
        manifest.setdefault("warnings", []).append(
            f"{path.name} does not validate: {'; '.join(errors[:3])}")
    return [path]
