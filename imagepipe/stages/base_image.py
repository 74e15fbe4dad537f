"""Stage `base.image`: a fetched cloud image as the build's base disk.

Why pass-through when nothing changes: the fetched file is already in the store, immutable and
content-addressed; copying it would cost seconds and disk for nothing. With `disk.size` set the
image is converted to a qcow2 in the work dir and grown with `qemu-img resize`; growing the
partition and filesystem inside is guest work (cloud-init's growpart does it at first boot, and
the guest stage may do it in its libguestfs session).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagepipe.artifact import Artifact
from imagepipe.errors import InputError
from imagepipe.recipe.model import Recipe
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class BaseImageOptions:
    format: str | None = None  # declared format; None = probed (safely: no backing files)
    size: int | None = None  # grow to this many bytes


class BaseImageStage(Stage):
    name = "base.image"
    version = 1
    Options = BaseImageOptions
    inputs = ("source",)
    tools = ("qemu-img",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> BaseImageOptions | None:
        src = recipe.source.image
        if src is None:
            return None
        return BaseImageOptions(format=src.format, size=recipe.disk.size)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        from imagepipe import formats
        from imagepipe.convert import probe_image
        from imagepipe.tools import qemu_img

        source = inputs["source"]
        assert source.path is not None
        o: BaseImageOptions = self.options
        info = probe_image(source.path)
        driver = str(info["format"])
        declared = formats.get(o.format).driver if o.format else None
        if declared and declared != driver:
            raise InputError(f"source image is {driver}, but the recipe says format: {o.format}",
                             "fix source.image.format or the URL")
        vsize = int(info["virtual-size"])
        meta = {"source_format": driver, "source_virtual_size": vsize}
        if o.size is None or o.size == vsize:
            return Artifact(path=source.path, kind="image", format=driver, metadata=meta)
        if o.size < vsize:
            raise InputError(f"disk.size {o.size} is smaller than the source image ({vsize})",
                             "images are never shrunk; raise disk.size or remove it")
        out = ctx.workdir / "base.qcow2"
        ctx.run(qemu_img.convert_argv(source.path, out, fmt=driver, out_fmt="qcow2"),
                timeout=3600)
        ctx.run(qemu_img.resize_argv(out, fmt="qcow2", size=o.size), timeout=600)
        return Artifact(path=out, kind="image", format="qcow2",
                        metadata={**meta, "resized_to": o.size})
