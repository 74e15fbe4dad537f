"""One-off disk conversion and safe inspection (`imagepipe convert`, `imagepipe info`).

Public API (other areas import these names from here):
- `convert_image(src, dst, *, fmt, preset, options, compress, verify, force, allow_backing,
  resize, checksum) -> ImageReport`
- `probe_image(path, allow_backing=False) -> dict` (qemu-img info of an image safe to read)
- `ImageReport` (path, format, subformat, virtual_size, file_size, allocated_size, sha256)
- `PRESETS`, `plan_output`, `describe` (file digests: `imagepipe.hashing.file_digest`)
"""

from imagepipe.convert.image import VerificationError, convert_image
from imagepipe.convert.presets import PRESETS, Preset, plan_output
from imagepipe.convert.report import ImageReport, describe
from imagepipe.tools.probe import inspect_image, probe_image

__all__ = [
    "ImageReport", "PRESETS", "Preset", "VerificationError", "convert_image", "describe",
    "inspect_image", "plan_output", "probe_image",
]
