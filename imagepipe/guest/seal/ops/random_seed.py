"""A saved random seed makes every clone start its RNG from the same state."""

from __future__ import annotations

from imagepipe.guest.seal import SealContext, register


@register("random-seed", default=True, summary="Remove saved random seeds (systemd, urandom)")
def perform(ctx: SealContext) -> None:
    ctx.rm_glob(
        "/var/lib/systemd/random-seed", "/var/lib/urandom/random-seed", "/var/lib/random-seed"
    )
