"""Stage `test.boot`: boot the sealed image and prove it works (imagepipe.boottest).

A failed boot test raises, so the build fails before any publish stage runs; the console log
stays in the build's log directory (outside the work dir the engine removes). A passed test is
cached like any stage: the same image with the same checks need not be booted again.

One stage per datasource (`test.boot.datasource` may list several): each boots the image the
way one kind of platform starts a VM from the template (imagepipe.boottest_media), all beside
the converts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from imagepipe.boottest import BootTestFailed, boot_test
from imagepipe.recipe.model import HttpCheck, Recipe
from imagepipe.stages.base import Artifact, Stage, StageContext


@dataclass(frozen=True)
class BootTestOptions:
    user_data: Path | None
    checks: tuple[HttpCheck, ...] = ()
    timeout: int = 600
    memory: int = 1024**3
    cpus: int = 2
    datasource: str = "nocloud"


def datasources(recipe: Recipe) -> tuple[str, ...]:
    """The recipe's `test.boot.datasource`, or what its publish targets imply: oVirt starts VMs
    from the template with a config drive; elsewhere a cidata ISO is the common way."""
    boot = recipe.test.boot
    if boot is not None and boot.datasource:
        return tuple(dict.fromkeys(boot.datasource))
    return ("configdrive",) if recipe.publish.ovirt is not None else ("nocloud",)


class BootTestStage(Stage):
    name = "test.boot"
    version = 2
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
                               datasource=datasources(recipe)[0])

    @classmethod
    def options_per_datasource(cls, recipe: Recipe) -> list[BootTestOptions]:
        """One boot per datasource of the recipe (empty without `test.boot`)."""
        first = cls.options_from_recipe(recipe)
        if first is None:
            return []
        return [dataclasses.replace(first, datasource=ds) for ds in datasources(recipe)]

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        image = inputs["image"]
        assert image.path is not None
        o: BootTestOptions = self.options
        report = boot_test(image.path, user_data=o.user_data, checks=o.checks, timeout=o.timeout,
                           log_dir=ctx.build_dir / "logs" / "boot-test", memory=o.memory,
                           cpus=o.cpus, accel=ctx.accel, disk_fmt=image.format,
                           datasource=o.datasource)
        ctx.log.info("boot test: %s", report)
        if not report["passed"]:
            raise BootTestFailed(report)
        return Artifact(path=None, kind="record", metadata=report)
