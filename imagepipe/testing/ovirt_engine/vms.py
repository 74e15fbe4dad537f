"""VMs (disk attachments, NICs) and templates (docs/ovirt-simulator.md section 5).

Why real copies: a template owns its own disks, made by `qemu-img convert` of the VM's volumes
(as the engine's CreateAllTemplateDisks does), so removing the temporary VM afterwards must not
touch the template, and a test can read the template's disk back and compare it.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from imagepipe.testing.ovirt_engine.state import API, BLANK_ID, Faults, new_id, now_text, ref
from imagepipe.testing.ovirt_engine.xmlio import Fault, as_bool, as_int, require
from imagepipe.tools import qemu_img
from imagepipe.tools.run import run

# The engine's BiosType enum (4.4+): what a VM or template boots with.
BIOS_TYPES = ("cluster_default", "i440fx_sea_bios", "q35_sea_bios", "q35_ovmf",
              "q35_secure_boot")


def bios(value: Any) -> dict[str, Any] | None:
    """A VM/template `bios` element, checked like the engine checks the enum (400 if unknown)."""
    if not value:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind not in BIOS_TYPES:
        raise Fault(400, "Bad Request",
                    f"Invalid value '{kind}' for bios.type; use one of {', '.join(BIOS_TYPES)}")
    return {"type": kind}


class VmsMixin:
    vms: dict[str, dict[str, Any]]
    templates: dict[str, dict[str, Any]]
    disks: dict[str, dict[str, Any]]

    virt_sysprep: bool = False  # seal=true runs the real virt-sysprep on the template disk

    if TYPE_CHECKING:  # provided by Core
        faults: Faults
        delay: float
        lock: threading.RLock
        sds: dict[str, dict[str, Any]]
        profiles: dict[str, dict[str, Any]]

        def log(self, message: str) -> None: ...
        def delete_disk(self, disk_id: str) -> None: ...
        def refresh_disk_size(self, disk: dict[str, Any]) -> None: ...
        def find_named(self, name: str, value: Any, what: str) -> dict[str, Any]: ...
        def create_disk(self, sd: dict[str, Any], **kw: Any) -> dict[str, Any]: ...

    def seed_templates(self) -> None:
        self.templates[BLANK_ID] = {**ref("templates", BLANK_ID), "name": "Blank",
                                    "description": "Blank template", "status": "ok",
                                    "creation_time": now_text(),
                                    "version": {"base_template": ref("templates", BLANK_ID),
                                                "version_name": "base version",
                                                "version_number": 1},
                                    "links": [("diskattachments",
                                               f"{API}/templates/{BLANK_ID}/diskattachments")],
                                    "_disks": []}

    # --- VMs ---------------------------------------------------------------------------
    def add_vm(self, body: dict[str, Any]) -> dict[str, Any]:
        require(body, "VM", "add", "name", "cluster")
        require(body, "VM", "add", "template")
        name = body["name"]
        if any(v["name"] == name for v in self.vms.values()):
            raise Fault(409, "Operation Failed",
                        "[Cannot add VM. The VM name is already in use, please choose a unique "
                        "name and try again.]")
        cluster = self.find_named("clusters", body["cluster"], "VM")
        tpl = self._find_template(body["template"])
        latest = as_bool(body.get("use_latest_template_version"), False)
        if latest:
            tpl = self.latest_version(tpl)
        vm_id = new_id()
        vm = {**ref("vms", vm_id), "name": name, "description": body.get("description"),
              "comment": body.get("comment"), "status": "down",
              "memory": as_int(body.get("memory") or 1 << 30, "memory"),
              "cpu": body.get("cpu") or {"topology": {"cores": 1, "sockets": 1, "threads": 1}},
              "memory_policy": body.get("memory_policy"), "bios": bios(body.get("bios")),
              "os": body.get("os") or {"type": "other"}, "type": body.get("type") or "desktop",
              "creation_time": now_text(), "stateless": False,
              "use_latest_template_version": latest,
              "cluster": ref("clusters", cluster["id"]), "template": ref("templates", tpl["id"]),
              # the engine copies the template's initialization into a VM made from it
              "initialization": body.get("initialization") or tpl.get("initialization"),
              "links": [("diskattachments", f"{API}/vms/{vm_id}/diskattachments"),
                        ("nics", f"{API}/vms/{vm_id}/nics")],
              "_attachments": {}, "_nics": {}}
        self.vms[vm_id] = vm
        self.log(f"vm {vm_id} added ({name})")
        return vm

    def _find_template(self, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            for t in self.templates.values():
                if t["id"] == value.get("id") or (value.get("name") and t["name"] == value["name"]):
                    return t
            missing = value.get("name") or value.get("id")
            raise Fault(404, "Operation Failed", f"Entity not found: {missing}")
        raise Fault(400, "Incomplete parameters", "Template [id|name] required")

    def vm(self, vm_id: str) -> dict[str, Any]:
        vm = self.vms.get(vm_id)
        if vm is None:
            raise Fault(404, "Not Found", None)
        return vm

    def attach_disk(self, vm_id: str, body: dict[str, Any]) -> dict[str, Any]:
        vm = self.vm(vm_id)
        require(body, "DiskAttachment", "add", "disk.id", "interface")
        disk = self.disks.get(body["disk"]["id"])
        if disk is None:
            raise Fault(400, "Operation Failed",
                        "[Cannot attach Virtual Disk. The specified disk does not exist.]")
        if disk["status"] != "ok":
            raise Fault(409, "Operation Failed",
                        f"[Cannot attach Virtual Disk: The following disks are locked: "
                        f"{disk['name']}. Please try again in a few minutes.]")
        if vm["status"] != "down":
            raise Fault(409, "Operation Failed", "[Cannot attach Virtual Disk: VM is locked.]")
        if body["interface"] not in ("virtio", "virtio_scsi", "ide", "sata", "spapr_vscsi"):
            raise Fault(400, "Operation Failed", f"[Invalid interface: {body['interface']}]")
        att = {"href": f"{API}/vms/{vm_id}/diskattachments/{disk['id']}", "id": disk["id"],
               "active": as_bool(body.get("active"), True),
               "bootable": as_bool(body.get("bootable"), False),
               "interface": body["interface"], "pass_discard": False, "read_only": False,
               "uses_scsi_reservation": False, "disk": ref("disks", disk["id"]),
               "vm": ref("vms", vm_id)}
        vm["_attachments"][disk["id"]] = att
        return att

    def add_nic(self, vm_id: str, body: dict[str, Any]) -> dict[str, Any]:
        vm = self.vm(vm_id)
        require(body, "NIC", "add", "name")
        profile = body.get("vnic_profile")
        if profile and profile.get("id") not in self.profiles:
            raise Fault(400, "Operation Failed",
                        "[Cannot add Interface. The specified vNIC profile does not exist.]")
        if any(n["name"] == body["name"] for n in vm["_nics"].values()):
            raise Fault(409, "Operation Failed", "[Cannot add Interface. The name is in use.]")
        nic_id = new_id()
        n = len(vm["_nics"]) + 1
        nic = {"href": f"{API}/vms/{vm_id}/nics/{nic_id}", "id": nic_id, "name": body["name"],
               "interface": body.get("interface") or "virtio", "linked": True, "plugged": True,
               "mac": {"address": f"56:6f:00:00:00:{n:02x}"},
               "vnic_profile": ref("vnicprofiles", profile["id"]) if profile else None,
               "vm": ref("vms", vm_id)}
        vm["_nics"][nic_id] = nic
        return nic

    def remove_vm(self, vm_id: str, detach_only: bool = False) -> None:
        vm = self.vm(vm_id)
        if vm["status"] != "down":
            raise Fault(409, "Operation Failed",
                        "[Cannot remove VM: VM is locked. Please try again in a few minutes.]")
        if not detach_only:
            for disk_id in vm["_attachments"]:
                self.delete_disk(disk_id)
        del self.vms[vm_id]
        self.log(f"vm {vm_id} removed")

    # --- templates ----------------------------------------------------------------------
    def add_template(self, body: dict[str, Any], *, seal: bool) -> dict[str, Any]:
        require(body, "Template", "add", "name", "vm.id")
        name = body["name"]
        version = self.template_version(body.get("version") or {})
        if version.get("_base") is not None:
            name = version["_base"]["name"]  # a version takes its base template's name
        elif (any(t["name"] == name for t in self.templates.values())
                or self.faults.take("template_name_in_use")):
            raise Fault(409, "Operation Failed",
                        "[Cannot add Template. The Template name is already in use, please "
                        "choose a unique name and try again.]")
        vm = self.vm(body["vm"]["id"])
        if vm["status"] != "down":
            raise Fault(409, "Operation Failed",
                        "[Cannot add Template. At least one of the VMs is not down.]")
        locked = [self.disks[d]["name"] for d in vm["_attachments"]
                  if d in self.disks and self.disks[d]["status"] != "ok"]
        if locked:
            raise Fault(409, "Operation Failed", "[Cannot add Template: The following disks "
                        f"are locked: {', '.join(locked)}. Please try again in a few minutes.]")
        tid = new_id()
        tpl = {**ref("templates", tid), "name": name, "description": body.get("description"),
               "comment": body.get("comment"), "status": "locked", "creation_time": now_text(),
               "memory": vm["memory"], "cpu": vm["cpu"], "os": body.get("os") or vm["os"],
               "type": vm["type"], "bios": bios(body.get("bios")) or vm.get("bios"),
               "memory_policy": vm["memory_policy"],
               "initialization": body.get("initialization"),
               "version": {"base_template": ref("templates", version["_base"]["id"]
                                                if version.get("_base") else tid),
                           "version_name": version["version_name"],
                           "version_number": version["version_number"]},
               "cluster": vm["cluster"], "vm": ref("vms", vm["id"]),
               "links": [("diskattachments", f"{API}/templates/{tid}/diskattachments"),
                         ("nics", f"{API}/templates/{tid}/nics")],
               "_disks": [], "_sealed": seal, "_nics": list(vm["_nics"].values())}
        self.templates[tid] = tpl
        vm["status"] = "image_locked"
        jobs = [(self.disks[d], att) for d, att in vm["_attachments"].items() if d in self.disks]
        threading.Thread(target=self._copy_template_disks, args=(tpl, vm, jobs),
                         daemon=True, name=f"template-{tid}").start()
        self.log(f"template {tid} adding ({name}) seal={seal}")
        return tpl

    def _copy_template_disks(self, tpl: dict[str, Any], vm: dict[str, Any],
                             jobs: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """CreateAllTemplateDisks: copy each volume outside the lock, then publish."""
        time.sleep(self.delay)
        copies = []
        failed = self.faults.take("template_fail")
        for disk, att in jobs:
            with self.lock:
                sd = self.sds[disk["storage_domains"][0]["id"]]
                new = self.create_disk(sd, name=disk["name"], fmt=disk["format"],
                                       size=disk["provisioned_size"], sparse=disk["sparse"],
                                       content_type=disk["content_type"], source=disk["_path"])
                new["_ready_at"] = None
            result = run(qemu_img.convert_argv(disk["_path"], new["_path"], fmt=disk["_driver"],
                                               out_fmt=new["_driver"]), check=False, timeout=3600)
            failed = failed or result.returncode != 0
            if tpl["_sealed"] and self.virt_sysprep and not failed:
                failed = not self._sysprep(tpl, new)
            copies.append((new, att))
        with self.lock:
            for new, att in copies:
                new["status"] = "illegal" if failed else "ok"
                self.refresh_disk_size(new)
                href = f"{API}/templates/{tpl['id']}/diskattachments/{new['id']}"
                tpl["_disks"].append({**att, "href": href,
                                      "id": new["id"], "disk": ref("disks", new["id"]),
                                      "vm": None, "template": ref("templates", tpl["id"])})
            tpl["status"] = "illegal" if failed else "ok"
            if vm["id"] in self.vms:
                vm["status"] = "down"
            self.log(f"template {tpl['id']} {tpl['status']}")

    def _sysprep(self, tpl: dict[str, Any], disk: dict[str, Any]) -> bool:
        """seal=true: the engine runs virt-sysprep on the template's disk on a host."""
        from imagepipe.tools.accel import guestfs_env

        result = run(["virt-sysprep", "--format", disk["_driver"], "-a", str(disk["_path"])],
                     check=False, timeout=1800, env=guestfs_env())
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            self.log(f"template {tpl['id']} virt-sysprep failed: {' '.join(tail)}")
            return False
        tpl["_sealed_by"] = "virt-sysprep"
        return True

    # --- template versions (AddVmTemplateCommand / RemoveVmTemplateCommand rules) -----------
    def base_of(self, tpl: dict[str, Any]) -> str:
        return str(((tpl.get("version") or {}).get("base_template") or {}).get("id", tpl["id"]))

    def template_version(self, body: dict[str, Any]) -> dict[str, Any]:
        """The new template's version: a base (number 1, its own base) unless the request
        names a base_template, which must exist and be a base; numbers count up per base."""
        base_id = (body.get("base_template") or {}).get("id")
        if not base_id:
            return {"version_name": body.get("version_name") or "base version",
                    "version_number": 1}
        base = self.templates.get(base_id)
        if base is None:
            raise Fault(409, "Operation Failed",
                        "[Cannot add Template. The relevant Template doesn't exist.]")
        if self.base_of(base) != base_id:
            raise Fault(409, "Operation Failed", "[Cannot add Template. Only the first template "
                        "version can be selected as the base template.]")
        numbers = [int(t["version"]["version_number"]) for t in self.templates.values()
                   if self.base_of(t) == base_id]
        return {"version_name": body.get("version_name"), "_base": base,
                "version_number": max(numbers) + 1}

    def latest_version(self, tpl: dict[str, Any]) -> dict[str, Any]:
        """The newest version of `tpl`'s family (for VMs set to use the latest version)."""
        base = self.base_of(tpl)
        family = [t for t in self.templates.values()
                  if self.base_of(t) == base and t["status"] == "ok"]
        return max(family, key=lambda t: int(t["version"]["version_number"]), default=tpl)

    def template(self, tid: str) -> dict[str, Any]:
        tpl = self.templates.get(tid)
        if tpl is None:
            raise Fault(404, "Not Found", None)
        return tpl

    def remove_template(self, tid: str) -> None:
        tpl = self.template(tid)
        if tid == BLANK_ID:
            raise Fault(409, "Operation Failed",
                        "[Cannot remove Template. Blank Template cannot be removed.]")
        if tpl["status"] == "locked":
            raise Fault(409, "Operation Failed", "[Cannot remove Template. Template is locked.]")
        users = [v["name"] for v in self.vms.values() if v["template"]["id"] == tid]
        if users:
            raise Fault(409, "Operation Failed", "[Cannot delete Template. Template is being "
                        f"used by the following VMs: {','.join(users)}.]")
        versions = [t["name"] for t in self.templates.values()
                    if t["id"] != tid and self.base_of(t) == tid]
        if versions:
            raise Fault(409, "Operation Failed", "[Cannot delete Base Template that has Template "
                        "Versions, please first remove all Template Versions for this Template: "
                        f"{','.join(versions)}.]")
        for att in tpl["_disks"]:
            self.delete_disk(att["id"])
        del self.templates[tid]
        self.log(f"template {tid} removed")


