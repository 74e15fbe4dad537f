"""Load a recipe: YAML with marks -> `extends:` merge -> `${...}` expansion -> validated Recipe.

Why in this order: a base recipe (recipes/base/debian12.yaml) is a partial recipe, so only the
merged result can be validated; variables expand after merging so a base may use `${version}`
from the recipe that extends it. Every step keeps the FILE:LINE:COL of each value, so a
problem in a base file points into the base file.

Variables (in string values only, never in keys):
- `${date}`: the UTC date of the build as YYYYMMDD (one value per load);
- `${version}`: the recipe's `image_version` (itself expanded first; it cannot use `${version}`);
- `${env:NAME}`: the environment variable NAME; unset is an error naming the place;
- `$${`: a literal `${`;
- names passed in `variables=` (the CLI's `--var NAME=VALUE`) add to or override the above.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from imagepipe.errors import ImagepipeError, Problem, RecipeError
from imagepipe.recipe import model as m
from imagepipe.recipe import rules
from imagepipe.recipe.model import Recipe
from imagepipe.recipe.schema import Node, recipe_node
from imagepipe.recipe.validate import BAD, Checker
from imagepipe.recipe.yaml_marks import Doc, Key, parse_file, problem

_VAR = re.compile(r"\$\$\{|\$\{([^}]*)(\}|$)")


def load_recipe(path: Path, *, variables: Mapping[str, str] | None = None) -> Recipe:
    """The validated recipe at `path`; raises RecipeError listing every problem found."""
    path = Path(path)
    doc, problems = load_document(path)
    if doc.data is None:
        raise RecipeError(problems)
    if not isinstance(doc.data, dict):
        problems.append(problem(doc.mark(()), (), "a recipe must be a mapping of keys",
                                "start with `description: ...`", file=str(path)))
        raise RecipeError(problems)
    problems += expand(doc, variables or {})
    recipe, more = validate(doc, path)
    problems += more
    if problems or recipe is None:
        raise RecipeError(_unique(problems))
    return recipe


def _unique(problems: list[Problem]) -> list[Problem]:
    """Without repeats, in file and line order (the recipe's own file first)."""
    return sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line or 0, p.col or 0))


def load_document(path: Path, chain: tuple[Path, ...] = ()) -> tuple[Doc, list[Problem]]:
    """Parse `path` and merge the chain of `extends:` bases under it (no validation yet)."""
    doc, problems = parse_file(path)
    if not isinstance(doc.data, dict) or "extends" not in doc.data:
        return doc, problems
    ext = doc.data.pop("extends")
    mark = doc.marks.pop(("extends",), None)
    doc.key_marks.pop(("extends",), None)
    if ext is None:
        return doc, problems
    if not isinstance(ext, str) or not ext:
        problems.append(problem(mark, ("extends",), "expected a file name",
                                "extends: base/debian12.yaml"))
        return doc, problems
    base_path = path.parent / ext
    here = path.resolve()
    if base_path.resolve() in (*chain, here):
        names = " -> ".join(p.name for p in (*chain, here, base_path.resolve()))
        problems.append(problem(mark, ("extends",), f"extends cycle: {names}",
                                "a base recipe must not extend a recipe that extends it"))
        return doc, problems
    if not base_path.is_file():
        problems.append(problem(mark, ("extends",), f"base recipe not found: {ext}",
                                f"the path is relative to {path.parent}/ (looked at "
                                f"{base_path})"))
        return doc, problems
    base, base_problems = load_document(base_path, (*chain, here))
    problems = base_problems + problems
    if base.data is None:
        return doc, problems
    if not isinstance(base.data, dict):
        problems.append(problem(mark, ("extends",), f"base recipe {ext} is not a mapping"))
        return doc, problems
    return merge(base, doc), problems


def merge(base: Doc, over: Doc) -> Doc:
    """Deep-merge `over` onto `base`: mappings merge key by key, anything else replaces."""
    replaced: set[Key] = set()

    def walk(b: Any, o: Any, path: Key) -> Any:
        if isinstance(b, dict) and isinstance(o, dict):
            out = dict(b)
            for k, v in o.items():
                out[k] = walk(b[k], v, (*path, k)) if k in b else v
            return out
        replaced.add(path)
        return o

    data = walk(base.data, over.data, ())

    def kept(marks: dict[Key, Any]) -> dict[Key, Any]:
        return {k: v for k, v in marks.items()
                if not any(k[:i] in replaced for i in range(len(k) + 1))}

    return Doc(data, {**kept(base.marks), **over.marks},
               {**kept(base.key_marks), **over.key_marks})


