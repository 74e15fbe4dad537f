"""What changed between two builds of a template: packages, output sizes, seal and lints.

Why from manifests alone: a published version directory carries its manifest, so two versions
can be compared on any machine without their disk images (no appliance launch, instant).
Package versions are ordered with dpkg's algorithm (see debversion), so `1.0~rc1 -> 1.0` is an
upgrade and a rebuilt `+deb12u2 -> +deb12u1` a downgrade.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from imagepipe.inventory.debversion import version_compare

Pkg = Mapping[str, Any]


def _key(p: Pkg) -> tuple[str, str]:
    return str(p["name"]), str(p.get("arch") or "")


def package_changes(old: Iterable[Pkg] | None, new: Iterable[Pkg] | None) -> dict[str, Any]:
    """{added, removed, upgraded, downgraded, unchanged} between two package lists; `known`
    is False when either side has no inventory (a manifest from before inventories)."""
    if old is None or new is None:
        return {"known": False, "added": [], "removed": [], "upgraded": [], "downgraded": [],
                "unchanged": 0}
    a = {_key(p): str(p["version"]) for p in old}
    b = {_key(p): str(p["version"]) for p in new}
    out: dict[str, Any] = {"known": True, "added": [], "removed": [], "upgraded": [],
                           "downgraded": [], "unchanged": 0}
    for k in sorted(set(a) | set(b)):
        name, arch = k
        if k not in a:
            out["added"].append({"name": name, "arch": arch, "version": b[k]})
        elif k not in b:
            out["removed"].append({"name": name, "arch": arch, "version": a[k]})
        elif a[k] == b[k]:
            out["unchanged"] += 1
        else:
            bucket = "upgraded" if version_compare(a[k], b[k]) < 0 else "downgraded"
            out[bucket].append({"name": name, "arch": arch, "old": a[k], "new": b[k]})
    return out


def changed_count(ch: Mapping[str, Any]) -> int:
    return sum(len(ch.get(k, [])) for k in ("added", "removed", "upgraded", "downgraded"))


def _outputs(m: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {Path(str(o.get("path") or o.get("store_path"))).name: o
            for o in m.get("outputs", []) or []}


def output_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    a, b = _outputs(old), _outputs(new)
    rows = []
    for name in sorted(set(a) | set(b)):
        row: dict[str, Any] = {"file": name}
        for field in ("file_size", "virtual_size", "allocated_size"):
            x = a.get(name, {}).get(field)
            y = b.get(name, {}).get(field)
            row[field] = {"old": x, "new": y,
                          "delta": (y - x) if isinstance(x, int) and isinstance(y, int) else None}
        row["changed"] = a.get(name, {}).get("sha256") != b.get(name, {}).get("sha256")
        rows.append(row)
    return rows


def _guest_record(m: Mapping[str, Any]) -> Mapping[str, Any]:
    for st in m.get("stages", []) or []:
        if st.get("stage") == "guest":
            return st.get("record") or {}
    return {}


def _count(value: Any) -> int:
    """The seal record counts removed files (older records listed them)."""
    return value if isinstance(value, int) else len(value or [])


def seal_lint_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    a, b = _guest_record(old), _guest_record(new)
    sa, sb = a.get("seal") or {}, b.get("seal") or {}
    ops_a, ops_b = set(sa.get("operations") or []), set(sb.get("operations") or [])
    la, lb = a.get("lints") or {}, b.get("lints") or {}
    lints = {}
    for field in ("static_ip_allowed", "password_allowed"):
        xa, xb = set(la.get(field) or []), set(lb.get(field) or [])
        lints[field] = {"added": sorted(xb - xa), "removed": sorted(xa - xb)}
    return {
        "seal": {"operations_added": sorted(ops_b - ops_a),
                 "operations_removed": sorted(ops_a - ops_b),
                 "files_removed": {"old": _count(sa.get("files_removed")),
                                   "new": _count(sb.get("files_removed"))}},
        "lints": {"passed": {"old": la.get("passed"), "new": lb.get("passed")}, **lints},
    }


def manifest_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {"packages": package_changes(old.get("packages"), new.get("packages")),
            "outputs": output_changes(old, new), **seal_lint_changes(old, new),
            "recipe_changed": (old.get("recipe") or {}).get("sha256")
            != (new.get("recipe") or {}).get("sha256")}


def package_lines(ch: Mapping[str, Any], indent: str = "  ") -> list[str]:
    """`+ name version`, `- name version`, `^ name old -> new`, `v name old -> new`."""
    if not ch.get("known", True):
        return [f"{indent}(package lists unknown: a version was built before inventories)"]
    lines = [f"{indent}+ {p['name']} {p['version']}" for p in ch["added"]]
    lines += [f"{indent}- {p['name']} {p['version']}" for p in ch["removed"]]
    lines += [f"{indent}^ {p['name']} {p['old']} -> {p['new']}" for p in ch["upgraded"]]
    lines += [f"{indent}v {p['name']} {p['old']} -> {p['new']} (downgrade)"
              for p in ch["downgraded"]]
    return lines


def format_text(d: Mapping[str, Any], old: str, new: str) -> str:
    from imagepipe.store.maintenance import human

    ch = d["packages"]
    lines = [f"{old} -> {new}"]
    summary = ", ".join(f"{len(ch[k])} {k}" for k in ("added", "removed", "upgraded",
                                                      "downgraded"))
    lines.append(f"packages: {summary}, {ch['unchanged']} unchanged")
    lines += package_lines(ch)
    lines.append("outputs:")
    for row in d["outputs"]:
        fs = row["file_size"]
        size = " -> ".join(human(v) if isinstance(v, int) else "-" for v in (fs["old"],
                                                                              fs["new"]))
        delta = fs["delta"]
        sign = "" if delta is None else f" ({'+' if delta >= 0 else '-'}{human(abs(delta))})"
        lines.append(f"  {row['file']}: {size}{sign}"
                     + ("" if row["changed"] else ", identical"))
    seal = d["seal"]
    if seal["operations_added"] or seal["operations_removed"]:
        lines.append("seal: +" + ", +".join(seal["operations_added"] or ["(none)"])
                     + "; -" + ", -".join(seal["operations_removed"] or ["(none)"]))
    else:
        fr = seal["files_removed"]
        lines.append(f"seal: same operations; files removed {fr['old']} -> {fr['new']}")
    lint_bits = [f"{k}: +{len(v['added'])} -{len(v['removed'])}"
                 for k, v in d["lints"].items() if k != "passed" and (v["added"] or v["removed"])]
    lines.append("lints: " + ("; ".join(lint_bits) if lint_bits else "unchanged"))
    if d["recipe_changed"]:
        lines.append("recipe: changed")
    return "\n".join(lines)
