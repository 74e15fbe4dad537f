"""The last guest step of a build: account for what the image holds, then drop freed blocks.

Why: a template's size is what every clone, upload and import pays. Blocks freed by the guest
work (apt caches, the seal's removals, replaced files) still hold old data in the disk file
unless they are trimmed: `fstrim` on every mounted filesystem, through the appliance's
discard-enabled drive, turns them into holes that the converts then skip. The ten largest
directories go into the manifest, so "why is this image big" has an answer without a boot.
"""

from __future__ import annotations

from typing import Any

from imagepipe.tools.guestfs import GuestSession

DEPTH = 3  # /usr/lib/modules, /usr/share/locale, /var/cache/apt ...
TOP = 10
# Left by apt after the seal's package-manager-cache (it removes the .debs and *.bin caches):
# the package lists, which a clone refreshes with `apt-get update` before installing anyway.
APT_LEFTOVERS = "/var/lib/apt/lists"


def largest_dirs(session: GuestSession, depth: int = DEPTH, top: int = TOP) -> list[dict[str, Any]]:
    """The `top` largest directories down to `depth` levels, without their own ancestors (so
    /usr/lib/modules is listed rather than /usr and /usr/lib)."""
    try:
        out = session.g.sh(f"du -x -k -d {depth} / 2>/dev/null || true")
    except RuntimeError:
        return []  # no usable /bin/sh or du in the guest: the listing is informative only
    sizes: dict[str, int] = {}
    for line in out.splitlines():
        kib, _, path = line.partition("\t")
        if kib.strip().isdigit() and path.startswith("/"):
            sizes[path] = int(kib) * 1024
    parents = {p.rsplit("/", 1)[0] or "/" for p in sizes}
    leaves = [p for p in sizes if p not in parents or p.count("/") >= depth]
    leaves.sort(key=lambda p: -sizes[p])
    return [{"path": p, "bytes": sizes[p]} for p in leaves[:top]]


def used_bytes(session: GuestSession) -> int:
    """Bytes in use on the guest's mounted filesystems (what a convert must at least carry)."""
    total = 0
    for mp in _mountpoints(session):
        st = session.g.statvfs(mp)
        total += (st["blocks"] - st["bfree"]) * st["frsize"]
    return int(total)


def clean_and_trim(session: GuestSession) -> dict[str, Any]:
    """Remove apt's package lists, list the largest directories, fstrim every filesystem."""
    g = session.g
    removed = 0
    if session.is_dir(APT_LEFTOVERS):
        for path in session.glob(f"{APT_LEFTOVERS}/*"):
            if session.is_file(path):
                g.rm(path)
                removed += 1
    dirs = largest_dirs(session)
    g.sync()
    trimmed = []
    for mp in _mountpoints(session):
        try:
            g.fstrim(mp)
            trimmed.append(mp)
        except RuntimeError:
            pass  # a filesystem without discard support: the converts still skip zeros
    return {"apt_lists_removed": removed, "largest_dirs": dirs, "used_bytes": used_bytes(session),
            "trimmed": trimmed}


def _mountpoints(session: GuestSession) -> list[str]:
    mps = session.g.mountpoints()
    pairs = mps.items() if isinstance(mps, dict) else mps
    return sorted(mp for _dev, mp in pairs)
