"""A test HTTP file server with Range support and fault injection, run as a subprocess.

Why a subprocess: the client under test (and `curl` in the benchmark) then competes with a real
server process, not with the test's own GIL; it is stopped by PID like every test server.

Run: `python tests/integration/httpserver.py ROOT PORT`. Control endpoints (GET):
  /__control/fault?path=/f&kind=drop&after=N   close the connection after N body bytes, once
  /__control/fault?path=/f&kind=wrong          serve different bytes (same length)
  /__control/fault?path=/f&kind=404            answer 404
  /__control/fault?path=/f&kind=500&count=N    answer 500 N times, then normally
  /__control/fault?path=/f&kind=slow&rate=B    send at most B bytes/s
  /__control/fault?path=/f&kind=norange        ignore Range headers (answer 200)
  /__control/log     JSON list of {path, range, status, sent}
  /__control/reset   forget faults and the log
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

ROOT = Path(".")
FAULTS: dict[str, dict[str, str]] = {}
LOG: list[dict[str, object]] = []
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        if url.path.startswith("/__control/"):
            self._control(url.path.rsplit("/", 1)[1], parse_qs(url.query))
            return
        self._serve(head=False)

    def _control(self, what: str, q: dict[str, list[str]]) -> None:
        with LOCK:
            if what == "fault":
                FAULTS[q["path"][0]] = {k: v[0] for k, v in q.items()}
                body = b"ok"
            elif what == "log":
                body = json.dumps(LOG).encode()
            else:
                FAULTS.clear()
                LOG.clear()
                body = b"ok"
        self._reply(200, body)

    def _reply(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        path = urlparse(self.path).path
        rng = self.headers.get("Range")
        entry: dict[str, object] = {"path": path, "range": rng, "status": 0, "sent": 0}
        with LOCK:
            LOG.append(entry)
            fault = dict(FAULTS.get(path, {}))
            if fault.get("kind") == "500":
                left = int(fault.get("count", "1"))
                if left <= 1:
                    FAULTS.pop(path)
                else:
                    FAULTS[path]["count"] = str(left - 1)
            if fault.get("kind") == "drop":
                FAULTS.pop(path)  # once
        file = ROOT / path.lstrip("/")
        if fault.get("kind") in ("404", "500") or not file.is_file():
            status = 500 if fault.get("kind") == "500" else 404
            entry["status"] = status
            self._reply(status, b"no")
            return
        size = file.stat().st_size
        start, end = 0, size - 1
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
        if m and fault.get("kind") != "norange":
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else size - 1
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                entry["status"] = 416
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            entry["status"] = 206
        else:
            self.send_response(200)
            entry["status"] = 200
        count = end - start + 1
        self.send_header("Content-Length", str(count))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if head:
            return
        self._body(file, start, count, fault, entry)

    def _body(self, file: Path, start: int, count: int, fault: dict[str, str],
              entry: dict[str, object]) -> None:
        kind = fault.get("kind")
        self.wfile.flush()
        with open(file, "rb") as f:
            if kind is None or kind == "norange":
                sent = self.connection.sendfile(f, start, count)
                entry["sent"] = sent
                return
            f.seek(start)
            limit = int(fault["after"]) if kind == "drop" else count
            rate = float(fault.get("rate", "0")) if kind == "slow" else 0.0
            sent = 0
            chunk = 64 << 10
            t0 = time.monotonic()
            while sent < min(count, limit):
                data = f.read(min(chunk, min(count, limit) - sent))
                if not data:
                    break
                if kind == "wrong":
                    data = bytes(b ^ 0xFF for b in data)
                try:
                    self.wfile.write(data)
                except OSError:
                    break
                sent += len(data)
                entry["sent"] = sent
                if rate:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        if kind == "drop":
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)


def main() -> None:
    global ROOT
    ROOT = Path(sys.argv[1])
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])), Handler)
    server.daemon_threads = True
    print(f"serving {ROOT} on {server.server_address[1]} pid {os.getpid()}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
