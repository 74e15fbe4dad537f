"""Debian version comparison (dpkg's `verrevcmp`), for upgrade/downgrade in template diffs.

Why two paths: python3-apt's `apt_pkg.version_compare` is dpkg's own algorithm in C and is
preferred when importable (Debian hosts with python3-apt, which the venv sees through
--system-site-packages); the pure-Python fallback implements the same rules (epoch, then
upstream version, then Debian revision; `~` sorts before everything, even the end of the
string; letters before non-letters) so the diff works on hosts without python3-apt. A unit
test checks both agree on a table of tricky pairs.
"""

from __future__ import annotations

from collections.abc import Callable


def _order(c: str) -> int:
    if c.isdigit():
        return 0
    if c.isalpha():
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256 if c else 0


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    while i < len(a) or j < len(b):
        first_diff = 0
        while (i < len(a) and not a[i].isdigit()) or (j < len(b) and not b[j].isdigit()):
            ac = _order(a[i]) if i < len(a) else 0
            bc = _order(b[j]) if j < len(b) else 0
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        while i < len(a) and a[i].isdigit() and j < len(b) and b[j].isdigit():
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < len(a) and a[i].isdigit():
            return 1
        if j < len(b) and b[j].isdigit():
            return -1
        if first_diff:
            return first_diff
    return 0


def _split(version: str) -> tuple[int, str, str]:
    epoch, _, rest = version.partition(":") if ":" in version else ("0", "", version)
    upstream, _, revision = rest.rpartition("-") if "-" in rest else (rest, "", "")
    try:
        return int(epoch or 0), upstream, revision
    except ValueError:
        return 0, rest, revision


def py_version_compare(a: str, b: str) -> int:
    """<0, 0, >0 as dpkg --compare-versions would order `a` and `b`."""
    ea, ua, ra = _split(a)
    eb, ub, rb = _split(b)
    if ea != eb:
        return ea - eb
    return _verrevcmp(ua, ub) or _verrevcmp(ra, rb)


def _apt_compare() -> Callable[[str, str], int] | None:
    try:
        import apt_pkg
    except ImportError:
        return None
    apt_pkg.init_system()
    fn: Callable[[str, str], int] = apt_pkg.version_compare
    return fn


_APT = _apt_compare()


def version_compare(a: str, b: str) -> int:
    """dpkg's order of two versions: python3-apt when available, else the same in Python."""
    return _APT(a, b) if _APT is not None else py_version_compare(a, b)


def backend() -> str:
    return "apt_pkg" if _APT is not None else "python"
