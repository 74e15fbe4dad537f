"""HTTP(S) front end: routes the engine's URLs onto `Engine` methods under its one lock.

Why a route table of regexes: it reads like the API reference (method, path, handler), and any
URL not in it answers 404 as the engine does, so a client relying on an endpoint the simulator
does not model fails loudly instead of passing by accident.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from imagepipe.testing.ovirt_engine import xmlio
from imagepipe.testing.ovirt_engine.state import API, BLANK_ID, now_text
from imagepipe.testing.ovirt_engine.xmlio import Fault

if TYPE_CHECKING:
    from imagepipe.testing.ovirt_engine.simulated import Engine

log = logging.getLogger("imagepipe.sim")
ID = r"([0-9a-fA-F-]{36})"
Reply = tuple[int, bytes]
LISTS = {"datacenters": "data_centers", "clusters": "clusters", "networks": "networks",
         "vnicprofiles": "vnic_profiles", "hosts": "hosts", "storagedomains": "storage_domains",
         "disks": "disks"}


def _ok(tag: str, obj: dict[str, Any], status: int = 200) -> Reply:
    return status, xmlio.render(tag, obj)


class Routes:
    """Handlers take (engine, match, query, body) and return (status, xml)."""

    def __init__(self, engine: Engine) -> None:
        self.e = engine
        simple = "|".join(LISTS)
        self.table: list[tuple[str, re.Pattern[str], Callable[..., Reply]]] = [
            ("GET", re.compile(r"/?"), self.api_root),
            ("GET", re.compile(rf"/({simple})"), self.list_simple),
            ("GET", re.compile(rf"/({simple})/{ID}"), self.get_simple),
            ("GET", re.compile(rf"/clusters/{ID}/networks"), self.cluster_networks),
            ("POST", re.compile(r"/disks"), self.add_disk),
            ("DELETE", re.compile(rf"/disks/{ID}"), self.remove_disk),
            ("GET", re.compile(r"/imagetransfers"), self.list_transfers),
            ("POST", re.compile(r"/imagetransfers"), self.add_transfer),
            ("GET", re.compile(rf"/imagetransfers/{ID}"), self.get_transfer),
            ("POST", re.compile(rf"/imagetransfers/{ID}/(\w+)"), self.transfer_action),
            ("GET", re.compile(r"/vms"), self.list_vms),
            ("POST", re.compile(r"/vms"), self.add_vm),
            ("GET", re.compile(rf"/vms/{ID}"), self.get_vm),
            ("DELETE", re.compile(rf"/vms/{ID}"), self.remove_vm),
            ("GET", re.compile(rf"/vms/{ID}/diskattachments"), self.vm_attachments),
            ("POST", re.compile(rf"/vms/{ID}/diskattachments"), self.attach_disk),
            ("GET", re.compile(rf"/vms/{ID}/nics"), self.vm_nics),
            ("POST", re.compile(rf"/vms/{ID}/nics"), self.add_nic),
            ("GET", re.compile(r"/templates"), self.list_templates),
            ("POST", re.compile(r"/templates"), self.add_template),
            ("GET", re.compile(rf"/templates/{ID}"), self.get_template),
            ("DELETE", re.compile(rf"/templates/{ID}"), self.remove_template),
            ("GET", re.compile(rf"/templates/{ID}/diskattachments"), self.template_attachments),
        ]

    def dispatch(self, method: str, path: str, query: dict[str, str], body: bytes) -> Reply:
        matched_path = False
        for m, pattern, handler in self.table:
            match = pattern.fullmatch(path)
            if match:
                matched_path = True
                if m == method:
                    with self.e.lock:
                        return handler(match, query, body)
        if matched_path:
            return 405, xmlio.render_fault("Method Not Allowed", None)
        return 404, b""

    def _search(self, collection: str, query: dict[str, str],
                items: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        case = xmlio.as_bool(query.get("case_sensitive"), True)
        limit = int(query["max"]) if query.get("max") else None
        if items is None:
            return self.e.search(collection, query.get("search"), case, limit)
        table = {i["id"]: i for i in items}
        found = self.e.search_in(table, collection, query.get("search"), case)
        return found[:limit] if limit is not None else found

    # --- root and inventory ---
    def api_root(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("api", {"href": API, "product_info": {
            "name": "oVirt Engine (imagepipe simulator)", "vendor": "ovirt.org",
            "version": {"build": 1, "full_version": "4.5.5-1.el9", "major": 4, "minor": 5,
                        "revision": 0}},
            "special_objects": {"blank_template": {"href": f"{API}/templates/{BLANK_ID}",
                                                   "id": BLANK_ID}},
            "time": now_text()})

    def list_simple(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return 200, xmlio.render_list(LISTS[m.group(1)], self._search(m.group(1), q))

    def get_simple(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        tag = xmlio.SINGULAR[LISTS[m.group(1)]]
        return _ok(tag, self.e.get(m.group(1), m.group(2)))

    def cluster_networks(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        self.e.get("clusters", m.group(1))
        return 200, xmlio.render_list("networks", list(self.e.networks.values()))

    # --- disks ---
    def add_disk(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("disk", self.e.add_disk(xmlio.parse(b, "disk")), 202)

    def remove_disk(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        self.e.remove_disk(m.group(1))
        return 200, xmlio.action_complete()

    # --- transfers ---
    def list_transfers(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        items = [self.e.render_transfer(t) for t in self.e.transfers.values()]
        return 200, xmlio.render_list("image_transfers", items)

    def add_transfer(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        t = self.e.add_transfer(xmlio.parse(b, "image_transfer"))
        return _ok("image_transfer", self.e.render_transfer(t), 201)

    def get_transfer(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        t = self.e.transfers.get(m.group(1))
        if t is None:
            return 404, b""
        return _ok("image_transfer", self.e.render_transfer(t))

    def transfer_action(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        from imagepipe.testing.ovirt_engine.transfers import ACTIONS

        if m.group(2) not in ACTIONS:
            return 404, b""
        xmlio.parse(b, "action")
        self.e.transfer_action(m.group(1), m.group(2))
        return 200, xmlio.action_complete()

    # --- VMs ---
    def list_vms(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return 200, xmlio.render_list("vms", self._search("vms", q, list(self.e.vms.values())))

    def add_vm(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("vm", self.e.add_vm(xmlio.parse(b, "vm")), 201)

    def get_vm(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("vm", self.e.vm(m.group(1)))

    def remove_vm(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        self.e.remove_vm(m.group(1), xmlio.as_bool(q.get("detach_only"), False))
        return 200, xmlio.action_complete()

    def vm_attachments(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        items = list(self.e.vm(m.group(1))["_attachments"].values())
        return 200, xmlio.render_list("disk_attachments", items)

    def attach_disk(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("disk_attachment",
                   self.e.attach_disk(m.group(1), xmlio.parse(b, "disk_attachment")), 201)

    def vm_nics(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return 200, xmlio.render_list("nics", list(self.e.vm(m.group(1))["_nics"].values()))

    def add_nic(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("nic", self.e.add_nic(m.group(1), xmlio.parse(b, "nic")), 201)

    # --- templates ---
    def list_templates(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        items = self._search("templates", q, list(self.e.templates.values()))
        return 200, xmlio.render_list("templates", items)

    def add_template(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        body = xmlio.parse(b, "template")
        tpl = self.e.add_template(body, seal=xmlio.as_bool(q.get("seal"), False))
        return _ok("template", tpl, 202)

    def get_template(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        return _ok("template", self.e.template(m.group(1)))

    def remove_template(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        self.e.remove_template(m.group(1))
        return 200, xmlio.action_complete()

    def template_attachments(self, m: re.Match[str], q: dict[str, str], b: bytes) -> Reply:
        items = self.e.template(m.group(1))["_disks"]
        return 200, xmlio.render_list("disk_attachments", items)


class Handler(BaseHTTPRequestHandler):
    server: EngineHTTPServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, ctype: str = "application/xml",
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        body = self._body()
        engine = self.server.engine
        path = url.path.rstrip("/") or "/"
        if path == "/ovirt-engine/sso/oauth/token" and method == "POST":
            form = dict(parse_qsl(body.decode(), keep_blank_values=True))
            status, data = engine.sso.token(form, refuse=engine.faults.active("bad_credentials"))
            self._send(status, json.dumps(data).encode(), "application/json")
        elif path == "/ovirt-engine/services/sso-logout":
            form = dict(parse_qsl(body.decode() or url.query, keep_blank_values=True))
            engine.sso.logout(form.get("token"))
            self._send(200, b"{}", "application/json")
        elif path.startswith("/sim/"):
            status, data = engine.sim_endpoint(method, path, body)
            self._send(status, json.dumps(data, default=str).encode(), "application/json")
        elif path == API or path.startswith(API + "/"):
            self._api(method, path[len(API):], query, body)
        else:
            self._send(404, b"", "text/html")

    def _api(self, method: str, path: str, query: dict[str, str], body: bytes) -> None:
        engine = self.server.engine
        if engine.faults.countdown("revoke_tokens"):
            engine.sso.revoke_all()
        if not engine.sso.valid(self.headers.get("Authorization")):
            self._send(401, b"", headers={"WWW-Authenticate": "Bearer"})
            return
        try:
            status, reply = self.server.routes.dispatch(method, path, query, body)
        except Fault as fault:
            status = fault.status
            reply = b"" if fault.reason == "Not Found" else xmlio.render_fault(fault.reason,
                                                                               fault.detail)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hang
            log.exception("simulator error")
            status, reply = 500, xmlio.render_fault("Operation Failed", f"[{exc}]")
        self._send(status, reply)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


class EngineHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], engine: Engine) -> None:
        super().__init__(address, Handler)
        self.engine = engine
        self.routes = Routes(engine)
