"""Shell histories can hold passwords typed on a command line; no clone should inherit them."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register

HISTORIES = (
    ".bash_history",
    ".zsh_history",
    ".sh_history",
    ".ash_history",
    ".python_history",
    ".lesshst",
    ".mysql_history",
    ".psql_history",
)


@register("bash-history", default=True, summary="Remove shell and REPL histories of root and users")
def perform(ctx: SealContext) -> None:
    for home in ("/root", *ctx.session.glob("/home/*")):
        for name in HISTORIES:
            ctx.rm(f"{home}/{name}")