def expand(doc: Doc, variables: Mapping[str, str]) -> list[Problem]:
    """Expand `${...}` in every string value of `doc.data`, in place."""
    problems: list[Problem] = []
    values = {"date": time.strftime("%Y%m%d", time.gmtime()), **variables}
    data = doc.data
    if isinstance(data.get("image_version"), str):
        data["image_version"] = _expand_str(data["image_version"], ("image_version",), doc,
                                            values, problems, allow_version=False)
    values.setdefault("version", str(data.get("image_version", "")))

    def walk(value: Any, path: Key) -> Any:
        if isinstance(value, str):
            return _expand_str(value, path, doc, values, problems)
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) if path or k != "image_version" else v
                    for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    doc.data = walk(data, ())
    return problems


def _expand_str(text: str, path: Key, doc: Doc, values: Mapping[str, str],
                problems: list[Problem], allow_version: bool = True) -> str:
    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name = match.group(1)
        if not match.group(2):
            problems.append(problem(doc.mark(path), path, f"unterminated ${{{name}",
                                    "close it with }, or write $${ for a literal ${"))
            return match.group(0)
        if name == "version" and not allow_version:
            problems.append(problem(doc.mark(path), path, "image_version cannot use ${version}",
                                    "use ${date} or ${env:NAME}"))
            return match.group(0)
        if name.startswith("env:"):
            env = name[4:]
            if env in os.environ:
                return os.environ[env]
            problems.append(problem(doc.mark(path), path,
                                    f"environment variable {env} is not set (${{{name}}})",
                                    f"export {env}=... before running imagepipe"))
            return match.group(0)
        if name in values:
            return str(values[name])
        from imagepipe.recipe.validate import did_you_mean

        known = sorted({*values, "env:NAME"})
        problems.append(problem(doc.mark(path), path, f"unknown variable ${{{name}}}",
                                did_you_mean(name, known)))
        return match.group(0)

    return _VAR.sub(sub, text)


def referenced_files(recipe: Recipe) -> list[Path]:
    """Every local file whose bytes change the build (never secrets such as password files)."""
    out: list[Path] = []
    src = recipe.source
    if src.iso is not None:
        out += [p for p in (src.iso.install.kickstart, src.iso.install.preseed) if p]
    out += [f.src for f in recipe.customize.files if f.src]
    if recipe.cloud_init is not None:
        ci = recipe.cloud_init
        out += [p for p in (ci.user_data, ci.meta_data, ci.network_config) if p]
    return out


def recipe_digest(recipe: Recipe) -> str:
    """sha256 of the canonical merged+expanded recipe plus every file it references."""
    h = hashlib.sha256()
    h.update(json.dumps(recipe.data, sort_keys=True, separators=(",", ":"),
                        default=str).encode())
    base = recipe.base_dir
    for p in referenced_files(recipe):
        name = str(p.relative_to(base)) if p.is_relative_to(base) else str(p)
        h.update(b"\0file\0" + name.encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def _build(node: Node, value: Any) -> Any:
    """Converted plain data -> model objects (defaults fill what the recipe leaves out)."""
    if value is None:
        return None
    if node.kind == "object":
        assert node.cls is not None
        return node.cls(**{k: _build(node.fields[k].node, v) if k in node.fields else v
                           for k, v in value.items()})
    if node.kind == "list":
        assert node.item is not None
        if node.scalar_ok and isinstance(value, str):
            value = [value]
        return tuple(_build(node.item, v) for v in value)
    if node.kind == "map":
        return tuple(sorted(value.items()))
    return value


def validate(doc: Doc, recipe_path: Path) -> tuple[m.Recipe | None, list[Problem]]:
    """Check `doc` (merged + expanded) and build the Recipe; problems are returned, not raised."""
    checker = Checker(doc)
    node = recipe_node()
    data = checker.check(node, doc.data, ())
    if isinstance(data, dict):
        rules.apply(checker, data, recipe_path)
    elif data is not BAD:
        checker.report((), "a recipe must be a mapping of keys")
    if checker.problems or not isinstance(data, dict):
        return None, checker.problems
    try:
        recipe = _build(node, {**data, "path": recipe_path.resolve(), "data": doc.data})
    except (TypeError, ValueError, ImagepipeError) as exc:  # a rule missed a case: still located
        checker.report((), f"cannot build the recipe: {exc}")
        return None, checker.problems
    return recipe, []
