"""oVirt template versions against the simulator, read back with the unmodified ovirtsdk4.

Two publishes give one base template with two versions (same name, numbers 1 and 2, the
second pointing at the first as its base). `--keep 1` removes older versions that no VM uses;
a VM made from an old version keeps it (and the engine itself refuses to remove it); the base
template stays while other versions exist (the engine refuses that too, with its message).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.ovirt_helpers import make_image, ovirt

pytestmark = [pytest.mark.ovirt, pytest.mark.qemu]
MiB = 1 << 20


def _publish(sim, tmp_path: Path, n: int, name: str = "app") -> dict[str, Any]:
    img = make_image(tmp_path / f"{name}{n}.qcow2", size=16 * MiB, chunks=((n % 16, 1),))
    proc, r = ovirt(sim, "make-template", str(img), "-s", "data1", "--cluster", "Default",
                    "--name", name, "--description", f"build {n}", "--no-seal",
                    "--version-name", f"2026120{n}", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    return r


def _family(con, name: str = "app") -> list[Any]:
    found = con.system_service().templates_service().list(search=f"name={name}")
    return sorted(found, key=lambda t: t.version.version_number)


def test_two_publishes_one_base_two_versions(sim, sdk_con, tmp_path: Path) -> None:
    import ovirtsdk4 as sdk

    first = _publish(sim, tmp_path, 1)
    assert first["version_number"] == 1 and first["base_template_id"] == first["template_id"]
    second = _publish(sim, tmp_path, 2)
    assert second["version_number"] == 2 and second["version_name"] == "20261202"
    assert second["base_template_id"] == first["template_id"]
    assert second["removed_versions"] == []  # keep 1, but the base must stay
    kept = {k["version_number"]: k["reason"] for k in second["kept_versions"]}
    assert kept[2] == "one of the newest 1" and kept[1].startswith("the base template")
    fam = _family(sdk_con)
    assert [(t.name, t.version.version_number, t.version.version_name) for t in fam] == \
        [("app", 1, "20261201"), ("app", 2, "20261202")]
    assert {t.version.base_template.id for t in fam} == {first["template_id"]}
    base = sdk_con.system_service().templates_service().template_service(first["template_id"])
    with pytest.raises(sdk.Error) as err:
        base.remove()
    assert err.value.code == 409
    assert "Cannot delete Base Template that has Template Versions" in str(err.value)
    # a VM set to "latest", created from the base, gets the newest version
    vms = sdk_con.system_service().vms_service()
    vm = vms.add(sdk.types.Vm(name="follower", cluster=sdk.types.Cluster(name="Default"),
                              template=sdk.types.Template(id=first["template_id"]),
                              use_latest_template_version=True))
    assert vm.template.id == second["template_id"] and vm.use_latest_template_version
    vms.vm_service(vm.id).remove()
    # the same image again: nothing uploaded, no new version
    img = tmp_path / "app2.qcow2"
    proc, again = ovirt(sim, "make-template", str(img), "-s", "data1", "--cluster", "Default",
                        "--name", "app", "--description", "again", "--no-seal",
                        "--version-name", "x")
    assert proc.returncode == 0 and again["reused"] is True
    assert again["template_id"] == second["template_id"] and len(_family(sdk_con)) == 2
    # the engine's rules for the base a version names
    t = sdk.types
    vm = vms.add(t.Vm(name="bare", cluster=t.Cluster(name="Default"), template=t.Template(
        name="Blank")))
    tpls = sdk_con.system_service().templates_service()
    for base_id, words in ((second["template_id"], "Only the first template version can be "
                            "selected as the base template"),
                           ("0badf00d-0000-0000-0000-000000000000",
                            "The relevant Template doesn't exist")):
        with pytest.raises(sdk.Error) as err:
            tpls.add(t.Template(name="x", vm=t.Vm(id=vm.id), version=t.TemplateVersion(
                base_template=t.Template(id=base_id), version_name="bad")))
        assert err.value.code == 409 and words in str(err.value)
    vms.vm_service(vm.id).remove()


def test_keep_removes_older_versions_unless_a_vm_uses_them(sim, sdk_con,
                                                           tmp_path: Path) -> None:
    import ovirtsdk4 as sdk

    base = _publish(sim, tmp_path, 1, "web")
    v2 = _publish(sim, tmp_path, 2, "web")
    vms = sdk_con.system_service().vms_service()
    vm = vms.add(sdk.types.Vm(name="web-vm1", cluster=sdk.types.Cluster(name="Default"),
                              template=sdk.types.Template(id=v2["template_id"])))
    v3 = _publish(sim, tmp_path, 3, "web")
    assert v3["version_number"] == 3 and v3["removed_versions"] == []
    kept = {k["version_number"]: k["reason"] for k in v3["kept_versions"]}
    assert kept == {3: "one of the newest 1", 2: "used by VM web-vm1",
                    1: kept[1]} and kept[1].startswith("the base template")
    tpl2 = sdk_con.system_service().templates_service().template_service(v2["template_id"])
    with pytest.raises(sdk.Error) as err:
        tpl2.remove()  # the engine's own rule, not only ours
    assert err.value.code == 409
    assert "Template is being used by the following VMs: web-vm1" in str(err.value)
    vms.vm_service(vm.id).remove()
    v4 = _publish(sim, tmp_path, 4, "web")
    assert sorted(v4["removed_versions"]) == ["web v2 (20261202)", "web v3 (20261203)"]
    assert [t.version.version_number for t in _family(sdk_con, "web")] == [1, 4]
    assert base["template_id"] in {t.id for t in _family(sdk_con, "web")}
    left = {t["id"] for t in sim.state()["templates"]}
    assert v2["template_id"] not in left and v3["template_id"] not in left
