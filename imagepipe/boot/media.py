"""What the boot test hands the VM: the per-VM data a platform would give it, and its checks.

Why three kinds: a template must take its per-VM data from wherever it is deployed and still
run the recipe's cloud-config where nothing is given (docs/guest.md).
- `nocloud`: a `cidata` seed ISO (as `virt-install --cloud-init` / `cloud-localds` make it);
- `configdrive`: the config drive the oVirt engine writes (imagepipe.cloudinit.configdrive, the
  same payload the engine simulator gives a VM created from a template);
- `none`: no drive at all: the seed baked into the image must serve.
For the first two the VM gets a per-VM hostname and a user-data that writes a marker file and
prints this boot's identity on the console; the test then asserts the hostname and the marker,
which only the platform's data carries. With `none` nothing can be handed in, so the identity is
read back from the VM's overlay after the shutdown instead.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

from imagepipe.errors import InputError
from imagepipe.tools.qemu import Drive

DATASOURCES = ("nocloud", "configdrive", "none")
# The datasource cloud-init names in its "finished" line for each kind.
EXPECTED_DS = {"nocloud": "DataSourceNoCloud", "configdrive": "DataSourceConfigDrive",
               "none": "DataSourceNoCloud"}
FINAL_DS = re.compile(r"Cloud-init v\. \S+ finished at .*?Datasource (\w+)( \[[^\n]*\])?")
MARKER_FILE = "/var/lib/imagepipe-boot-test/marker"
HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", re.I)


@dataclass
class Media:
    """The drives of one boot and what the guest must show for them."""

    datasource: str
    instance_id: str
    drives: list[Drive] = field(default_factory=list)
    hostname: str | None = None  # expected hostname (None: not handed in, not checked)
    marker: str | None = None  # expected marker file content
    files: list[Path] = field(default_factory=list)  # to remove after the boot


def check_args(datasource: str, hostname: str | None) -> None:
    """Bad --datasource/--hostname combinations: exit 2 before anything boots."""
    if datasource not in DATASOURCES:
        raise InputError(f"unknown datasource {datasource!r}",
                         f"use one of: {', '.join(DATASOURCES)}")
    if hostname is not None and not HOSTNAME_RE.match(hostname):
        raise InputError(f"bad hostname {hostname!r}",
                         "use letters, digits and '-' (at most 63), e.g. tplvm-1")
    if hostname is not None and datasource == "none":
        raise InputError("--hostname needs a datasource that hands it to the VM",
                         "use --datasource nocloud or configdrive (none gives the VM nothing)")


def per_vm_script(nonce: str, tag: str) -> str:
    """The user-data script of a per-VM boot: write the marker, then report on the console."""
    return f"""#!/bin/sh
# added by imagepipe boot-test: the per-VM user-data's marker, then this boot's identity
mkdir -p {Path(MARKER_FILE).parent} && echo {nonce} > {MARKER_FILE}
{{
echo "{tag} hostname=$(hostname)"
echo "{tag} marker=$(cat {MARKER_FILE} 2>/dev/null)"
}} > /dev/console 2>&1
"""


def make_per_vm_user_data(user_data: bytes | None, nonce: str, tag: str,
                          identity_script: str) -> bytes:
    """MIME multipart: the recipe's own user-data, the marker script, the identity script."""
    msg = MIMEMultipart()
    if user_data:
        msg.attach(MIMEText(user_data.decode("utf-8"), "plain", "utf-8"))
    msg.attach(MIMEText(per_vm_script(nonce, tag), "x-shellscript", "utf-8"))
    msg.attach(MIMEText(identity_script, "x-shellscript", "utf-8"))
    return msg.as_bytes()


def make_media(datasource: str, work: Path, nonce: str, user_data: bytes,
               hostname: str | None) -> Media:
    """Write the drive for `datasource` into `work` (user_data: the full per-VM user-data)."""
    if datasource == "none":
        return Media("none", instance_id="(baked into the image)")
    hostname = hostname or f"boottest-{nonce[:6]}"
    if datasource == "nocloud":
        from imagepipe.cloudinit.seed import build_seed_iso, make_meta_data

        iid = f"iid-boottest-{nonce}"
        seed = work / f"seed-{nonce}.iso"
        build_seed_iso(seed, user_data, make_meta_data(iid, hostname))
        return Media("nocloud", iid, [Drive(seed, fmt="raw", readonly=True)], hostname, nonce,
                     [seed])
    from imagepipe.cloudinit.configdrive import ovirt_payload, write_config_drive

    vm_id = str(uuid.uuid4())
    iso = work / f"config-2-{nonce}.iso"
    write_config_drive(iso, ovirt_payload(vm_id, hostname, user_data))
    return Media("configdrive", vm_id, [Drive(iso, fmt="raw", media="cdrom")], hostname, nonce,
                 [iso])


def seen_datasource(console: str) -> str | None:
    """`DataSourceX [details]` from cloud-init's "finished" console line, if printed yet."""
    m = FINAL_DS.search(console)
    return f"{m.group(1)}{m.group(2) or ''}" if m else None
