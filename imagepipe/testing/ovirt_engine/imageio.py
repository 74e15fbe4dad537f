"""The real ovirt-imageio daemon, run on 127.0.0.1 without vdsm.

Why the real daemon: the data plane is where uploads break (TLS, ranges, zero/flush, tickets,
checksums). A fake would only agree with our client; the daemon keeps the simulator honest.
Configured as docs/ovirt-simulator.md section 3 explains: our own CA, run_dir in a temp dir,
local unix socket off, control API on a unix socket, remote port chosen by the kernel and read
from its log.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from imagepipe.testing.ovirt_engine.pki import Pki
from imagepipe.tools.run import stop_process

_LISTENING = re.compile(r"listening on \('127\.0\.0\.1', (\d+)\)")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class DaemonError(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"imageio control API answered {status}: {text}")
        self.status = status


def _daemon_program() -> str:
    """The ovirt-imageio script next to our interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "ovirt-imageio"
    if beside.exists():
        return str(beside)
    found = shutil.which("ovirt-imageio")
    if not found:
        raise FileNotFoundError("ovirt-imageio is not installed (pip install ovirt-imageio)")
    return found


class ImageioDaemon:
    """Context manager: start the daemon, wait until it listens, stop it by PID on exit."""

    def __init__(self, base: Path, pki: Pki) -> None:
        self.base = base
        self.pki = pki
        self.run_dir = base / "run"
        self.control_socket = self.run_dir / "control.sock"
        self.log_file = base / "log" / "daemon.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        conf_dir = self.base / "etc"
        (conf_dir / "conf.d").mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        text = f"""\
[daemon]
systemd_enable = false
drop_privileges = false
run_dir = {self.run_dir}
poll_interval = 0.5

[tls]
enable = true
key_file = {self.pki.key_file}
cert_file = {self.pki.cert_file}
ca_file = {self.pki.ca_file}

[remote]
host = 127.0.0.1
port = 0

[local]
enable = false

[control]
transport = unix
socket = {self.control_socket}

[handlers]
keys = logfile

[logger_root]
level = INFO
handlers = logfile

[handler_logfile]
keyword__class = logging.FileHandler
args = ('{self.log_file}',)
kwargs = {{}}
level = DEBUG
formatter = long
"""
        (conf_dir / "conf.d" / "50-imagepipe.conf").write_text(text)
        return conf_dir

    def start(self, timeout: float = 20) -> None:
        conf_dir = self._write_config()
        self.proc = subprocess.Popen([_daemon_program(), "-c", str(conf_dir)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.base / "log" / "stderr.log", "wb"),
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.base / "log" / "stderr.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"ovirt-imageio exited with {self.proc.returncode}: {err}")
            text = self.log_file.read_text() if self.log_file.exists() else ""
            m = _LISTENING.search(text)
            if m and self.control_socket.exists():
                self.port = int(m.group(1))
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ovirt-imageio did not start within {timeout}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_process(proc, term_wait=10.0, group=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> ImageioDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- control API (the unix socket; the remote port has no /tickets) ---
    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        con = _UnixConnection(str(self.control_socket))
        try:
            data = json.dumps(body).encode() if body is not None else None
            con.request(method, path, body=data,
                        headers={"Content-Type": "application/json"} if data else {})
            resp = con.getresponse()
            return resp.status, resp.read()
        finally:
            con.close()

    def add_ticket(self, ticket: dict[str, Any]) -> None:
        status, text = self._request("PUT", f"/tickets/{ticket['uuid']}", ticket)
        if status != 200:
            raise DaemonError(status, text.decode(errors="replace"))

    def get_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        status, text = self._request("GET", f"/tickets/{ticket_id}")
        if status == 404:
            return None
        if status != 200:
            raise DaemonError(status, text.decode(errors="replace"))
        result: dict[str, Any] = json.loads(text)
        return result

    def extend_ticket(self, ticket_id: str, timeout: int) -> None:
        status, text = self._request("PATCH", f"/tickets/{ticket_id}", {"timeout": timeout})
        if status != 200:
            raise DaemonError(status, text.decode(errors="replace"))

    def remove_ticket(self, ticket_id: str) -> None:
        status, text = self._request("DELETE", f"/tickets/{ticket_id}")
        if status not in (200, 204):
            raise DaemonError(status, text.decode(errors="replace"))
