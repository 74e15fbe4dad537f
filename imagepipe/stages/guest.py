"""Stage `guest`: customize + inject + seal + lints + verification in one appliance launch.

A thin wrapper over imagepipe.guest.work.run_guest_work. It never touches its input (a store entry):
the work happens on a standalone qcow2 copy in the work dir, which becomes the output. The
instance-id is derived from this stage's id, so it is new for every distinct build (a clone is
never "the same instance" as the image's previous boots) yet stable for a cached rebuild.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from imagepipe.artifact import Artifact
from imagepipe.recipe.model import CloudInit, Customize, Recipe, Seal
from imagepipe.stages.base import Stage, StageContext


@dataclass(frozen=True)
class GuestOptions:
    customize: Customize = dataclasses.field(default_factory=Customize)
    cloud_init: CloudInit | None = None
    seal: Seal = dataclasses.field(default_factory=Seal)


class GuestStage(Stage):
    name = "guest"
    version = 4  # 2: package inventory read from the sealed image; 3: apt lists removed,
    # free blocks trimmed, largest directories recorded; 4: full datasource list, NoCloud last
    Options = GuestOptions
    inputs = ("image",)
    tools = ("qemu-img",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> GuestOptions:
        return GuestOptions(
            customize=recipe.customize, cloud_init=recipe.cloud_init, seal=recipe.seal
        )

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        from imagepipe.cloudinit.seed import build_seed_iso
        from imagepipe.guest.work import copy_to_qcow2, run_guest_work, seed_payload

        o: GuestOptions = self.options
        src = inputs["image"]
        assert src.path is not None
        iid = f"iid-imagepipe-{ctx.key[:16]}"
        recipe = dataclasses.replace(
            ctx.recipe, customize=o.customize, cloud_init=o.cloud_init, seal=o.seal
        )
        files = {}
        if o.cloud_init is not None and o.cloud_init.seed_iso and o.cloud_init.user_data:
            seed = ctx.workdir / "seed.iso"
            build_seed_iso(seed, *seed_payload(o.cloud_init, iid))  # validates before launch
            files["seed.iso"] = seed
        out = ctx.workdir / "disk.qcow2"
        copy_to_qcow2(src.path, src.format or "raw", out)
        ctx.log.info("guest work on %s (copy of %s), accel %s", out, src.path, ctx.accel)
        record = run_guest_work(out, recipe, instance_id=iid, fmt="qcow2").to_json()
        ctx.log.info("guest work: %s", record)
        return Artifact(path=out, kind="image", format="qcow2", files=files, metadata=record)
