"""Stage `test.boot`: boot the sealed image and prove it works (imagepipe.boot.run).

A failed boot test raises, so the build fails before any publish stage runs; the console log
stays in the build's log directory (outside the work dir the engine removes). A passed test is
cached like any stage: the same image with the same checks need not be booted again.

Boots per `test.boot.datasource` (how the VM gets its per-VM data: imagepipe.boot.media)
and `test.boot.firmware` (default: `firmwares()`): the two lists are paired (`boot_plan`), so
every datasource and every firmware is booted at least once in max(len) boots, each a node of
its own (`test.boot`, `test.boot.<datasource>-<firmware>`, ...), all beside the converts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagepipe.artifact import Artifact
from imagepipe.boot.initramfs import DRIVERS, check_drivers
from imagepipe.boot.run import BootTestFailed, boot_test
from imagepipe.recipe.model import HttpCheck, Recipe
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class BootTestOptions:
    user_data: Path | None
    checks: tuple[HttpCheck, ...] = ()
    timeout: int = 600
    memory: int = 1024**3
    cpus: int = 2
    firmware: str = "bios"
    datasource: str = "nocloud"
    hardware: str | None = None  # per-output test: the platform's disk controller + NIC


def firmwares(recipe: Recipe) -> tuple[str, ...]:
    """The firmwares the build boots the image with: `test.boot.firmware`, or by default one
    boot with what the disk is made for: uefi for a uefi disk, bios for a bios or hybrid one
    (and for disks from images and installers, whose layout is the source's).

    Why one boot by default: a TCG boot takes a core for a minute or more, and on a 2-core
    build host a second one beside the converts costs the build ~100 s (the 6-minute budget
    of the httpd build). A hybrid disk's UEFI and Secure Boot paths are listed explicitly
    (`firmware: [bios, uefi]`) by recipes that want every build to prove them."""
    boot = recipe.test.boot
    if boot is not None and boot.firmware:
        return tuple(dict.fromkeys(boot.firmware))
    if recipe.source.bootstrap is not None and recipe.disk.firmware == "uefi":
        return ("uefi",)
    return ("bios",)


def datasources(recipe: Recipe) -> tuple[str, ...]:
    """The recipe's `test.boot.datasource`, or what its publish targets imply: oVirt starts VMs
    from the template with a config drive; elsewhere a cidata ISO is the common way."""
    boot = recipe.test.boot
    if boot is not None and boot.datasource:
        return tuple(dict.fromkeys(boot.datasource))
    return ("configdrive",) if recipe.publish.ovirt is not None else ("nocloud",)


def boot_plan(recipe: Recipe) -> list[tuple[str, str]]:
    """(datasource, firmware) per boot: the lists paired, the shorter one repeated, so each
    entry of both is booted once without a boot per combination (a TCG boot costs minutes)."""
    ds, fw = datasources(recipe), firmwares(recipe)
    return [(ds[i % len(ds)], fw[i % len(fw)]) for i in range(max(len(ds), len(fw)))]


class BootTestStage(Stage):
    name = "test.boot"
    version = 3  # 2: firmware; 3: datasource (per-VM data as the platform hands it)
    Options = BootTestOptions
    inputs = ("image",)
    tools = ("qemu-system-x86_64",)

    def cost_hint(self) -> float:
        """A TCG boot to HTTP takes a minute or more, longer than any convert: start it first."""
        return 100.0

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> BootTestOptions | None:
        boot = recipe.test.boot
        if boot is None:
            return None
        user_data = recipe.cloud_init.user_data if recipe.cloud_init else None
        return BootTestOptions(user_data=user_data, checks=tuple(boot.http),
                               timeout=boot.timeout, memory=boot.memory, cpus=boot.cpus,
                               firmware=firmwares(recipe)[0],
                               datasource=datasources(recipe)[0])

    @classmethod
    def options_per_boot(cls, recipe: Recipe) -> list[BootTestOptions]:
        """One options set per boot of `boot_plan` (empty without `test.boot`)."""
        first = cls.options_from_recipe(recipe)
        if first is None:
            return []
        return [dataclasses.replace(first, datasource=ds, firmware=fw)
                for ds, fw in boot_plan(recipe)]

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        image = inputs["image"]
        assert image.path is not None
        o: BootTestOptions = self.options
        if o.hardware in DRIVERS:  # Hyper-V / Azure: no qemu emulation, check the initramfs
            report = check_drivers(image.path, o.hardware, fmt=image.format, accel=ctx.accel)
            ctx.log.info("initramfs drivers: %s", report)
            if not report["passed"]:
                raise BootTestFailed({"checks": [
                    {"name": n, "passed": w != "missing"} for n, w in report["drivers"].items()],
                    "console_log": report["initrd"]})
            return Artifact(path=None, kind="record", metadata=report)
        report = boot_test(image.path, user_data=o.user_data, checks=o.checks, timeout=o.timeout,
                           log_dir=ctx.build_dir / "logs" / "boot-test", memory=o.memory,
                           cpus=o.cpus, accel=ctx.accel, disk_fmt=image.format,
                           firmware=o.firmware, hardware=o.hardware,
                           datasource=o.datasource).to_json()
        ctx.log.info("boot test: %s", report)
        if not report["passed"]:
            raise BootTestFailed(report)
        return Artifact(path=None, kind="record", metadata=report)
