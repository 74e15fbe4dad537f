"""The stage registry: stage name -> "module:Class", imported only when a build plans it.

Why lazy: a stage pulls in heavy libraries (guestfs, the oVirt SDK); a build that does not use
a stage must not import it, and a stage whose module is missing must fail the *plan* with a
clear error naming the stage (never be skipped silently).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from imagepipe.errors import ImagepipeError

if TYPE_CHECKING:
    from imagepipe.stages.base import Stage

# One line per stage; a build imports only the stages its plan uses.
STAGES: dict[str, str] = {
    "fetch": "imagepipe.stages.fetch:FetchStage",
    "base.image": "imagepipe.stages.base_image:BaseImageStage",
    "base.bootstrap": "imagepipe.stages.bootstrap:BootstrapStage",
    "base.iso": "imagepipe.stages.install_iso:IsoInstallStage",
    "guest": "imagepipe.stages.guest:GuestStage",
    "convert": "imagepipe.stages.convert:ConvertStage",
    "test.boot": "imagepipe.stages.boottest:BootTestStage",
    "publish.local": "imagepipe.stages.publish_local:LocalPublishStage",
    "publish.ovirt": "imagepipe.stages.publish_ovirt:OvirtPublishStage",
}


class StageNotAvailable(ImagepipeError):
    """A stage name the registry does not know, or a registry line that does not lead to its
    Stage class (a packaging or plugin mistake): the plan fails before any work."""


def get_stage(name: str) -> type[Stage]:
    """Import and return the stage class registered under `name`."""
    from imagepipe.stages.base import Stage

    target = STAGES.get(name)
    if target is None:
        raise StageNotAvailable(f"unknown stage {name!r}", f"known stages: {', '.join(STAGES)}")
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise StageNotAvailable(
                f"stage {name!r} is not available: module {module_name} is missing",
                "this recipe needs it; update imagepipe or change the recipe",
            ) from None
        raise
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Stage)):
        raise StageNotAvailable(f"stage {name!r}: {target} is not a Stage class")
    if cls.name != name:
        raise StageNotAvailable(f"stage {name!r}: {target} declares name {cls.name!r}")
    return cls
