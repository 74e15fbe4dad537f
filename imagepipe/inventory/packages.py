"""Read the installed packages back from a (sealed) guest, in the guest stage's own launch.

Why read the package database and not trust the recipe: the recipe names ~15 packages, the
image holds a few hundred (dependencies, the base system, whatever customize.run installed),
at the versions the mirror had that day. Only the database inside the finished image says what
VMs made from it will run. Debian-family: `/var/lib/dpkg/status` parsed directly (exactly what
`dpkg-query -W` reads, including each package's source package, which libguestfs's application
list does not give for deb); RPM-family: libguestfs inspection (`inspect_list_applications2`
reads the rpm database, which has no stable text form).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession

DPKG_STATUS = "/var/lib/dpkg/status"


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 paragraphs as {field: value} (continuation lines folded into the value)."""
    fields: dict[str, str] = {}
    last = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t" and last is not None:
            fields[last] += "\n" + line.strip()
        elif ":" in line:
            key, _, value = line.partition(":")
            last = key.strip()
            fields[last] = value.strip()
    if fields:
        yield fields


_SOURCE = re.compile(r"^(\S+)(?:\s+\((\S+)\))?$")


def parse_dpkg_status(text: str) -> list[dict[str, str]]:
    """Installed packages from a dpkg status file: [{name, version, arch, source}], plus
    `source_version` when the source package's version differs (binNMUs, split sources)."""
    out = []
    for f in _stanzas(text):
        if "Package" not in f or f.get("Status", "").split()[-1:] != ["installed"]:
            continue
        version = f.get("Version", "")
        entry = {"name": f["Package"], "version": version,
                 "arch": f.get("Architecture", ""), "source": f["Package"]}
        m = _SOURCE.match(f.get("Source", ""))
        if m:
            entry["source"] = m.group(1)
            if m.group(2) and m.group(2) != version:
                entry["source_version"] = m.group(2)
        out.append(entry)
    return sorted(out, key=lambda p: (p["name"], p["arch"]))


def rpm_version(app: dict[str, Any]) -> str:
    evr = str(app.get("app2_version", ""))
    if app.get("app2_release"):
        evr += f"-{app['app2_release']}"
    epoch = int(app.get("app2_epoch") or 0)
    return f"{epoch}:{evr}" if epoch else evr


def read_packages(session: GuestSession) -> dict[str, Any]:
    """The manifest's inventory record: {format, database, count, packages}."""
    info = session.info
    assert info is not None
    record: dict[str, Any] = {"format": info.package_format, "database": None,
                              "distro": info.distro, "distro_version": _distro_version(info),
                              "packages": []}
    if info.package_format == "deb" and session.is_file(DPKG_STATUS):
        record["database"] = DPKG_STATUS
        record["packages"] = parse_dpkg_status(session.read_text(DPKG_STATUS))
    elif info.package_format == "rpm":
        record["database"] = "rpm (libguestfs inspection)"
        apps = session.g.inspect_list_applications2(info.root)
        record["packages"] = sorted(
            ({"name": a["app2_name"], "version": rpm_version(a), "arch": a.get("app2_arch", ""),
              "source": _rpm_source(a)} for a in apps),
            key=lambda p: (p["name"], p["arch"]))
    record["count"] = len(record["packages"])
    return record


def _rpm_source(app: dict[str, Any]) -> str:
    """Source package name from the source rpm file name (name-version-release.src.rpm)."""
    srpm = str(app.get("app2_source_package") or "")
    m = re.match(r"^(.+)-[^-]+-[^-]+\.src\.rpm$", srpm)
    return m.group(1) if m else (srpm or str(app["app2_name"]))


def _distro_version(info: Any) -> str:
    """`12` for Debian, `22.04` for Ubuntu, `9` for RHEL-likes: as purl `distro=` wants it."""
    if info.distro == "ubuntu":
        return f"{info.major}.{info.minor:02d}"
    return str(info.major)
