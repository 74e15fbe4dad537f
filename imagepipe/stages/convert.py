"""Stage `convert`: one recipe output (format + preset + options) from the built image.

A thin wrapper over imagepipe.convert.convert_image (verification on unless the output says
`verify: false`; the sha256 it computes is reused by the engine instead of hashing again).
One stage per output, so changing one output's options reruns only that conversion.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagepipe.artifact import Artifact
from imagepipe.recipe.model import Output, Recipe
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class ConvertOptions:
    format: str
    preset: str | None = None
    options: tuple[tuple[str, str], ...] = ()
    compress: bool = False
    file_name: str = "disk"  # stem of the output file
    verify: bool = True
    ova_params: tuple[tuple[str, object], ...] = ()  # the VM an OVA's OVF describes


class ConvertStage(Stage):
    name = "convert"
    version = 2  # 2: the record names its preset
    Options = ConvertOptions
    inputs = ("image",)
    tools = ("qemu-img",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> ConvertOptions | None:
        return None  # planned per output: see options_for_output

    @staticmethod
    def options_for_output(recipe: Recipe, output: Output) -> ConvertOptions:
        ova: tuple[tuple[str, object], ...] = ()
        if output.format == "ova":
            from imagepipe.convert.ova import ova_params_from_recipe

            ova = tuple(sorted(ova_params_from_recipe(recipe).items()))
        return ConvertOptions(format=output.format, preset=output.preset,
                              options=tuple(output.options), compress=output.compress,
                              file_name=output.name or recipe.name, verify=output.verify,
                              ova_params=ova)

    def cost_hint(self) -> float:
        """Compressing writers (streamOptimized vmdk, zstd/zlib qcow2, OVA) are several times
        slower than plain ones (measured: 27 s vs 2-5 s for the same image)."""
        o: ConvertOptions = self.options
        opts = dict(o.options)
        slow = (o.compress or o.format == "ova" or o.preset in ("vsphere", "compressed")
                or opts.get("subformat") == "streamOptimized")
        return (10.0 if slow else 1.0) + (0.5 if o.verify else 0.0)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        from imagepipe import formats
        from imagepipe.convert import convert_image

        o: ConvertOptions = self.options
        src = inputs["image"]
        assert src.path is not None
        ext = ".ova" if formats.is_container(o.format) else formats.get(o.format).extension
        dst = ctx.workdir / f"{o.file_name}{ext}"
        ctx.log.info("convert %s -> %s (%s, preset %s)", src.path, dst, o.format, o.preset)
        report = convert_image(src.path, dst, fmt=o.format, preset=o.preset,
                               options=dict(o.options) or None, compress=o.compress,
                               verify=o.verify, checksum=True,
                               ova_params=dict(o.ova_params) or None)
        meta = report.to_dict()
        meta.pop("path", None)
        meta["preset"] = o.preset  # the manifest's outputs[] say which platform each is for
        ctx.log.info("converted: %s", meta)
        driver = None if formats.is_container(o.format) else formats.get(o.format).driver
        return Artifact(path=dst, kind="image" if driver else "file", format=driver,
                        metadata=meta,
                        digest=f"sha256:{report.sha256}" if report.sha256 else None)
