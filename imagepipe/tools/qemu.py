"""qemu-system-x86_64 as a context manager: boot a disk, watch its serial console, stop it.

Why this shape:
- The VM is started with `-daemonize -pidfile` through `tools.run`, so the one subprocess runner
  stays the only place commands are started, startup errors surface as a ToolError with qemu's
  own message, and the running VM is tracked by its PID (killed by PID in `__exit__`, which also
  runs on Ctrl-C: a daemonized qemu lives in its own session and never sees the terminal's
  SIGINT, so nothing else would stop it).
- The guest boots a qcow2 OVERLAY of the image by default: a boot writes to the disk (machine-id,
  SSH host keys, logs), and an artifact in the store must never change.
- `system_powerdown` over QMP is the ACPI button (a clean shutdown); kill only after a timeout.
- q35 (no floppy probe noise on `pc`), `-cpu max` under TCG (the TCG default CPU lacks x86-64-v2
  features that Debian/RHEL 9 userlands need), virtio disk and NIC.
"""

from __future__ import annotations

import json
import re
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imagepipe.errors import ImagepipeError, TimeoutExpired
from imagepipe.lifecycle import Started
from imagepipe.tools import qemu_img
from imagepipe.tools.run import run, sleep_or_cancel, stop_pid

QEMU = "qemu-system-x86_64"


class VMError(ImagepipeError):
    """The VM could not be started, or stopped unexpectedly."""


@dataclass(frozen=True)
class Drive:
    """One extra drive. `media="cdrom"` attaches it to the q35 AHCI controller as a CD-ROM."""

    path: Path
    fmt: str = "raw"
    interface: str = "virtio"  # virtio | none (cdrom on AHCI)
    media: str = "disk"  # disk | cdrom
    readonly: bool = False

    def args(self) -> list[str]:
        if self.media == "cdrom":
            opts = f"file={_esc(self.path)},format={self.fmt},media=cdrom,readonly=on"
            return ["-drive", opts]
        opts = f"file={_esc(self.path)},format={self.fmt},if={self.interface}"
        if self.readonly:
            opts += ",readonly=on"
        return ["-drive", opts]


