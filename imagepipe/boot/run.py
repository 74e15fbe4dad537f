"""Boot test: prove a built image boots, runs its cloud-config and serves what it should.

Why this way: a template that does not boot, or boots with a clone's identity, is worse than no
template, and only a real boot shows it. The image is booted on a qcow2 overlay (the artifact is
never written) with fresh per-VM data as a platform hands it (imagepipe.boot.media: a
`cidata` ISO, oVirt's config drive, or nothing), whose instance-id is new, so cloud-init treats
the boot as a new instance exactly like a VM created from the template. The data carries the
recipe's user-data plus small scripts that write a marker and print the guest's hostname,
marker, machine-id and SSH host key fingerprints on the serial console; those are compared
with what was handed in and with what the image itself holds (read with libguestfs,
read-only), which proves the platform's data won and the seal worked: a clone must get a new
machine-id and new host keys.

`firmware` (bios | uefi | secureboot, imagepipe.boot.firmware) picks SeaBIOS or OVMF, and a
`firmware:NAME` check proves from the kernel's own console messages that the guest really booted
that way (Secure Boot: the kernel says it is enabled).

Everything is bounded by `timeout`; the console log is kept in `log_dir` whatever happens.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import Any

from imagepipe import ui
from imagepipe.boot.media import Media
from imagepipe.errors import ImagepipeError, InputError
from imagepipe.recipe.model import HttpCheck
from imagepipe.tools.qemu import VM
from imagepipe.tools.run import sleep_or_cancel

# getty's "<host> login: " prompt. Not anchored at the line end: the identity lines the test
# seed prints on the console race with getty and can land on the prompt's line.
LOGIN = re.compile(r"\S+ login: ")
FINAL = re.compile(r"Cloud-init v\. \S+ finished at")
MARK = "IMAGEPIPE-BOOTTEST"


class BootTestFailed(ImagepipeError):
    """The image did not pass its boot test (exit 1); the console log is kept."""

    def __init__(self, report: dict[str, Any]) -> None:
        failed = [c["name"] for c in report["checks"] if not c["passed"]]
        super().__init__(f"boot test failed: {', '.join(failed) or 'no check passed'}",
                         f"see the console log {report['console_log']}")
        self.report = report


@dataclass
class CheckResult:
    name: str
    passed: bool = False
    seconds: float | None = None
    detail: str = ""


@dataclass
class BootReport:
    """One boot test's outcome; `to_json()` is the manifest record and the CLI's result (the
    field order is their key order)."""

    passed: bool
    checks: list[CheckResult]
    time_to_login: float | None
    time_to_cloud_init_final: float | None
    seconds: float
    clean_shutdown: bool
    console_log: str
    instance_id: str
    guest_identity: dict[str, Any]
    datasource: str
    hostname: str | None
    datasource_used: str
    firmware: str
    hardware: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_http_check(text: str) -> HttpCheck:
    """`PORT:PATH:STATUS[:TEXT]` (CLI --http) -> HttpCheck; STATUS and PATH may be left out,
    TEXT is what the body must contain."""
    parts = text.split(":", 3)
    try:
        port = int(parts[0])
        path = parts[1] if len(parts) > 1 and parts[1] else "/"
        status = int(parts[2]) if len(parts) > 2 and parts[2] else 200
    except ValueError:
        raise InputError(f"bad --http check {text!r}", "use PORT:PATH:STATUS, e.g. 80:/:200") \
            from None
    if not 0 < port < 65536 or not path.startswith("/"):
        raise InputError(f"bad --http check {text!r}", "use PORT:PATH:STATUS, e.g. 80:/:200")
    return HttpCheck(port=port, path=path, status=status,
                     contains=parts[3] if len(parts) > 3 and parts[3] else None)


def identity_script(nonce: str) -> str:
    """A user-data script that prints the booted guest's identity on the console."""
    tag = f"{MARK}-{nonce}"
    return f"""#!/bin/sh
# added by imagepipe boot-test: report this boot's identity on the serial console
{{
echo "{tag} machine-id=$(cat /etc/machine-id 2>/dev/null)"
for k in /etc/ssh/ssh_host_*_key.pub; do
  [ -f "$k" ] && echo "{tag} hostkey=$(ssh-keygen -lf "$k" | cut -d' ' -f2)"
done
echo "{tag} done"
}} > /dev/console 2>&1
"""


