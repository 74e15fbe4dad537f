"""`imagepipe boot-test IMAGE`: boot an image on an overlay and prove it works.

Exit 0 when every check passed, 1 when one failed (the console log is kept and its path
printed), 2 for bad arguments.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import click

from imagepipe import ui
from imagepipe.cli.common import examples


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe boot-test disk.qcow2",
                               "imagepipe boot-test web.qcow2 --user-data web.yaml "
                               "--http 80:/:200 --keep-log logs/",
                               "imagepipe boot-test httpd.qcow2 --datasource configdrive "
                               "--hostname tplvm-1 --firmware uefi",
                               "imagepipe boot-test httpd.qcow2 --datasource none --firmware "
                               "secureboot --http 80:/:200",
                               "imagepipe boot-test httpd.vdi --hardware virtualbox "
                               "--http 80:/:200"))
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--user-data", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Cloud-config (user-data) for the boot, e.g. the recipe's.")
@click.option("--http", "http", multiple=True, metavar="PORT:PATH:STATUS[:TEXT]",
              help="Wait until the guest's PORT answers PATH with STATUS (and a body "
              "containing TEXT) (repeatable), e.g. 80:/:200 or '80:/:200:imagepipe httpd'.")
@click.option("--timeout", type=click.IntRange(min=10), default=600, show_default=True,
              help="Seconds to wait for all checks.")
@click.option("--keep-log", type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the console log (kept); default: a temp dir, kept only on "
              "failure.")
@click.option("--memory", type=click.IntRange(min=128), default=1024, show_default=True,
              help="Guest memory in MiB.")
@click.option("--cpus", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--datasource", type=click.Choice(["nocloud", "configdrive", "none"]),
              default="nocloud", show_default=True,
              help="How the VM gets its per-VM data: a cidata seed ISO, an oVirt-style config "
              "drive (ISO label config-2), or nothing (the seed baked into the image serves).")
@click.option("--hostname", metavar="NAME",
              help="The per-VM hostname handed to the VM (nocloud, configdrive; default: "
              "boottest-<random>); the test checks the guest took it.")
@click.option("--no-identity-check", is_flag=True,
              help="Skip the check that the guest got a new machine-id and SSH host keys.")
@click.option("--firmware", type=click.Choice(["bios", "uefi", "secureboot"]), default="bios",
              show_default=True,
              help="bios: SeaBIOS; uefi: OVMF; secureboot: OVMF with Microsoft's keys and "
              "Secure Boot enforced (checked from the guest's kernel log).")
@click.option("--hardware", metavar="HW", default=None,
              help="The platform's disk controller + NIC to boot on: virtio (default), "
              "virtualbox (AHCI + e1000), vsphere (PVSCSI + VMXNET3), or DISK+NIC, e.g. "
              "virtio-scsi+virtio-net; hyperv / azure (no qemu emulation): check that the "
              "image's initramfs has hv_vmbus, hv_storvsc and hv_netvsc instead of booting.")
@click.option("--json", "json_mode", is_flag=True, help="Same as the global --json.")
def boot_test(image: Path, user_data: Path | None, http: tuple[str, ...], timeout: int,
              keep_log: Path | None, memory: int, cpus: int, datasource: str,
              hostname: str | None, no_identity_check: bool, firmware: str,
              hardware: str | None, json_mode: bool) -> None:
    """Boot IMAGE (never modified: a qcow2 overlay takes the writes) the way a platform starts a
    VM from a template: with --datasource's per-VM data (a hostname and a user-data that writes
    a marker file), on --firmware and --hardware, wait for cloud-init to finish and each --http
    check to answer, shut down with ACPI, and report per check (datasource chosen, hostname,
    marker, firmware, new machine-id and SSH host keys)."""
    from imagepipe.boot.media import check_args
    from imagepipe.boot.run import BootTestFailed, parse_http_check
    from imagepipe.boot.run import boot_test as run_boot_test
    from imagepipe.convert import probe_image

    if json_mode:
        ui.settings.json = True
    checks = [parse_http_check(h) for h in http]
    check_args(datasource, hostname)
    fmt = str(probe_image(image)["format"])
    if hardware is not None and _initramfs_only(image, fmt, hardware):
        return
    if hardware is not None:
        from imagepipe.convert.hardware import qemu_devices

        qemu_devices(hardware)  # bad or unemulated hardware: exit 2 before anything starts
    log_dir = keep_log or Path(tempfile.mkdtemp(prefix="imagepipe-boot-test-"))
    with ui.stage("boot-test"):  # shows the boot milestones while it waits
        report = run_boot_test(image, user_data=user_data, checks=checks, timeout=timeout,
                               log_dir=log_dir, memory=memory * 1024**2, cpus=cpus,
                               verify_identity=not no_identity_check, disk_fmt=fmt,
                               firmware=firmware, hardware=hardware, datasource=datasource,
                               hostname=hostname).to_json()
    lines = [f"{'ok  ' if c['passed'] else 'FAIL'} {c['name']:<24} "
             f"{'' if c['seconds'] is None else str(c['seconds']) + 's':>7}  {c['detail']}"
             for c in report["checks"]]
    if report["passed"] and keep_log is None:
        shutil.rmtree(log_dir, ignore_errors=True)
        report["console_log"] = None
    else:
        lines.append(f"console log: {report['console_log']}")
    ui.result("\n".join(lines), **report)
    if not report["passed"]:
        raise BootTestFailed(report)


def _initramfs_only(image: Path, fmt: str, hardware: str) -> bool:
    """Hyper-V / Azure: qemu has no VMBus; check the drivers in the initramfs (exit 1 if not).
    False when `hardware` is something qemu boots."""
    from imagepipe.boot.initramfs import ALIASES, DRIVERS, check_drivers
    from imagepipe.boot.run import BootTestFailed

    if ALIASES.get(hardware, hardware) not in DRIVERS:
        return False
    rec = check_drivers(image, hardware, fmt=fmt)
    lines = [f"{'ok  ' if where != 'missing' else 'FAIL'} {name:<12} {where}"
             for name, where in rec["drivers"].items()]
    lines.append(f"kernel {rec['kernel']}: {rec['detail']}")
    ui.result("\n".join(lines), **rec)
    if not rec["passed"]:
        raise BootTestFailed({"checks": [{"name": n, "passed": w != "missing"}
                                         for n, w in rec["drivers"].items()],
                              "console_log": rec["initrd"]})
    return True
