"""The nightly freshness check: resolve every shipped recipe's package set, nothing changed.

A nightly `imagepipe build --all recipes/` first resolves each bootstrapped recipe's package
set from the current apt indices (that set keys the rootfs). This bench times that check for
every recipe under recipes/ with warm indices (one untimed run first fetches them), and prints
the share of the time spent checking/fetching indices (InRelease per repository) vs apt's
resolver. Target: all recipes together within 10 s. Recipes with an image or ISO base have no
package set to resolve (their source is pinned by checksum) and are listed as such.
BENCH_STORE=DIR picks the store whose apt indices are used (default: the default store).
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = 10.0


def main() -> int:
    sys.path.insert(0, str(REPO))
    from imagepipe.apt import resolve as apt_resolve
    from imagepipe.bases import freshness
    from imagepipe.pipeline.batch import discover
    from imagepipe.recipe.load import load_recipe

    store = Path(os.environ["BENCH_STORE"]) if os.environ.get("BENCH_STORE") else None
    apt_resolve.configure(store)
    recipes = [(p, load_recipe(p)) for p in discover(REPO / "recipes")]
    boots = [(p, r.source.bootstrap) for p, r in recipes if r.source.bootstrap is not None]
    for p, r in recipes:
        if r.source.bootstrap is None:
            print(f"{p.name}: {r.source.kind} base, nothing to resolve")
    if not boots:
        print("no bootstrapped recipe shipped: nothing to time")
        return 0
    start = time.monotonic()
    for _, src in boots:  # warm-up: indices into the store (untimed)
        freshness.resolve_bootstrap(src)
    print(f"warm-up (indices fetched when missing or changed): "
          f"{time.monotonic() - start:.1f} s")
    freshness._memo.clear()
    total = fetch = 0.0
    cpu0 = _cpu()
    for p, src in boots:
        t0 = time.monotonic()
        res = freshness.resolve_bootstrap(src)
        took = time.monotonic() - t0
        total += took
        fetch += res.fetch_seconds
        print(f"{p.name}: {len(res.packages)} packages from {len(res.repos)} repositories in "
              f"{took:.2f} s (indices {res.fetch_seconds:.2f} s, apt resolver "
              f"{res.resolve_seconds:.2f} s, refetched: {len(res.fetched)})")
    cpu = _cpu() - cpu0
    share = 100 * fetch / total if total else 0.0
    load = os.getloadavg()[0]
    print(f"freshness check, all {len(boots)} bootstrapped recipes: {total:.2f} s "
          f"(target {TARGET:.0f} s) {'ok' if total <= TARGET else 'OVER TARGET'}")
    print(f"share spent fetching/checking indices: {share:.0f} %")
    print(f"CPU time (this process + apt): {cpu:.2f} s; load average {load:.1f} on "
          f"{os.cpu_count()} cores (wall time grows with the load, CPU time does not)")
    return 0 if total <= TARGET else 1


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
