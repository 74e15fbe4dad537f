"""Stage `base.iso`: an unattended install from the fetched ISO (imagepipe.bases.install_iso).

Only the installed disk is the artifact: the remastered ISO lives in the work dir for the one
boot and is gone afterwards (oVirt's "Run Once", a template rule in docs/recipes.md). The
install console log is kept in the build's log directory whatever happens.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagepipe.artifact import Artifact
from imagepipe.bases.install_iso import install_from_iso
from imagepipe.recipe.model import IsoInstall, Recipe
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class IsoInstallOptions:
    install: IsoInstall
    size: int | None = None


class IsoInstallStage(Stage):
    name = "base.iso"
    version = 1
    Options = IsoInstallOptions
    inputs = ("iso",)
    tools = ("qemu-system-x86_64",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> IsoInstallOptions | None:
        iso = recipe.source.iso
        if iso is None:
            return None
        return IsoInstallOptions(install=iso.install, size=recipe.disk.size)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        iso = inputs["iso"].path
        assert iso is not None
        out = ctx.workdir / "disk.qcow2"
        record = install_from_iso(iso, out, install=self.options.install,
                                  size=self.options.size, log_dir=ctx.build_dir / "logs",
                                  accel=ctx.accel)
        return Artifact(path=out, kind="image", format="qcow2", metadata=record)
