"""The simulator's engine state: seeded inventory, disks on directory storage domains, faults.

Why one lock and plain dicts: the engine's behaviour that clients depend on is *ordering*
(a disk is locked until created, a transfer owns its disk, a VM is image_locked while a template
is copied). One re-entrant lock around all state plus a background tick (see `sim.py`) keeps
those orderings exact and easy to reason about; entities are dicts rendered by `xmlio`.
Volumes live at `<sd dir>/images/<disk id>/<volume id>` and are made with qemu-img as vdsm does.
"""

from __future__ import annotations

import datetime
import re
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from imagepipe.testing.ovirt_engine.xmlio import Fault, as_bool, as_int, require
from imagepipe.tools import qemu_img
from imagepipe.tools.run import run

API = "/ovirt-engine/api"
BLANK_ID = "00000000-0000-0000-0000-000000000000"


def new_id() -> str:
    return str(uuid.uuid4())


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ref(collection: str, entity_id: str) -> dict[str, str]:
    return {"href": f"{API}/{collection}/{entity_id}", "id": entity_id}


class Faults:
    """Injected faults. Integer values count down per use (a fault fires that many times)."""

    NAMES = ("bad_credentials", "missing_storage_domain", "transfer_paused_system",
             "ticket_add_fail", "disk_stuck_locked", "verify_fail", "disk_illegal_at_finalize",
             "template_name_in_use", "template_fail", "revoke_tokens", "bad_transfer_url",
             "finished_transfer_404", "drop_ticket",
             "drop_ticket_after")

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self._lock = threading.Lock()

    def set(self, values: dict[str, Any]) -> None:
        unknown = sorted(set(values) - set(self.NAMES))
        if unknown:
            raise ValueError(f"unknown faults {unknown}; known: {', '.join(self.NAMES)}")
        for key, value in values.items():
            if value in (None, False, 0):
                self.values.pop(key, None)
            else:
                self.values[key] = value

    def active(self, name: str) -> bool:
        return bool(self.values.get(name))

    def take(self, name: str) -> bool:
        """True if the fault fires now; consumes one use of a counted fault."""
        value = self.values.get(name)
        if not value:
            return False
        if value is not True and isinstance(value, int):
            if value <= 1:
                self.values.pop(name)
            else:
                self.values[name] = value - 1
        return True


    def countdown(self, name: str) -> bool:
        """For one-shot faults timed in requests: N fires once, on the N-th call from now."""
        with self._lock:
            value = self.values.get(name)
            if not value:
                return False
            if value is True or int(value) <= 1:
                self.values.pop(name)
                return True
            self.values[name] = int(value) - 1
            return False


