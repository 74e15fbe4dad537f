"""Thin wrappers over the external tools imagepipe drives (qemu-img, qemu-nbd, qemu-system,
libguestfs, mmdebstrap). Every subprocess goes through `tools.run.run()` so it is logged once,
never uses a shell, and fails with a `ToolError` that prints the command ready to paste.
"""

from imagepipe.tools.run import Result, require, run

__all__ = ["Result", "require", "run"]
