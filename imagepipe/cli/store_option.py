"""The `--store DIR` option shared by build, fetch and cache (default: $IMAGEPIPE_STORE or
~/.cache/imagepipe, resolved by imagepipe.cache_root.default_root)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def store_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--store", type=click.Path(file_okay=False, path_type=Path), default=None,
        help="Store directory (default: $IMAGEPIPE_STORE or ~/.cache/imagepipe).")(f)
