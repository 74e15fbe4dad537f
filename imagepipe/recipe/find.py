"""Finding the recipe a user meant: `imagepipe build httpd` means `recipes/httpd.yaml`."""

from __future__ import annotations

import difflib
from pathlib import Path


def suggest_recipe(given: Path, root: Path = Path("recipes")) -> str:
    """A hint naming the recipe file `given` probably means (same stem or a close name under
    recipes/ or next to it), or how to list the recipes."""
    stem = given.name.removesuffix(".yaml").removesuffix(".yml")
    dirs = [d for d in (given.parent, root) if d.is_dir()]
    candidates = sorted({p for d in dirs for p in (*d.glob("*.yaml"), *d.glob("*.yml"))})
    for p in candidates:
        if p.stem == stem:
            return f"did you mean {p}?"
    close = difflib.get_close_matches(stem, [p.stem for p in candidates], n=1)
    if close:
        match = next(p for p in candidates if p.stem == close[0])
        return f"did you mean {match}?"
    if candidates:
        return "recipes here: " + ", ".join(str(p) for p in candidates[:8])
    return "give the path of a recipe file, e.g. recipes/httpd.yaml"
