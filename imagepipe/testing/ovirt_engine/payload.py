"""The cloud-init payload the engine gives a VM it starts: an OpenStack-layout config drive.

Why here and shared: oVirt writes a VM's initialization (host name, custom script, NIC
configurations; a VM made from a template inherits the template's) as a config drive ISO
labelled `config-2` when the VM starts. The simulator builds it with the same function the boot
test uses (imagepipe.cloudinit.configdrive), so a test can boot exactly what this engine would
start: `sim.config_drive(vm_id, out_iso)` or `GET /sim/vms/ID/configdrive` (the files as JSON).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imagepipe.cloudinit.configdrive import (
    Nic,
    nics_from_initialization,
    ovirt_payload,
    write_config_drive,
)


def vm_payload(vm: dict[str, Any]) -> dict[str, bytes]:
    """The config drive files for `vm` (a simulator VM record)."""
    init = vm.get("initialization") or {}
    hostname = str(init.get("host_name") or vm["name"])
    nics = nics_from_initialization(init) if init.get("nic_configurations") else [Nic()]
    return ovirt_payload(vm["id"], hostname, init.get("custom_script") or None, nics)


def write_vm_config_drive(vm: dict[str, Any], out: Path) -> Path:
    write_config_drive(out, vm_payload(vm))
    return out
