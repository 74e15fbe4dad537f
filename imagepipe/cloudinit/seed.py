"""NoCloud seeds: meta-data, a `cidata` ISO built with pycdlib, and the in-image seed.

Why pycdlib: no external ISO tool (genisoimage/xorriso) to install or parse; the ISO gets ISO
9660 + Joliet + Rock Ridge names so every cloud-init version finds `user-data`/`meta-data`.
Why always both files and a fresh instance-id: cloud-init ignores a seed without meta-data, and
a clone booted with the instance-id of the image's last boot is treated as "not new" (no new
SSH host keys; FIELD-NOTES' sealing trap).
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
DATASOURCE_CFG = (
    "# Written by imagepipe: the NoCloud seed is in the image; do not wait on\n"
    "# network datasources at boot.\ndatasource_list: [ NoCloud, None ]\n"
)


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
    out = Path(out)
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
    session.write(DATASOURCE_DROPIN, DATASOURCE_CFG, mode=0o644)
    written.append(DATASOURCE_DROPIN)
    return {"seed_dir": SEED_DIR, "files": written}
