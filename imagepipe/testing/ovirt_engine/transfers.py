"""Image transfers: the engine's phase machine (TransferDiskImageCommand), docs/ovirt-simulator.md
section 4.

Why it matters: clients fail in the gaps between phases (a ticket that is not there yet, a disk
that the engine removes after a failed verification, a transfer that is gone once finished).
Each step below is what the engine does, in the same order, with the real imageio daemon and a
qemu-nbd started exactly as vdsm starts it for `format=raw` transfers.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagepipe.testing.ovirt_engine.imageio import DaemonError, ImageioDaemon
from imagepipe.testing.ovirt_engine.state import Faults, new_id, ref
from imagepipe.testing.ovirt_engine.xmlio import Fault, as_int
from imagepipe.tools import qemu_img
from imagepipe.tools.run import run, stop_process

MiB = 1 << 20
ACTIONS = ("finalize", "cancel", "pause", "resume", "extend")
FINISHED = ("finished_success", "finished_failure")


class TransfersMixin:
    """Mixed into `Engine`; uses its lock, disks, faults and imageio daemon."""

    if TYPE_CHECKING:  # provided by Core
        faults: Faults
        delay: float
        host_id: str
        image_url: str
        base: Path

        def log(self, message: str) -> None: ...
        def delete_disk(self, disk_id: str) -> None: ...
        def refresh_disk_size(self, disk: dict[str, Any]) -> None: ...

    daemon: ImageioDaemon | None
    disks: dict[str, dict[str, Any]]
    transfers: dict[str, dict[str, Any]]
    keep_finished_s: float
    ticket_ids: list[str]

    def add_transfer(self, body: dict[str, Any]) -> dict[str, Any]:
        target = body.get("disk") or body.get("image")
        if not isinstance(target, dict) or not target.get("id"):
            raise Fault(400, "Incomplete parameters",
                        "ImageTransfer [disk.id|image.id] required for add")
        disk = self.disks.get(target["id"])
        if disk is None:
            raise Fault(400, "Operation Failed",
                        "[Cannot transfer Virtual Disk. The specified disk does not exist.]")
        if disk["status"] == "locked":
            raise Fault(409, "Operation Failed",
                        "[Cannot transfer Virtual Disk: Disk is locked. Please try again later.]")
        if disk["status"] == "illegal":
            raise Fault(409, "Operation Failed",
                        "[Cannot transfer Virtual Disk: Disk is in illegal state.]")
        direction = body.get("direction") or "upload"
        if direction not in ("upload", "download"):
            raise Fault(400, "Operation Failed", f"[Invalid direction: {direction}]")
        policy = body.get("timeout_policy") or "legacy"
        if policy not in ("legacy", "pause", "cancel"):
            raise Fault(400, "Operation Failed", f"[Invalid timeout policy: {policy}]")
        tid = new_id()
        transfer = {**ref("imagetransfers", tid), "active": False, "direction": direction,
                    # format=raw selects the NBD backend; omitted: the file backend, and the
                    # engine reports the disk's own format.
                    "format": body.get("format") or disk["format"],
                    "_nbd_backend": body.get("format") == "raw",
                    "inactivity_timeout": as_int(body.get("inactivity_timeout") or 60,
                                                 "inactivity_timeout"),
                    "phase": "initializing", "shallow": False, "timeout_policy": policy,
                    "transferred": 0, "proxy_url": None, "transfer_url": None,
                    "host": ref("hosts", self.host_id),
                    "image": {"id": disk["id"]}, "disk": ref("disks", disk["id"]),
                    "_disk_id": disk["id"], "_at": time.monotonic() + self.delay,
                    "_ticket": None, "_nbd": None, "_sock": None, "_extended": 0.0}
        disk["status"] = "locked"
        self.transfers[tid] = transfer
        self.log(f"transfer {tid} added for disk {disk['id']}")
        return transfer

    def transfer_action(self, tid: str, action: str) -> None:
        t = self.transfers.get(tid)
        if t is None:
            raise Fault(404, "Not Found", None)
        phase = t["phase"]
        allowed = {"finalize": ("transferring", "paused_user"),
                   "cancel": ("initializing", "transferring", "paused_user", "paused_system"),
                   "pause": ("transferring",), "resume": ("paused_user", "paused_system"),
                   "extend": ("transferring",)}[action]
        if phase not in allowed:
            raise Fault(409, "Operation Failed",
                        f"[Cannot {action} image transfer: the transfer is in phase {phase}.]")
        self.log(f"transfer {tid} {action}")
        if action == "finalize":
            t["phase"] = "finalizing_success"
        elif action == "cancel":
            t["phase"] = "cancelled_user"
        elif action == "pause":
            t["phase"] = "paused_user"
        elif action == "resume":
            t["phase"] = "resuming"
            t["_at"] = time.monotonic()

    # --- the background tick ----------------------------------------------------------
    def tick_transfers(self) -> None:
        now = time.monotonic()
        for tid, t in list(self.transfers.items()):
            phase = t["phase"]
            if phase in ("initializing", "resuming") and now >= t["_at"]:
                self._prepare(t)
            elif phase == "transferring":
                self._monitor(t, now)
            elif phase == "finalizing_success":
                self._finalize(t)
            elif phase in ("cancelled_user", "cancelled_system"):
                t["phase"] = "finalizing_cleanup"
            elif phase == "finalizing_cleanup":
                self._teardown(t)
                self.delete_disk(t["_disk_id"])
                self._finish(t, "finished_failure", now)
            elif phase == "finalizing_failure":
                self.delete_disk(t["_disk_id"])
                self._finish(t, "finished_failure", now)
            elif phase in FINISHED and now >= t["_at"]:
                del self.transfers[tid]

    def _finish(self, t: dict[str, Any], phase: str, now: float) -> None:
        t["phase"] = phase
        t["active"] = False
        keep = 0.0 if self.faults.active("finished_transfer_404") else self.keep_finished_s
        t["_at"] = now + keep
        self.log(f"transfer {t['id']} {phase}")

    def _prepare(self, t: dict[str, Any]) -> None:
        """Start NBD (format=raw) or use the file backend, then add the imageio ticket."""
        faults = self.faults
        disk = self.disks[t["_disk_id"]]
        if t["_ticket"] is None:
            if faults.take("transfer_paused_system") or faults.take("ticket_add_fail"):
                t["phase"] = "paused_system"
                self.log(f"transfer {t['id']} paused_system (ticket add failed)")
                return
            ticket_id = new_id()
            if t["_nbd_backend"]:
                url = self._start_nbd(t, disk)
                size = disk["provisioned_size"]
            else:
                url = f"file://{disk['_path']}"
                size = disk["provisioned_size"]
                if disk["format"] == "cow":
                    size = math.ceil(size * 1.1) + MiB
            ticket = {"uuid": ticket_id, "size": size, "url": url, "timeout": 300,
                      "inactivity_timeout": t["inactivity_timeout"],
                      "ops": ["write"] if t["direction"] == "upload" else ["read"],
                      "sparse": bool(disk["sparse"]), "dirty": False,
                      "transfer_id": t["id"], "filename": disk["name"]}
            try:
                assert self.daemon is not None
                self.daemon.add_ticket(ticket)
            except (DaemonError, OSError) as exc:
                self._teardown(t)
                t["phase"] = "paused_system"
                self.log(f"transfer {t['id']} paused_system: {exc}")
                return
            t["_ticket"] = ticket_id
            t["_ticket_spec"] = ticket
            self.ticket_ids.append(ticket_id)
            good = self.image_url + ticket_id
            t["proxy_url"] = good
            if faults.take("bad_transfer_url"):
                t["transfer_url"] = "https://127.0.0.1:9/images/" + ticket_id
            else:
                t["transfer_url"] = good
            t["_extended"] = time.monotonic()
        elif self.daemon is not None and self.daemon.get_ticket(t["_ticket"]) is None:
            # Resuming after the host lost the ticket: the engine adds it again.
            try:
                self.daemon.add_ticket(t["_ticket_spec"])
            except (DaemonError, OSError) as exc:
                t["phase"] = "paused_system"
                self.log(f"transfer {t['id']} paused_system: {exc}")
                return
            self.log(f"transfer {t['id']} ticket added again on resume")
        t["phase"] = "transferring"

    def _start_nbd(self, t: dict[str, Any], disk: dict[str, Any]) -> str:
        sock = Path(self.base) / "run" / "nbd" / f"{t['id']}.sock"
        sock.parent.mkdir(parents=True, exist_ok=True)
        spec = "json:" + json.dumps({"driver": disk["_driver"],
                                     "file": {"driver": "file", "filename": str(disk["_path"])}})
        argv = ["qemu-nbd", "--socket", str(sock), "--persistent", "--shared=8",
                "--export-name=", "--cache=none", "--aio=native", "--discard=unmap", spec]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        t["_nbd"], t["_sock"] = proc, sock
        deadline = time.monotonic() + 10
        while not sock.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                self._teardown(t)
                raise Fault(500, "Operation Failed", f"[qemu-nbd failed: {err.strip()}]")
            time.sleep(0.01)
        return f"nbd:unix:{sock}"

    def _monitor(self, t: dict[str, Any], now: float) -> None:
        """Mirror the ticket's activity; apply the inactivity policy; extend before expiry."""
        assert self.daemon is not None
        try:
            info = self.daemon.get_ticket(t["_ticket"])
        except (DaemonError, OSError):
            info = None
        if info is None:
            t["phase"] = "paused_system"
            return
        t["active"] = bool(info.get("active"))
        t["transferred"] = int(info.get("transferred") or 0)
        after = self.faults.values.get("drop_ticket_after")
        if after is not None and t["transferred"] >= int(after):
            self.faults.values.pop("drop_ticket_after")
            after = True
        if after is True or (t["active"] and self.faults.take("drop_ticket")):
            # vdsm lost the ticket mid-upload: clients get 403, the engine pauses the transfer.
            self.daemon.remove_ticket(t["_ticket"])
            self.log(f"transfer {t['id']} ticket dropped mid-upload")
            return
        if not t["active"] and info.get("idle_time", 0) > t["inactivity_timeout"]:
            t["phase"] = "cancelled_system" if t["timeout_policy"] == "cancel" else "paused_system"
            return
        if now - t["_extended"] > 60:
            self.daemon.extend_ticket(t["_ticket"], 300)
            t["_extended"] = now

    def _teardown(self, t: dict[str, Any]) -> None:
        """Remove the ticket and stop qemu-nbd (by PID): nothing outlives the transfer."""
        if t.get("_ticket") and self.daemon is not None:
            try:
                self.daemon.remove_ticket(t["_ticket"])
            except (DaemonError, OSError) as exc:
                self.log(f"transfer {t['id']} ticket removal failed: {exc}")
            t["_ticket"] = None
        proc: subprocess.Popen[bytes] | None = t.get("_nbd")
        if proc is not None:
            if proc.poll() is None:
                stop_process(proc, term_wait=10.0, group=False)
            if proc.stderr:
                proc.stderr.close()
            t["_nbd"] = None
        sock = t.get("_sock")
        if sock is not None:
            Path(sock).unlink(missing_ok=True)

    def _finalize(self, t: dict[str, Any]) -> None:
        """Verify the volume as the engine does; a bad volume is removed with the disk."""
        self._teardown(t)
        disk = self.disks[t["_disk_id"]]
        faults = self.faults
        ok = not (faults.take("verify_fail") or faults.take("disk_illegal_at_finalize"))
        if ok:
            info = run(qemu_img.info_argv(disk["_path"]), check=False)
            ok = info.returncode == 0 and f'"format": "{disk["_driver"]}"' in info.stdout
            if ok and disk["_driver"] == "qcow2":
                ok = run(qemu_img.check_argv(disk["_path"], fmt="qcow2"),
                         check=False).returncode == 0
        if ok:
            disk["status"] = "ok"
            self.refresh_disk_size(disk)
            self._finish(t, "finished_success", time.monotonic())
        else:
            disk["status"] = "illegal"
            t["phase"] = "finalizing_failure"
            self.log(f"transfer {t['id']} verification failed; disk {disk['id']} illegal")

    def shutdown_transfers(self) -> None:
        for t in self.transfers.values():
            self._teardown(t)

    def render_transfer(self, t: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in t.items() if k not in ("disk",)}
