"""`Engine`: the simulated engine's state and behaviour (disks, VMs, templates, transfers, SSO).

Why apart from `sim.py`: the HTTP front end (`server.py`) routes requests onto an `Engine`, and
`sim.py` starts that front end; with the engine here, neither of the two imports the other back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagepipe.testing.ovirt_engine.imageio import ImageioDaemon
from imagepipe.testing.ovirt_engine.sso import Sso
from imagepipe.testing.ovirt_engine.state import Core
from imagepipe.testing.ovirt_engine.transfers import TransfersMixin
from imagepipe.testing.ovirt_engine.vms import VmsMixin


class Engine(TransfersMixin, VmsMixin, Core):
    def __init__(self, base: Path, *, username: str, password: str, delay: float,
                 keep_finished_s: float) -> None:
        Core.__init__(self, base, delay=delay)
        self.transfers: dict[str, dict[str, Any]] = {}
        self.vms: dict[str, dict[str, Any]] = {}
        self.templates: dict[str, dict[str, Any]] = {}
        self.keep_finished_s = keep_finished_s
        self.ticket_ids: list[str] = []
        self.daemon: ImageioDaemon | None = None
        self.sso = Sso(username, password)
        self.seed_templates()

    def set_faults(self, values: dict[str, Any]) -> None:
        """Faults, plus `delay_s`: the engine's step delay (disk unlock, transfer init, copy)."""
        values = dict(values)
        if "delay_s" in values:
            self.delay = float(values.pop("delay_s"))
        self.faults.set(values)

    def tick(self) -> None:
        with self.lock:
            self.tick_disks()
            self.tick_transfers()

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot for tests: what exists, what is locked, what is still running."""
        with self.lock:
            def public(e: dict[str, Any]) -> dict[str, Any]:
                out = {k: v for k, v in e.items() if not k.startswith("_") and k != "links"}
                out.update({k[1:]: v for k, v in e.items()
                            if k in ("_path", "_sealed", "_sealed_by", "_driver")})
                return out

            return {
                "disks": [public(d) for d in self.disks.values()],
                "vms": [{**public(v), "disk_ids": list(v["_attachments"]),
                         "nic_count": len(v["_nics"])} for v in self.vms.values()],
                "templates": [{**public(t), "disk_ids": [a["id"] for a in t["_disks"]]}
                              for t in self.templates.values()],
                "transfers": [{**public(t), "ticket": t["_ticket"],
                               "nbd_pid": t["_nbd"].pid if t["_nbd"] else None}
                              for t in self.transfers.values()],
                "logins": self.sso.logins, "logouts": self.sso.logouts,
                "faults": dict(self.faults.values), "events": self.events[-50:],
            }

    def sim_endpoint(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        if path == "/sim/faults" and method == "POST":
            try:
                with self.lock:
                    self.set_faults(json.loads(body or b"{}"))
            except (ValueError, TypeError) as exc:
                return 400, {"error": str(exc)}
            return 200, {"faults": self.faults.values}
        if path == "/sim/state" and method == "GET":
            return 200, self.state()
        parts = path.split("/")  # /sim/vms/ID/configdrive: what the VM's start would get
        if len(parts) == 5 and parts[2] == "vms" and parts[4] == "configdrive" and method == "GET":
            from imagepipe.testing.ovirt_engine.payload import vm_payload

            with self.lock:
                vm = self.vms.get(parts[3])
                if vm is None:
                    return 404, {"error": f"no such VM: {parts[3]}"}
                files = vm_payload(vm)
            return 200, {"label": "config-2",
                         "files": {k: v.decode("utf-8", "replace") for k, v in files.items()}}
        return 404, {"error": f"no such simulator endpoint: {method} {path}"}