def make_user_data(user_data: bytes | None, nonce: str) -> bytes:
    """A MIME multipart user-data: the image's own cloud-config (type detected by cloud-init
    from its first line, as for a plain user-data file) plus the identity script."""
    msg = MIMEMultipart()
    if user_data:
        msg.attach(MIMEText(user_data.decode("utf-8"), "plain", "utf-8"))
    msg.attach(MIMEText(identity_script(nonce), "x-shellscript", "utf-8"))
    return msg.as_bytes()


def ssh_fingerprint(pubkey_line: str) -> str | None:
    """`ssh-keygen -lf` style SHA256 fingerprint of one public key line."""
    parts = pubkey_line.split()
    if len(parts) < 2:
        return None
    try:
        blob = base64.b64decode(parts[1])
    except ValueError:
        return None
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def image_identity(image: Path, fmt: str | None = None, accel: str | None = None,
                   overlay: bool = False) -> dict[str, Any]:
    """The machine-id and SSH host key fingerprints stored in the image (read-only).
    `overlay`: the boot's own qcow2 overlay, whose backing file is the image already probed."""
    from imagepipe.tools.guestfs import GuestSession

    with GuestSession(image, fmt=fmt, readonly=True, accel=accel,
                      allow_backing=overlay) as s:
        mid = s.read_text("/etc/machine-id").strip() if s.is_file("/etc/machine-id") else ""
        keys = [ssh_fingerprint(s.read_text(p)) for p in s.glob("/etc/ssh/ssh_host_*_key.pub")]
    return {"machine_id": mid, "host_keys": sorted(k for k in keys if k)}


def _http_ok(check: HttpCheck, host_port: int) -> tuple[bool, str]:
    import requests

    url = f"http://127.0.0.1:{host_port}{check.path}"
    try:
        r = requests.get(url, timeout=3)
    except requests.RequestException as exc:
        return False, f"{url}: {type(exc).__name__}"
    if r.status_code != check.status:
        return False, f"{url}: HTTP {r.status_code}"
    if check.contains and check.contains not in r.text:
        return False, f"{url}: HTTP {r.status_code} without {check.contains!r}"
    return True, f"{url}: HTTP {r.status_code}"


