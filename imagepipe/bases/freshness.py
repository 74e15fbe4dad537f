"""The freshness check of a recipe: what its base would contain if built now.

For a bootstrap this is the resolved package set (imagepipe.apt.resolve), computed when the
plan is made, so it enters the `base.bootstrap` stage id: an unchanged set means a cached
stage (nothing rebuilt, nothing published), a changed version reruns it, and `--explain`
names the packages that changed (their versions are key material). The build sets where the
indices live (the store) and whether the network may be used (`--offline`) once, with
`imagepipe.apt.resolve.configure`.
"""

from __future__ import annotations

from imagepipe.apt.resolve import Resolved, apt_state, resolve, settings
from imagepipe.recipe.model import BootstrapSource

_memo: dict[tuple[BootstrapSource, str, bool], Resolved] = {}


def resolve_bootstrap(src: BootstrapSource, firmware: str = "hybrid") -> Resolved:
    """The package set of this bootstrap now (once per process, source and firmware: the
    bootloader's packages follow disk.firmware)."""
    from imagepipe.apt import sources as apt_sources
    from imagepipe.bases import bootstrap

    memo_key = (src, firmware, settings.offline)
    if memo_key not in _memo:
        mirror = bootstrap.resolve_mirror(src)
        repos = apt_sources.all_repos(src, mirror)
        _memo[memo_key] = resolve(apt_state(), repos, src.variant,
                                  bootstrap.package_list(src, firmware),
                                  offline=settings.offline)
    return _memo[memo_key]
