"""Test-only stages that misbehave on purpose (fail, or stall mid-write), registered over
`convert` by the tests that need them."""

from __future__ import annotations

import os
from collections.abc import Mapping

from imagepipe.errors import ImagepipeError
from imagepipe.stages.base import Artifact, StageContext
from imagepipe.stages.convert import ConvertStage


class FailingConvert(ConvertStage):
    """Writes half an output, registers a clean-up, then fails."""

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        (ctx.workdir / "half.img").write_bytes(b"x" * 4096)
        marker = ctx.build_dir / "cleanup-ran"
        ctx.exit_stack.callback(marker.write_text, "yes")
        ctx.log.info("about to fail")
        raise ImagepipeError("convert failed on purpose")


class StallingConvert(ConvertStage):
    """Converts for real, but first writes part of the output and stalls while
    $IMAGEPIPE_TEST_STALL names an existing file (so a test can kill -9 it mid-stage)."""

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        flag = os.environ.get("IMAGEPIPE_TEST_STALL")
        if flag:
            (ctx.workdir / f"{self.options.file_name}.partial").write_bytes(b"y" * 65536)
            open(flag + ".reached", "w").close()
            # stall in a child process, as real stages do (qemu-img): Ctrl-C must stop it
            ctx.run(["sh", "-c", f"while [ -e '{flag}' ]; do sleep 0.1; done"])
        return super().run(ctx, inputs)