def boot_test(image: Path, *, user_data: Path | None = None, checks: Sequence[HttpCheck] = (),
              timeout: float = 600, log_dir: Path, memory: int = 1024**3, cpus: int = 2,
              verify_identity: bool = True, accel: str | None = None,
              disk_fmt: str | None = None, firmware: str = "bios",
              hardware: str | None = None, datasource: str = "nocloud",
              hostname: str | None = None) -> BootReport:
    """Boot `image` on an overlay with fresh per-VM data, run the checks, shut down with ACPI.

    `datasource` says how the VM gets its data (imagepipe.boot.media): a `cidata` ISO, an
    oVirt-style config drive, or nothing (the seed baked into the image). `firmware`: bios,
    uefi or secureboot (imagepipe.boot.firmware). `hardware`: the platform's disk controller
    + NIC to emulate (imagepipe.convert.hardware; default virtio). Returns the report
    (never raises for a failed check: `passed` says; the stage turns a failure into
    BootTestFailed). Bad arguments raise InputError."""
    from imagepipe.boot import firmware as fw
    from imagepipe.boot.media import check_args, make_media, make_per_vm_user_data
    from imagepipe.convert.hardware import qemu_devices

    fw.check_firmware(firmware)
    check_args(datasource, hostname)
    image = Path(image)
    if not image.is_file():
        raise InputError(f"{image}: no such image file")
    log_dir.mkdir(parents=True, exist_ok=True)
    nonce = uuid.uuid4().hex[:12]
    raw_ud = user_data.read_bytes() if user_data else None
    per_vm = make_per_vm_user_data(raw_ud, nonce, f"{MARK}-{nonce}", identity_script(nonce))
    media = make_media(datasource, log_dir, nonce, per_vm, hostname)
    console_log = log_dir / f"console-{nonce}.log"
    results = {"login": CheckResult("login"), "cloud-init-final": CheckResult("cloud-init-final"),
               "datasource": CheckResult("datasource")}
    if media.hostname:
        results["hostname"] = CheckResult("hostname")
        results["marker"] = CheckResult("marker")
    for c in checks:
        name = f"http:{c.port}{c.path}={c.status}"
        results[name] = CheckResult(name)
    identity: dict[str, Any] = {}
    clean = False
    with ExitStack() as stack:
        before: Future[dict[str, Any]] | None = None
        if verify_identity:
            # Read the image's own identity while the guest boots (the image is only read, by
            # both): the appliance launch then costs no wall time after the shutdown.
            pool = stack.enter_context(ThreadPoolExecutor(1, "boot-test-identity"))
            before = pool.submit(image_identity, image, disk_fmt, accel)
        start = time.monotonic()
        vm_dir = log_dir / f"vm-{nonce}"
        try:
            fw_args = fw.prepare(firmware, vm_dir)
            with VM(image, workdir=vm_dir, disk_fmt=disk_fmt, memory=memory,
                    cpus=cpus, accel=accel, console_log=console_log,
                    forward_ports=sorted({c.port for c in checks}), drives=media.drives,
                    extra_args=fw_args,
                    devices=qemu_devices(hardware or "virtio")) as vm:
                ui.info(f"boot-test: booting {image.name} with {firmware} firmware, "
                        f"datasource {datasource} (console: {console_log})")
                _watch(vm, checks, results, identity, nonce, start, timeout, media)
                fw_check = CheckResult(f"firmware:{firmware}")
                fw_check.passed, fw_check.detail = fw.verdict(firmware, vm.console())
                results[fw_check.name] = fw_check
                # A guest that never reached its login prompt has no OS listening to ACPI:
                # do not wait a minute for it.
                clean = vm.powerdown(timeout=60 if results["login"].passed else 5)
                if media.datasource == "none" and before is not None and clean:
                    # Nothing could be handed in to print the identity: read it back from the
                    # VM's overlay (the guest is off, its disk is consistent).
                    identity.update(image_identity(vm.boot_disk, "qcow2", accel, overlay=True))
        finally:
            for f in media.files:
                f.unlink(missing_ok=True)
            for f in vm_dir.glob("ovmf-vars-*.fd"):
                f.unlink()
        ident = _identity_check(before, identity) if before is not None else None
    if ident is not None:
        results["new-identity"] = ident
    return BootReport(
        passed=all(r.passed for r in results.values()), checks=list(results.values()),
        time_to_login=results["login"].seconds,
        time_to_cloud_init_final=results["cloud-init-final"].seconds,
        seconds=round(time.monotonic() - start, 1), clean_shutdown=clean,
        console_log=str(console_log), instance_id=media.instance_id, guest_identity=identity,
        datasource=datasource, hostname=media.hostname,
        datasource_used=results["datasource"].detail, firmware=firmware,
        hardware=_hardware_name(hardware))


def _hardware_name(hardware: str | None) -> str:
    from imagepipe.convert.hardware import ALIASES

    return ALIASES.get(hardware or "virtio", hardware or "virtio")


