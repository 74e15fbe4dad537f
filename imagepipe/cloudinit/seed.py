"""NoCloud seeds: meta-data, a `cidata` ISO built with pycdlib, and the in-image seed.

Why pycdlib: no external ISO tool (genisoimage/xorriso) to install or parse; the ISO gets ISO
9660 + Joliet + Rock Ridge names so every cloud-init version finds `user-data`/`meta-data`.
Why always both files and a fresh instance-id: cloud-init ignores a seed without meta-data, and
a clone booted with the instance-id of the image's last boot is treated as "not new" (no new
SSH host keys; a known sealing trap).
"""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagepipe.durable import publish

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession

SEED_DIR = "/var/lib/cloud/seed/nocloud"
DATASOURCE_DROPIN = "/etc/cloud/cloud.cfg.d/90_imagepipe_datasource.cfg"
DS_IDENTIFY = "/usr/lib/cloud-init/ds-identify"
# ds-identify's own default order in Debian 12's cloud-init 22.4 (used when the image's
# ds-identify cannot be read).
DEFAULT_DATASOURCES = (
    "MAAS ConfigDrive NoCloud AltCloud Azure Bigstep CloudSigma CloudStack DigitalOcean Vultr "
    "AliYun Ec2 GCE OpenNebula OpenStack OVF SmartOS Scaleway Hetzner IBMCloud Oracle Exoscale "
    "RbxCloud UpCloud VMware LXD NWCS"
).split()


def platform_first(datasources: list[str] | tuple[str, ...]) -> list[str]:
    """The full datasource list with NoCloud moved to the end (before None).

    Why: cloud-init takes the first datasource, in this order, among those ds-identify finds.
    The seed directory baked into the image makes NoCloud always found, so NoCloud must come
    after every platform datasource (ConfigDrive for oVirt/OpenStack, Azure, OVF/VMware, ...):
    the platform's per-VM data wins, and the baked seed only serves where the platform gives
    nothing. A `cidata` device still beats the baked seed: NoCloud reads its seed directory
    first and then merges a `cidata` device over it. ds-identify only lists datasources whose
    check matches this machine, so the long list costs no boot time.
    """
    rest = [d for d in datasources if d not in ("NoCloud", "None")]
    return [*rest, "NoCloud", "None"]


def datasource_cfg(datasources: list[str] | tuple[str, ...] = DEFAULT_DATASOURCES) -> str:
    """The drop-in's text. ds-identify reads `datasource_list` only from a one-line list."""
    return ("# Written by imagepipe: platform datasources before NoCloud, so what the platform\n"
            "# gives a VM (config drive, cidata device, Azure, OVF) wins over the seed baked\n"
            "# into the image in /var/lib/cloud/seed/nocloud (docs/guest.md).\n"
            f"datasource_list: [ {', '.join(platform_first(datasources))} ]\n")


DATASOURCE_CFG = datasource_cfg()


def image_datasources(session: GuestSession) -> list[str]:
    """The image's own ds-identify default list (its cloud-init version knows these)."""
    import re

    if session.is_file(DS_IDENTIFY):
        m = re.search(r'^DI_DSLIST_DEFAULT="([^"]*)"', session.read_text(DS_IDENTIFY), re.M)
        if m and m.group(1).split():
            return m.group(1).replace("\\", " ").split()
    return list(DEFAULT_DATASOURCES)


def new_instance_id() -> str:
    return f"iid-imagepipe-{uuid.uuid4().hex[:16]}"


def make_meta_data(instance_id: str | None = None, hostname: str | None = None) -> bytes:
    """NoCloud meta-data: instance-id (fresh unless given); local-hostname only if given."""
    import yaml

    data: dict[str, str] = {"instance-id": instance_id or new_instance_id()}
    if hostname:
        data["local-hostname"] = hostname
    return yaml.safe_dump(data, sort_keys=False).encode()


def build_seed_iso(
    out: Path, user_data: bytes, meta_data: bytes, network_config: bytes | None = None,
    *, force: bool = True,
) -> None:
    """Write a NoCloud seed ISO (volume id `cidata`) atomically to `out` (an existing `out` is
    replaced only with `force`; the pipeline's temp paths always pass it)."""
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="cidata", sys_ident="LINUX")
    files = [("user-data", user_data), ("meta-data", meta_data)]
    if network_config is not None:
        files.append(("network-config", network_config))
    for name, data in files:
        short = name.upper().replace("-", "_")
        iso.add_fp(
            io.BytesIO(data), len(data), f"/{short}.;1", rr_name=name, joliet_path=f"/{name}"
        )
    write_iso(iso, Path(out), force=force)


def write_iso(iso: Any, out: Path, *, force: bool = True) -> None:
    """Write a pycdlib ISO to a temp name beside `out`, fsync, rename (durable.publish), and
    close it: nothing half-written ever carries the output's name."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            iso.write_fp(f)
        publish(tmp, out, force=force)
    finally:
        iso.close()
        tmp.unlink(missing_ok=True)


def inject_seed(
    session: GuestSession, user_data: bytes, meta_data: bytes, network_config: bytes | None = None
) -> dict[str, Any]:
    """Embed the NoCloud seed and the datasource drop-in into the guest (the in-image seed)."""
    session.mkdir_p(SEED_DIR)
    session.g.chmod(0o755, SEED_DIR)
    written = []
    for name, data in (
        ("user-data", user_data),
        ("meta-data", meta_data),
        ("network-config", network_config),
    ):
        path = f"{SEED_DIR}/{name}"
        if data is None:
            if session.exists(path):
                session.g.rm(path)  # a stale network-config from an earlier inject would apply
            continue
        session.write(path, data, mode=0o600)  # user-data may carry secrets
        session.g.chown(0, 0, path)
        written.append(path)
    session.write(DATASOURCE_DROPIN, datasource_cfg(image_datasources(session)), mode=0o644)
    written.append(DATASOURCE_DROPIN)
    return {"seed_dir": SEED_DIR, "files": written}
