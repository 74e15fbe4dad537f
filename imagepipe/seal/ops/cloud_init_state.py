"""cloud-init state must go, or a clone booted with the same instance-id is 'not new' and skips
per-instance work such as SSH host key generation (virt-sysprep leaves it).
The seed (/var/lib/cloud/seed) stays: it is the template's own configuration."""

from __future__ import annotations

from imagepipe.seal import SealContext, register


@register(
    "cloud-init-state",
    default=True,
    summary="Remove cloud-init instance state, semaphores and logs (keeps the seed)",
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
