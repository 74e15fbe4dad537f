"""Off by default: removes login users (UID >= 1000) with their homes, keeping root/system."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


def _keep(line: str, doomed: set[str]) -> bool:
    return line.split(":", 1)[0] not in doomed


@register(
    "user-account", default=False, summary="Remove user accounts (UID >= 1000) and their homes"
)
def perform(ctx: SealContext) -> None:
    s = ctx.session
    if not s.is_file("/etc/passwd"):
        return
    doomed = {
        f[0]: f[5]
        for f in (ln.split(":") for ln in s.read_text("/etc/passwd").splitlines())
        if len(f) > 5 and f[2].isdigit() and 1000 <= int(f[2]) < 60000
    }
    if not doomed:
        return
    for name in ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"):
        ctx.edit(
            name, lambda t: "".join(ln + "\n" for ln in t.splitlines() if _keep(ln, set(doomed)))
        )
    for user, home in doomed.items():
        if home.startswith("/home/"):
            ctx.rm(home)
        ctx.rm(f"/var/spool/mail/{user}")
