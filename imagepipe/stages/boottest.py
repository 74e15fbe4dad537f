"""Stage `test.boot`: boot the sealed image and prove it works (imagepipe.boottest).

A failed boot test raises, so the build fails before any publish stage runs; the console log
stays in the build's log directory (outside the work dir the engine removes). A passed test is
cached like any stage: the same image with the same checks need not be booted again.

One boot per firmware (`test.boot.firmware`, default: `firmwares()`): the plan makes a node per
firmware (`test.boot`, `test.boot.uefi`, ...), all beside the converts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagepipe.boottest import BootTestFailed, boot_test
from imagepipe.initramfs_check import DRIVERS, check_drivers
from imagepipe.recipe.model import HttpCheck, Recipe
from imagepipe.stages.base import Artifact, Stage, StageContext


@dataclass(frozen=True)
class BootTestOptions:
    user_data: Path | None
    checks: tuple[HttpCheck, ...] = ()
    timeout: int = 600
    memory: int = 1024**3
    cpus: int = 2
    firmware: str = "bios"
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


class BootTestStage(Stage):
    name = "test.boot"
    version = 2  # 2: firmware
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
                               firmware=firmwares(recipe)[0])

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
                           firmware=o.firmware, hardware=o.hardware)
        ctx.log.info("boot test: %s", report)
        if not report["passed"]:
            raise BootTestFailed(report)
        return Artifact(path=None, kind="record", metadata=report)
