"""Python bytecode caches are derived data: ~25 MB in a Debian image with cloud-init.

Off by default: Python rewrites a module's cache on its first import, so a clone's first boot
pays for compiling what cloud-init imports (a few seconds on KVM). Recipes that count every
megabyte (recipes/httpd-cloud.yaml) turn it on: `seal: {operations: defaults,+python-bytecode}`.
"""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register

ROOTS = ("/usr/lib/python3", "/usr/lib/python3.*", "/usr/local/lib/python3.*")


@register(
    "python-bytecode",
    default=False,
    summary="Remove Python bytecode caches (__pycache__), rebuilt on first import",
)
def perform(ctx: SealContext) -> None:
    for pattern in ROOTS:
        for root in ctx.session.glob(pattern):
            if not ctx.session.is_dir(root):
                continue
            for rel in ctx.g.find(root):
                if rel.endswith("/__pycache__") or rel == "__pycache__":
                    ctx.rm(f"{root}/{rel}")