class Core:
    """Inventory, lookups and disks. VMs/templates and transfers are mixed in by `Engine`."""

    datacenters: dict[str, dict[str, Any]]
    clusters: dict[str, dict[str, Any]]
    networks: dict[str, dict[str, Any]]
    profiles: dict[str, dict[str, Any]]
    hosts: dict[str, dict[str, Any]]

    def __init__(self, base: Path, *, delay: float = 0.3) -> None:
        self.base = base
        self.lock = threading.RLock()
        self.faults = Faults()
        self.delay = delay
        self.image_url = ""  # https://127.0.0.1:PORT/images/ set once the daemon runs
        self.events: list[str] = []
        self.dc_id, self.cluster_id, self.net_id = new_id(), new_id(), new_id()
        self.profile_id, self.host_id, self.sd_id = new_id(), new_id(), new_id()
        self.datacenters = {self.dc_id: {**ref("datacenters", self.dc_id), "name": "Default",
                                         "description": "The default Data Center",
                                         "local": False, "status": "up",
                                         "_storage": [self.sd_id]}}
        self.clusters = {self.cluster_id: {
            **ref("clusters", self.cluster_id), "name": "Default",
            "data_center": ref("datacenters", self.dc_id),
            "links": [("networks", f"{API}/clusters/{self.cluster_id}/networks")]}}
        self.networks = {self.net_id: {**ref("networks", self.net_id), "name": "ovirtmgmt",
                                       "description": "Management Network",
                                       "data_center": ref("datacenters", self.dc_id),
                                       "usages": None}}
        self.profiles = {self.profile_id: {**ref("vnicprofiles", self.profile_id),
                                           "name": "ovirtmgmt",
                                           "network": ref("networks", self.net_id)}}
        self.hosts = {self.host_id: {**ref("hosts", self.host_id), "name": "host1",
                                     "address": "127.0.0.1", "status": "up",
                                     "cluster": ref("clusters", self.cluster_id),
                                     "_hw_id": new_id()}}
        self.sds: dict[str, dict[str, Any]] = {}
        self.add_storage_domain("data1", self.sd_id)
        self.disks: dict[str, dict[str, Any]] = {}

    def add_storage_domain(self, name: str, sd_id: str | None = None) -> dict[str, Any]:
        sd_id = sd_id or new_id()
        path = self.base / "storage" / sd_id
        (path / "images").mkdir(parents=True, exist_ok=True)
        sd = {**ref("storagedomains", sd_id), "name": name, "type": "data",
              "storage": {"type": "nfs", "path": str(path)}, "master": True,
              "external_status": "ok", "available": 100 << 30, "used": 1 << 30,
              "data_centers": [ref("datacenters", self.dc_id)], "_path": path}
        self.sds[sd_id] = sd
        return sd

    def log(self, message: str) -> None:
        self.events.append(f"{time.time():.3f} {message}")

    # --- lookups -----------------------------------------------------------------------
    def visible_sds(self) -> dict[str, dict[str, Any]]:
        if self.faults.active("missing_storage_domain"):
            return {}
        return self.sds

    def collection(self, name: str) -> dict[str, dict[str, Any]]:
        table: dict[str, dict[str, dict[str, Any]]] = {
            "datacenters": self.datacenters, "clusters": self.clusters,
            "networks": self.networks, "vnicprofiles": self.profiles, "hosts": self.hosts,
            "storagedomains": self.visible_sds(), "disks": self.disks,
        }
        return table[name]

    def get(self, name: str, entity_id: str) -> dict[str, Any]:
        entity = self.collection(name).get(entity_id)
        if entity is None:
            raise Fault(404, "Not Found", None)
        return entity

    def find_named(self, name: str, value: dict[str, Any] | None, what: str) -> dict[str, Any]:
        """Resolve a `<x id/>` or `<x><name/></x>` reference in a request body."""
        items = self.collection(name)
        if isinstance(value, dict) and value.get("id"):
            if value["id"] in items:
                return items[value["id"]]
            raise Fault(400, "Operation Failed", f"[Cannot add {what}. The entity does not exist.]")
        if isinstance(value, dict) and value.get("name"):
            for item in items.values():
                if item["name"] == value["name"]:
                    return item
            raise Fault(404, "Operation Failed", f"Entity not found: {value['name']}")
        raise Fault(400, "Incomplete parameters", f"{what} [id|name] required")

    def search(self, name: str, query: str | None, case_sensitive: bool = True,
               limit: int | None = None) -> list[dict[str, Any]]:
        found = self.search_in(self.collection(name), name, query, case_sensitive)
        return found[:limit] if limit is not None else found

    def search_in(self, table: dict[str, dict[str, Any]], name: str, query: str | None,
                  case_sensitive: bool = True) -> list[dict[str, Any]]:
        """The engine's search language, the subset clients use: `k=v [and k=v ...]`."""
        items = list(table.values())
        if query:
            for clause in re.split(r"\s+and\s+", query.strip(), flags=re.I):
                m = re.fullmatch(r"\s*([\w.]+)\s*=\s*(.*?)\s*", clause)
                if not m:
                    raise Fault(400, "Operation Failed", f"[Invalid search query: {query}]")
                key, value = m.group(1), m.group(2).strip('"')
                items = [i for i in items if self._matches(name, i, key, value, case_sensitive)]
        return items

    def _field(self, collection: str, item: dict[str, Any], key: str) -> list[str]:
        k = key.lower()
        if k in ("name", "id", "status", "description", "comment"):
            return [str(item.get(k, ""))]
        if k == "hw_id":
            return [item.get("_hw_id", "")]
        if k == "datacenter":
            return [self.datacenters[self.dc_id]["name"]]
        if k == "storage.name" and collection == "datacenters":
            visible = self.visible_sds()
            return [self.sds[s]["name"] for s in item.get("_storage", []) if s in visible]
        if k == "clusters.name" and collection == "datacenters":
            return [c["name"] for c in self.clusters.values()
                    if c["data_center"]["id"] == item["id"]]
        raise Fault(400, "Operation Failed", f"[Invalid search query: unknown field '{key}']")

    def _matches(self, collection: str, item: dict[str, Any], key: str, value: str,
                 case_sensitive: bool) -> bool:
        pattern = "^" + ".*".join(re.escape(p) for p in value.split("*")) + "$"
        flags = 0 if case_sensitive else re.I
        return any(re.match(pattern, v, flags) for v in self._field(collection, item, key))

    # --- disks ---------------------------------------------------------------------------
    def add_disk(self, body: dict[str, Any]) -> dict[str, Any]:
        require(body, "Disk", "add", "provisioned_size", "format")
        sds = body.get("storage_domains") or []
        if not sds:
            raise Fault(400, "Incomplete parameters", "Disk [storageDomains] required for add")
        fmt = body["format"]
        if fmt not in ("cow", "raw"):
            raise Fault(400, "Operation Failed", f"[Invalid disk format: {fmt}]")
        sd = self.find_named("storagedomains", sds[0], "Virtual Disk")
        size = as_int(body["provisioned_size"], "provisioned_size")
        sparse = as_bool(body.get("sparse"), True)
        name = body.get("name") or body.get("alias") or f"disk-{new_id()[:8]}"
        return self.create_disk(sd, name=name, fmt=fmt, size=size, sparse=sparse,
                                content_type=body.get("content_type") or "data",
                                description=body.get("description"),
                                initial_size=body.get("initial_size"),
                                disk_id=body.get("id"), backup=body.get("backup"))

    def create_disk(self, sd: dict[str, Any], *, name: str, fmt: str, size: int, sparse: bool,
                    content_type: str = "data", description: str | None = None,
                    initial_size: Any = None, disk_id: str | None = None,
                    backup: str | None = None, source: Path | None = None) -> dict[str, Any]:
        disk_id = disk_id or new_id()
        if disk_id in self.disks:
            raise Fault(409, "Operation Failed", "[Cannot add Virtual Disk. Disk already exists.]")
        image_id = new_id()
        path: Path = sd["_path"] / "images" / disk_id / image_id
        path.parent.mkdir(parents=True)
        driver = "qcow2" if fmt == "cow" else "raw"
        if source is None:
            prealloc = {"preallocation": "falloc"} if fmt == "raw" and not sparse else None
            run(qemu_img.create_argv(path, fmt=driver, size=size, options=prealloc), timeout=60)
        disk = {**ref("disks", disk_id), "name": name, "alias": name, "description": description,
                "format": fmt, "provisioned_size": size,
                "initial_size": initial_size if fmt == "cow" else None,
                "actual_size": 0, "total_size": 0, "sparse": sparse, "status": "locked",
                "content_type": content_type, "storage_type": "image", "image_id": image_id,
                "backup": backup or "none", "shareable": False,
                "storage_domains": [ref("storagedomains", sd["id"])],
                "_path": path, "_driver": driver,
                "_ready_at": time.monotonic() + self.delay + self._stuck_for()}
        self.disks[disk_id] = disk
        self.log(f"disk {disk_id} added ({name}, {fmt}, {size})")
        return disk

    def _stuck_for(self) -> float:
        value = self.faults.values.get("disk_stuck_locked")
        if not value:
            return 0.0
        self.faults.values.pop("disk_stuck_locked")
        return 3600.0 if value is True else float(value)

    def remove_disk(self, disk_id: str, *, force: bool = False) -> None:
        disk = self.get("disks", disk_id)
        if disk["status"] == "locked" and not force:
            raise Fault(409, "Operation Failed",
                        "[Cannot remove Virtual Disk: The following disks are locked: "
                        f"{disk['name']}. Please try again in a few minutes.]")
        self.delete_disk(disk_id)

    def delete_disk(self, disk_id: str) -> None:
        disk = self.disks.pop(disk_id, None)
        if disk is not None:
            shutil.rmtree(disk["_path"].parent, ignore_errors=True)
            self.log(f"disk {disk_id} removed")

    def refresh_disk_size(self, disk: dict[str, Any]) -> None:
        try:
            st = disk["_path"].stat()
            disk["actual_size"] = disk["total_size"] = st.st_blocks * 512
        except FileNotFoundError:
            pass

    def tick_disks(self) -> None:
        now = time.monotonic()
        for disk in self.disks.values():
            ready = disk.get("_ready_at")
            if ready is not None and now >= ready and disk["status"] == "locked":
                disk["status"] = "ok"
                disk["_ready_at"] = None
                self.refresh_disk_size(disk)
