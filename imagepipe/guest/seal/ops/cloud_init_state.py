"""cloud-init state must go, or a clone booted with the same instance-id is 'not new' and skips
per-instance work such as SSH host key generation (virt-sysprep leaves it).
The seed (/var/lib/cloud/seed) stays: it is the template's own configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imagepipe.guest.seal import SealContext, register

if TYPE_CHECKING:
    from imagepipe.tools.guestfs import GuestSession

# What makes a clone 'not new' to cloud-init (the logs may come back and do no harm).
STATE = (
    "/var/lib/cloud/instance",
    "/var/lib/cloud/instances",
    "/var/lib/cloud/sem",
    "/var/lib/cloud/data",
)


def check(s: GuestSession) -> list[str]:
    """Read back: no instance state is left."""
    return [
        f"cloud-init instance state still present: {p}"
        for p in STATE
        if s.is_symlink(p) or s.exists(p)
    ]


@register(
    "cloud-init-state",
    default=True,
    summary="Remove cloud-init instance state, semaphores and logs (keeps the seed)",
    verify=check,
)
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/var/lib/cloud/instance",
        "/var/lib/cloud/instances",
        "/var/lib/cloud/data",
        "/var/lib/cloud/sem",
        "/var/lib/cloud/handlers",
        "/var/lib/cloud/scripts/per-instance/*",
        "/var/log/cloud-init.log",
        "/var/log/cloud-init-output.log",
        "/run/cloud-init",
    )
