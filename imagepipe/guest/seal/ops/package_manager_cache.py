"""Downloaded packages and caches only bloat the template (apt, dnf, yum, zypper)."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register(
    "package-manager-cache",
    default=True,
    summary="Remove package manager caches (apt archives, dnf/yum/zypper caches)",
)
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/var/cache/apt/archives/*.deb", "/var/cache/apt/archives/partial/*", "/var/cache/apt/*.bin"
    )
    for d in ("/var/cache/dnf", "/var/cache/yum", "/var/cache/zypp/packages"):
        ctx.empty_dir(d)