def _watch(vm: VM, checks: Sequence[HttpCheck], results: dict[str, CheckResult],
           identity: dict[str, Any], nonce: str, start: float, timeout: float,
           media: Media) -> None:
    """Poll the console and the HTTP checks until all passed, the VM died or time ran out."""
    from imagepipe.boot.milestones import milestone

    tag = re.compile(rf"{MARK}-{nonce} (machine-id|hostkey|hostname|marker)=(.*)$", re.M)
    names = [f"http:{c.port}{c.path}={c.status}" for c in checks]
    deadline = start + timeout
    next_http = 0.0
    while True:
        now = time.monotonic()
        text = vm.console()
        for key, rx in (("login", LOGIN), ("cloud-init-final", FINAL)):
            if not results[key].passed and rx.search(text):
                results[key].passed, results[key].seconds = True, round(now - start, 1)
                ui.info(f"boot-test: {key} after {now - start:.0f}s")
        if results["cloud-init-final"].passed and not results["datasource"].detail:
            _datasource_check(results["datasource"], text, media, now - start)
        if f"{MARK}-{nonce} done" in text and not identity:
            found = tag.findall(text)
            identity["machine_id"] = next((v.strip() for k, v in found if k == "machine-id"), "")
            identity["host_keys"] = sorted({v.strip() for k, v in found if k == "hostkey"})
            _per_vm_checks(results, dict(found), media, now - start)
        if now >= next_http and results["cloud-init-final"].passed:
            next_http = now + 2
            for check, name in zip(checks, names, strict=True):
                if not results[name].passed:
                    ok, detail = _http_ok(check, vm.ports[check.port])
                    results[name].detail = detail
                    if ok:
                        results[name].passed, results[name].seconds = True, round(now - start, 1)
                        ui.info(f"boot-test: {detail} after {now - start:.0f}s")
        ui.phase("boot: " + milestone(text, http_pending=not all(results[n].passed
                                                                  for n in names)))
        if all(r.passed for r in results.values()) and (identity or media.datasource == "none"):
            return
        if not vm.running():
            results["login"].detail = results["login"].detail or "the VM stopped"
            return
        if now >= deadline:
            for r in results.values():
                if not r.passed and not r.detail:
                    r.detail = f"not seen within {timeout:.0f}s"
            return
        sleep_or_cancel(1)


def _datasource_check(r: CheckResult, console: str, media: Media, seconds: float) -> None:
    """The datasource cloud-init chose (its "finished" line) is the one the drive is for."""
    from imagepipe.boot.media import EXPECTED_DS, seen_datasource

    used = seen_datasource(console)
    if used is None:
        return
    want = EXPECTED_DS[media.datasource]
    r.passed, r.seconds, r.detail = used.startswith(want), round(seconds, 1), used
    if not r.passed:
        r.detail = f"{used} (expected {want})"


def _per_vm_checks(results: dict[str, CheckResult], found: dict[str, str], media: Media,
                   seconds: float) -> None:
    """The hostname and the marker only the per-VM data carries."""
    for key, want in (("hostname", media.hostname), ("marker", media.marker)):
        if key not in results:
            continue
        got = found.get(key, "").strip()
        r = results[key]
        r.passed, r.seconds = got == want, round(seconds, 1)
        r.detail = f"{got!r}" if r.passed else f"{got!r}, expected {want!r}"


def _identity_check(before_f: Future[dict[str, Any]], booted: dict[str, Any]) -> CheckResult:
    r = CheckResult("new-identity")
    if not booted:
        r.detail = "the guest never printed its identity (cloud-init final scripts did not run)"
        return r
    t = time.monotonic()
    try:
        before = before_f.result()
    except ImagepipeError as exc:
        r.detail = f"could not read the image's own identity: {exc}"
        return r
    mid, keys = booted.get("machine_id", ""), set(booted.get("host_keys", []))
    problems = []
    if not re.fullmatch(r"[0-9a-f]{32}", mid):
        problems.append(f"booted machine-id is {mid!r}")
    elif mid == before["machine_id"]:
        problems.append("machine-id is the image's own (not sealed)")
    if not keys:
        problems.append("no SSH host keys after boot")
    elif keys & set(before["host_keys"]):
        problems.append("SSH host keys are the image's own (not sealed)")
    r.passed, r.seconds = not problems, round(time.monotonic() - t, 1)
    r.detail = "; ".join(problems) or (f"machine-id {mid}, {len(keys)} new host keys "
                                       f"(image: {before['machine_id'] or 'empty'} machine-id, "
                                       f"{len(before['host_keys'])} keys)")
    return r
