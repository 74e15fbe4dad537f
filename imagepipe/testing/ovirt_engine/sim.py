"""`EngineSimulator`: the engine, its HTTPS front end, the imageio daemon and the tick thread.

Why a context manager that owns every process: tests and users get one object whose exit stops
the HTTP server, every qemu-nbd and the daemon (by PID), whatever happened inside.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from pathlib import Path
from typing import Any

from imagepipe.lifecycle import Started
from imagepipe.testing.ovirt_engine.imageio import ImageioDaemon
from imagepipe.testing.ovirt_engine.pki import make_pki
from imagepipe.testing.ovirt_engine.server import EngineHTTPServer
from imagepipe.testing.ovirt_engine.simulated import Engine

TICK_S = 0.1


MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with the terminating NUL


class EngineSimulator(Started):
    """`with EngineSimulator(tmpdir) as sim:` -> sim.url, sim.ca_file, sim.username, ..."""

    def __init__(self, base: Path, *, username: str = "admin@internal",
                 password: str | None = None, delay: float = 0.3,
                 keep_finished_s: float = 300.0, port: int = 0,
                 virt_sysprep: bool = False) -> None:
        super().__init__()
        # Absolute: qemu-nbd (started later with paths under base) refuses relative sockets.
        self.base = Path(base).resolve()
        longest = self.base / "run" / "nbd" / f"{'x' * 36}.sock"  # a transfer's qemu-nbd socket
        if len(str(longest)) > MAX_SOCKET_PATH:
            raise ValueError(f"state directory {self.base} is too long for the unix sockets "
                             f"under it ({len(str(longest))} > {MAX_SOCKET_PATH} characters); "
                             "choose a shorter --dir")
        self.username = username
        self.password = password or secrets.token_urlsafe(12)
        self.port = port
        self.engine = Engine(self.base / "engine", username=self.username,
                             password=self.password, delay=delay,
                             keep_finished_s=keep_finished_s)
        self.engine.virt_sysprep = virt_sysprep
        self._stop = threading.Event()
        self.url = ""
        self.ca_file = self.base / "pki" / "ca.pem"
        self.password_file = self.base / "password"
        self.daemon: ImageioDaemon | None = None

    def _start(self) -> None:
        pki = make_pki(self.base / "pki")
        self.password_file.touch(mode=0o600)
        self.password_file.write_text(self.password + "\n")
        self.daemon = ImageioDaemon(self.base / "imageio", pki)
        self._stack.enter_context(self.daemon)
        self.engine.daemon = self.daemon
        self.engine.image_url = f"https://127.0.0.1:{self.daemon.port}/images/"
        self._stack.callback(self._stop_transfers)

        server = EngineHTTPServer(("127.0.0.1", self.port), self.engine)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pki.cert_file, pki.key_file)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
        self.port = server.server_address[1]
        self.url = f"https://127.0.0.1:{self.port}"
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                  daemon=True, name="engine-http")
        thread.start()
        self._stack.callback(server.server_close)
        self._stack.callback(server.shutdown)

        ticker = threading.Thread(target=self._tick_loop, daemon=True, name="engine-tick")
        ticker.start()
        self._stack.callback(ticker.join, 5)
        self._stack.callback(self._stop.set)

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK_S):
            try:
                self.engine.tick()
            except Exception as exc:  # keep ticking; the event log shows what broke
                self.engine.log(f"tick error: {exc!r}")

    def _stop_transfers(self) -> None:
        with self.engine.lock:
            self.engine.shutdown_transfers()

    # --- conveniences for tests and users ---
    @property
    def api_url(self) -> str:
        return f"{self.url}/ovirt-engine/api"

    def set_faults(self, **faults: Any) -> None:
        with self.engine.lock:
            self.engine.set_faults(faults)

    def state(self) -> dict[str, Any]:
        return self.engine.state()

    def config_drive(self, vm_id: str, out: Path) -> Path:
        """Write the config drive ISO the engine would attach when it starts VM `vm_id`."""
        from imagepipe.testing.ovirt_engine.payload import write_vm_config_drive

        with self.engine.lock:
            vm = dict(self.engine.vm(vm_id))
        return write_vm_config_drive(vm, out)

    def live_tickets(self) -> list[str]:
        """Tickets the daemon still holds, asked of the daemon itself (not our bookkeeping)."""
        assert self.daemon is not None
        with self.engine.lock:
            ids = list(self.engine.ticket_ids)
        return [t for t in ids if self.daemon.get_ticket(t) is not None]

    def wait_idle(self, timeout: float = 30) -> None:
        """Wait until no transfer is mid-flight (finished ones may remain readable)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.engine.lock:
                busy = [t for t in self.engine.transfers.values()
                        if t["phase"] not in ("finished_success", "finished_failure")]
            if not busy:
                return
            time.sleep(0.1)
        raise TimeoutError(f"transfers still busy: {[t['phase'] for t in busy]}")
