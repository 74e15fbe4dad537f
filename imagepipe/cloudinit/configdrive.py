"""oVirt-style config drives: the payload a VM created from a template receives, as an ISO.

Why one function for the payload: the oVirt engine hands a new VM its hostname and the
template's custom script on an OpenStack-layout config drive (ISO label `config-2`). The boot
test and the engine simulator both build that drive with `ovirt_payload()` + `write_config_drive`,
so the test boots exactly what the (simulated) engine would start. Layout (docs/boot-test.md):

    openstack/latest/meta_data.json   uuid, hostname, name, launch_index, availability_zone,
                                      meta.dsmode=local, network_config.content_path
    openstack/latest/user_data        the custom script (cloud-config, script or MIME)
    openstack/content/0000            the NIC configuration as ifupdown (ENI) text

Why pycdlib: like the NoCloud seed, no external ISO tool; Rock Ridge + Joliet names keep the
lower-case paths the datasource looks for.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LABEL = "config-2"
META = "openstack/latest/meta_data.json"
USER_DATA = "openstack/latest/user_data"
CONTENT = "openstack/content/0000"


@dataclass(frozen=True)
class Nic:
    """One entry of oVirt's initialization.nic_configurations (only DHCP/none/static v4)."""

    name: str = "eth0"
    boot_protocol: str = "dhcp"  # dhcp | none | static
    on_boot: bool = True
    address: str | None = None
    netmask: str | None = None
    gateway: str | None = None


def eni(nics: Sequence[Nic]) -> str:
    """The interfaces(5) text oVirt writes as openstack/content/0000."""
    lines = []
    for n in nics:
        if n.on_boot:
            lines.append(f"auto {n.name}")
        if n.boot_protocol == "static" and n.address:
            lines.append(f"iface {n.name} inet static")
            lines += [f"  {k} {v}" for k, v in (("address", n.address),
                                                 ("netmask", n.netmask),
                                                 ("gateway", n.gateway)) if v]
        else:
            method = "dhcp" if n.boot_protocol == "dhcp" else "manual"
            lines.append(f"iface {n.name} inet {method}")
        lines.append("")
    return "\n".join(lines)


def ovirt_payload(vm_id: str, hostname: str, user_data: bytes | str | None,
                  nics: Sequence[Nic] = (Nic(),)) -> dict[str, bytes]:
    """The files (path -> bytes) of the config drive oVirt writes for one VM start."""
    meta: dict[str, Any] = {
        "availability_zone": "nova",
        "hostname": hostname,
        "launch_index": 0,
        "meta": {"essential": False, "role": "server", "dsmode": "local"},
        "name": hostname,
        "uuid": vm_id,
    }
    files: dict[str, bytes] = {}
    if nics:
        meta["network_config"] = {"path": "/etc/network/interfaces",
                                  "content_path": "/content/0000"}
        files[CONTENT] = eni(nics).encode()
    files[META] = json.dumps(meta, indent=2, sort_keys=True).encode()
    if user_data:
        files[USER_DATA] = user_data.encode() if isinstance(user_data, str) else user_data
    return files


def nics_from_initialization(init: Mapping[str, Any] | None) -> list[Nic]:
    """oVirt's `initialization.nic_configurations` (the REST body as a dict) -> Nic list."""
    raw = ((init or {}).get("nic_configurations") or {})
    items = raw.get("nic_configuration", raw) if isinstance(raw, Mapping) else raw
    if isinstance(items, Mapping):
        items = [items]
    nics = []
    for item in items or ():
        ip = item.get("ip") or {}
        nics.append(Nic(name=str(item.get("name") or "eth0"),
                        boot_protocol=str(item.get("boot_protocol") or "dhcp"),
                        on_boot=str(item.get("on_boot", "true")).lower() != "false",
                        address=ip.get("address"), netmask=ip.get("netmask"),
                        gateway=ip.get("gateway")))
    return nics


def write_config_drive(out: Path, files: Mapping[str, bytes]) -> None:
    """Write `files` as an ISO labelled config-2, atomically to `out`."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident=LABEL,
            sys_ident="LINUX")
    dirs: set[str] = set()
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            if d not in dirs:
                dirs.add(d)
                iso.add_directory(_iso9660(d), rr_name=parts[i - 1], joliet_path=f"/{d}")
        data = files[path]
        iso.add_fp(io.BytesIO(data), len(data), _iso9660(path) + ";1", rr_name=parts[-1],
                   joliet_path=f"/{path}")
    from imagepipe.cloudinit.seed import write_iso

    write_iso(iso, Path(out))


def read_config_drive(iso_path: Path) -> dict[str, bytes]:
    """The files of a config drive by their Rock Ridge names (tests, `imagepipe` debugging)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        if iso.pvd.volume_identifier.decode().strip() != LABEL:
            raise ValueError(f"{iso_path}: volume label is not {LABEL}")
        out: dict[str, bytes] = {}
        for root, _dirs, names in iso.walk(rr_path="/"):
            for name in names:
                path = f"{root.rstrip('/')}/{name}"
                buf = io.BytesIO()
                iso.get_file_from_iso_fp(buf, rr_path=path)
                out[path.lstrip("/")] = buf.getvalue()
        return out
    finally:
        iso.close()


def _iso9660(path: str) -> str:
    """An ISO 9660 level-3 name for a Rock Ridge path (upper case, `_` for other chars)."""
    return "/" + "/".join("".join(c if c.isalnum() else "_" for c in p).upper()
                          for p in path.split("/"))
