"""`--var NAME=VALUE` and `--var-file FILE`: one code path for `validate` and `build`.

Why shared: what `imagepipe validate --var ...` accepts must be exactly what `imagepipe build
--var ...` builds, so both commands read their variables here. A var file is either a YAML
mapping (`name: value`) or `NAME=VALUE` lines (`#` comments, blank lines allowed); `--var`
given on the command line wins over any file, later files over earlier ones.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from imagepipe.errors import InputError

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


def var_options(func: F) -> F:
    """The two click options (`variables`, `var_files` parameters)."""
    func = click.option("--var-file", "var_files", multiple=True, metavar="FILE",
                        type=click.Path(path_type=Path),
                        help="Read variables from FILE (YAML mapping or NAME=VALUE lines).")(func)
    return click.option("--var", "variables", multiple=True, metavar="NAME=VALUE",
                        help="Set a ${NAME} variable (also overrides ${date} / "
                        "${version}).")(func)


def parse_vars(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`NAME=VALUE` strings from the command line."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InputError(f"bad --var {pair!r}", "write --var NAME=VALUE")
        out[name] = value
    return out


def read_var_file(path: Path) -> dict[str, str]:
    """The variables in `path`; a bad file is an input error naming the file and line."""
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read --var-file {path}: {exc.strerror or exc}",
                         "give an existing file") from exc
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if lines and all("=" in ln and ":" not in ln.split("=", 1)[0] for ln in lines):
        out: dict[str, str] = {}
        for no, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, value = line.partition("=")
            name = name.strip()
            if not _NAME.match(name):
                raise InputError(f"{path}:{no}: bad variable name {name!r}",
                                 "write NAME=VALUE, one per line")
            out[name] = value.strip()
        return out
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise InputError(f"{where}: not YAML and not NAME=VALUE lines",
                         "write `name: value` lines (YAML) or NAME=VALUE lines") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: a var file must be a mapping of names to values",
                         "write `name: value` lines")
    out = {}
    for name, value in data.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(f"{path}: bad variable name {name!r}", "use letters, digits, _ . -")
        if isinstance(value, (dict, list)):
            raise InputError(f"{path}: variable {name} must be a single value, not a "
                             f"{type(value).__name__}", "variables expand inside strings")
        out[name] = "" if value is None else str(value).lower() if isinstance(value, bool) \
            else str(value)
    return out


def collect(pairs: tuple[str, ...] | list[str],
            files: tuple[Path, ...] | list[Path] = ()) -> dict[str, str]:
    """Files in order, then the command line's `--var` over them."""
    values: dict[str, str] = {}
    for f in files:
        values.update(read_var_file(Path(f)))
    values.update(parse_vars(pairs))
    return values


def as_args(pairs: tuple[str, ...] | list[str],
            files: tuple[Path, ...] | list[Path] = ()) -> list[str]:
    """The same options again, for a child `imagepipe build` (build --all)."""
    args: list[str] = []
    for f in files:
        args += ["--var-file", str(Path(f).absolute())]
    for p in pairs:
        args += ["--var", p]
    return args
