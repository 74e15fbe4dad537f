"""Pieces every command shares: the `--force` rule for output files and the help examples.

Why one place: a user who learned `--force` on `convert` must find it meaning the same on
`seed-iso -o` and `seal -o`, and every `--help` ends with examples in the same layout (the
man page generator reads them from the same epilog).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click


def force_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """`--force`: replace an existing output file (refused otherwise, exit 2)."""
    return click.option("--force", is_flag=True,
                        help="Replace the output file if it exists (refused otherwise).")(f)


def examples(*lines: str) -> str:
    """A click epilog listing example command lines (kept verbatim by click's `\\b`)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)
