"""Where imagepipe keeps its cache, the content-addressed store, when no `--store` is given.

Why a module of its own, in the base layer: the store uses it, and so do tools that put their
own temporary files under the store (libguestfs's, so that a build killed with -9 leaves
nothing the next build does not sweep) and the apt indices; none of those should import the
store package for one path.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "IMAGEPIPE_STORE"


def default_root() -> Path:
    """$IMAGEPIPE_STORE, else $XDG_CACHE_HOME/imagepipe, else ~/.cache/imagepipe."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "imagepipe"
