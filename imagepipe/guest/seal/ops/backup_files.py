"""Editor and package backup files (*~, *.bak, *.rpmsave...) keep old secrets and configs."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register

PATTERNS = (
    "*~",
    "*.bak",
    "*.orig",
    "*.rej",
    "*.rpmnew",
    "*.rpmsave",
    "*.dpkg-old",
    "*.dpkg-dist",
    "*.ucf-old",
    "*.ucf-dist",
)


@register(
    "backup-files", default=True, summary="Remove editor/package backup files in /etc, /root, /home"
)
def perform(ctx: SealContext) -> None:
    import fnmatch
    import posixpath

    for top in ("/etc", "/root", "/home"):
        for path in ctx.session.files_under(top):
            if any(fnmatch.fnmatch(posixpath.basename(path), p) for p in PATTERNS):
                ctx.rm(path)