def _esc(path: Path | str) -> str:
    """qemu's -drive option syntax doubles commas inside values."""
    return str(path).replace(",", ",,")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (qemu binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# A platform's disk controller + NIC as qemu devices (imagepipe.convert.hardware.qemu_devices
# turns a profile such as "virtualbox" into this pair).
VIRTIO = ("virtio-blk", "virtio-net")
NIC_MODELS = {"e1000": "e1000", "virtio-net": "virtio-net-pci", "vmxnet3": "vmxnet3"}
SCSI_CONTROLLERS = {"virtio-scsi": "virtio-scsi-pci", "pvscsi": "pvscsi"}


def disk_args(devices: tuple[str, str], disk: Path, disk_fmt: str,
              drives: Sequence[Drive]) -> tuple[list[str], str]:
    """(-drive/-device arguments for the boot disk and the extra drives, NIC model)."""
    disk_dev, nic_dev = devices
    if disk_dev == "virtio-blk":
        out = ["-drive", f"file={_esc(disk)},format={disk_fmt},if=virtio"]
        return out + [a for d in drives for a in d.args()], NIC_MODELS[nic_dev]
    out = ["-drive", f"file={_esc(disk)},format={disk_fmt},if=none,id=hd0"]
    if disk_dev == "ahci":  # q35's built-in ICH9 AHCI, ports ide.0 .. ide.5
        out += ["-device", "ide-hd,drive=hd0,bus=ide.0,bootindex=0"]
    else:
        out += ["-device", f"{SCSI_CONTROLLERS[disk_dev]},id=scsi0",
                "-device", "scsi-hd,drive=hd0,bus=scsi0.0,scsi-id=0,lun=0,bootindex=0"]
    for i, d in enumerate(drives, start=1):
        opts = f"file={_esc(d.path)},format={d.fmt},if=none,id=extra{i}"
        if d.readonly or d.media == "cdrom":
            opts += ",readonly=on"
        kind = "cd" if d.media == "cdrom" or d.readonly else "hd"
        bus = f"ide.{i}" if disk_dev == "ahci" else "scsi0.0"
        unit = "" if disk_dev == "ahci" else f",scsi-id={i},lun=0"
        prefix = "ide" if disk_dev == "ahci" else "scsi"
        out += ["-drive", opts, "-device", f"{prefix}-{kind},drive=extra{i},bus={bus}{unit}"]
    return out, NIC_MODELS[nic_dev]


def vm_argv(*, disk: Path, disk_fmt: str, accel_args: Sequence[str], memory_mib: int, cpus: int,
            console_log: Path, qmp_socket: Path, pidfile: Path,
            forwards: dict[int, int] | None = None, drives: Sequence[Drive] = (),
            boot: str | None = None, no_reboot: bool = False,
            extra: Sequence[str] = (), devices: tuple[str, str] = VIRTIO) -> list[str]:
    """The qemu argv (pure, tested without running qemu). `forwards`: guest port -> host port.
    `devices`: the platform's (disk controller, NIC), see `disk_args`."""
    disks, model = disk_args(devices, disk, disk_fmt, drives)
    nic = f"user,model={model}"
    for guest, host in sorted((forwards or {}).items()):
        nic += f",hostfwd=tcp:127.0.0.1:{host}-:{guest}"
    argv = [QEMU, "-machine", "q35", *accel_args, "-smp", str(cpus), "-m", str(memory_mib),
            *disks]
    argv += ["-nic", nic, "-display", "none", "-vga", "none",
             "-serial", f"file:{console_log}", "-monitor", "none",
             "-qmp", f"unix:{qmp_socket},server=on,wait=off",
             "-pidfile", str(pidfile), "-daemonize"]
    if boot:
        argv += ["-boot", boot]
    if no_reboot:
        argv.append("-no-reboot")
    return [*argv, *extra]


def accel_args(accel: str | None = None) -> list[str]:
    """`-accel kvm -cpu host` or `-accel tcg -cpu max`, per the guest engineer's KVM probe."""
    from imagepipe.tools.accel import qemu_accel_args

    return qemu_accel_args(accel)


class VM(Started):
    """A running qemu VM. Use as a context manager; the process never outlives the block.

    `overlay=True` boots a throw-away qcow2 overlay of `disk` (the disk itself is untouched);
    `overlay=False` writes to `disk` directly (an installer's target disk).
    """

    def __init__(self, disk: Path, *, workdir: Path, disk_fmt: str | None = None,
                 overlay: bool = True, drives: Sequence[Drive] = (), memory: int = 1024**3,
                 cpus: int = 2, forward_ports: Iterable[int] = (), accel: str | None = None,
                 boot: str | None = None, no_reboot: bool = False,
                 console_log: Path | None = None, extra_args: Sequence[str] = (),
                 devices: tuple[str, str] = VIRTIO) -> None:
        super().__init__()
        self.disk = Path(disk)
        self.workdir = Path(workdir)
        self.disk_fmt = disk_fmt
        self.overlay = overlay
        self.drives = list(drives)
        self.memory = memory
        self.cpus = cpus
        self.forward_ports = list(forward_ports)
        self.accel = accel
        self.boot = boot
        self.no_reboot = no_reboot
        self.extra_args = list(extra_args)
        self.devices = devices
        self.console_log = Path(console_log) if console_log else self.workdir / "console.log"
        self.ports: dict[int, int] = {}
        self.pid: int | None = None
        self.started_at = 0.0
        self.boot_disk: Path = self.disk
        self._console_pos = 0
        self._console_text = ""

    # ---- life cycle ---------------------------------------------------------------------

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Unix socket paths are limited to 108 bytes: keep the QMP socket in a short temp dir.
        sockdir = Path(tempfile.mkdtemp(prefix="ip-qmp-"))
        self._stack.callback(_rmtree, sockdir)
        from imagepipe.tools.orphans import mark_owner

        mark_owner(sockdir)  # after kill -9 of imagepipe, the next build stops this VM
        self.qmp_socket = sockdir / "qmp.sock"
        fmt = self.disk_fmt or str(qemu_img.info(self.disk)["format"])
        boot_disk, boot_fmt = self.disk, fmt
        if self.overlay:
            boot_disk = self.workdir / "overlay.qcow2"
            size = int(qemu_img.info(self.disk, fmt)["virtual-size"])
            qemu_img.create(boot_disk, "qcow2", size,
                            {"backing_file": str(self.disk.resolve()), "backing_fmt": fmt})
            self._stack.callback(_unlink, boot_disk)
            boot_fmt = "qcow2"
        self.boot_disk = boot_disk
        self.ports = {guest: free_port() for guest in self.forward_ports}
        pidfile = sockdir / "qemu.pid"
        self.console_log.parent.mkdir(parents=True, exist_ok=True)
        self.console_log.write_bytes(b"")
        argv = vm_argv(disk=boot_disk, disk_fmt=boot_fmt, accel_args=accel_args(self.accel),
                       memory_mib=self.memory // 1024**2, cpus=self.cpus,
                       console_log=self.console_log, qmp_socket=self.qmp_socket, pidfile=pidfile,
                       forwards=self.ports, drives=self.drives, boot=self.boot,
                       no_reboot=self.no_reboot, extra=self.extra_args,
                       devices=self.devices)
        # Registered before the start: if we are interrupted while qemu daemonizes, the pidfile
        # it wrote still lets us kill it.
        self._stack.callback(self._kill_from_pidfile, pidfile)
        self.started_at = time.monotonic()
        run(argv, timeout=120)
        self.pid = _read_pid(pidfile)

    def _kill_from_pidfile(self, pidfile: Path) -> None:
        pid = self.pid or _read_pid(pidfile, wait=0)
        if pid is not None:
            kill_qemu(pid)
        self.pid = None

    # ---- state --------------------------------------------------------------------------

    def running(self) -> bool:
        return self.pid is not None and _alive(self.pid)

    def wait_exit(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for qemu to exit (guest powered off). True if it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running():
                return True
            sleep_or_cancel(0.5)
        return not self.running()

    def powerdown(self, timeout: float = 60) -> bool:
        """ACPI shutdown; kill after `timeout`. True when the guest shut down by itself."""
        if not self.running():
            return True
        try:
            qmp_command(self.qmp_socket, "system_powerdown")
        except OSError:
            pass  # qemu is exiting or wedged; the kill below settles it
        clean = self.wait_exit(timeout)
        if not clean:
            self.kill()
        return clean

    def kill(self) -> None:
        if self.pid is not None:
            kill_qemu(self.pid)

    # ---- console ------------------------------------------------------------------------

    def console(self) -> str:
        """Everything the guest wrote to its serial console so far (decoded leniently)."""
        try:
            with self.console_log.open("rb") as f:
                f.seek(self._console_pos)
                chunk = f.read()
        except FileNotFoundError:
            return self._console_text
        self._console_pos += len(chunk)
        self._console_text += chunk.decode("utf-8", "replace").replace("\r", "")
        return self._console_text

    def wait_console(self, pattern: str | re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until the console matches `pattern`; raise TimeoutExpired or VMError."""
        rx = re.compile(pattern, re.M) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.console())
            if m:
                return m
            if not self.running():
                raise VMError(f"the VM stopped before its console showed {rx.pattern!r}",
                              f"see the console log {self.console_log}")
            if time.monotonic() >= deadline:
                raise TimeoutExpired(
                    f"the console did not show {rx.pattern!r} within {timeout:.0f}s",
                    f"see the console log {self.console_log}")
            sleep_or_cancel(0.5)


# ---- helpers -----------------------------------------------------------------------------

def qmp_command(sock_path: Path, command: str, arguments: dict[str, Any] | None = None,
                timeout: float = 10) -> Any:
    """Send one QMP command (after the capabilities handshake) and return its `return`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rw", encoding="utf-8")
        json.loads(f.readline())  # greeting
        for cmd in ({"execute": "qmp_capabilities"},
                    {"execute": command, **({"arguments": arguments} if arguments else {})}):
            f.write(json.dumps(cmd) + "\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply or "error" in reply:
                    break  # skip asynchronous events
            if "error" in reply:
                raise VMError(f"QMP {cmd['execute']} failed: {reply['error']}")
        return reply.get("return")


def _read_pid(pidfile: Path, wait: float = 5) -> int | None:
    deadline = time.monotonic() + wait
    while True:
        try:
            text = pidfile.read_text().strip()
            if text:
                return int(text)
        except (FileNotFoundError, ValueError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """True while `pid` is a live (not zombie) qemu process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X") and b"qemu" in cmdline


def kill_qemu(pid: int, grace: float = 5) -> None:
    """SIGTERM, wait `grace` seconds, then SIGKILL; only if `pid` is still our qemu."""
    stop_pid(pid, _alive, term_wait=grace)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
