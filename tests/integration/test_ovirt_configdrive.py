"""The simulated engine gives a VM made from a template the config drive the boot test boots:
the template's initialization (set by the oVirt publisher from the recipe's user-data) becomes
`openstack/latest/user_data`, the VM's name its hostname, its id the uuid."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from imagepipe.cloudinit.configdrive import Nic, ovirt_payload, read_config_drive
from tests.integration.ovirt_helpers import make_image, ovirt

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]
USER_DATA = "#cloud-config\nruncmd:\n  - [systemctl, start, apache2]\n"


def test_vm_from_template_gets_the_shared_payload(sim, tmp_path: Path) -> None:
    import ovirtsdk4 as sdk
    from ovirtsdk4 import types

    image = make_image(tmp_path / "web.qcow2", size=16 << 20)
    ud = tmp_path / "user-data"
    ud.write_text(USER_DATA)
    proc, r = ovirt(sim, "make-template", str(image), "-s", "data1", "--cluster", "Default",
                    "--name", "cdtpl", "--description", "d", "--user-data", str(ud), "--no-seal")
    assert proc.returncode == 0, proc.stderr
    con = sdk.Connection(url=sim.api_url, username=sim.username, password=sim.password,
                         ca_file=str(sim.ca_file))
    try:
        vm = con.system_service().vms_service().add(types.Vm(
            name="tplvm-7", cluster=types.Cluster(name="Default"),
            template=types.Template(id=r["template_id"])))
        got = con.system_service().vms_service().vm_service(vm.id).get()
        assert got.initialization.custom_script == USER_DATA  # inherited from the template
        iso = sim.config_drive(vm.id, tmp_path / "config-2.iso")
        files = read_config_drive(iso)
        assert files == ovirt_payload(vm.id, "tplvm-7", USER_DATA, [Nic("eth0", "dhcp")])
        meta = json.loads(files["openstack/latest/meta_data.json"])
        assert meta["uuid"] == vm.id and meta["hostname"] == "tplvm-7"
        assert meta["meta"]["dsmode"] == "local"
        assert files["openstack/content/0000"] == b"auto eth0\niface eth0 inet dhcp\n"
        reply = requests.get(f"{sim.url}/sim/vms/{vm.id}/configdrive", verify=str(sim.ca_file),
                             timeout=10).json()
        assert reply["label"] == "config-2"
        assert reply["files"]["openstack/latest/user_data"] == USER_DATA
        con.system_service().vms_service().vm_service(vm.id).remove()
    finally:
        con.close()
