"""`imagepipe validate RECIPE...` and `imagepipe schema`.

Why a separate validate command: CI (and an editor's save hook) can check every recipe in
about a second, without a build or an appliance, and see every problem of every recipe at
once (exit 2), each as FILE:LINE:COL: PATH: message (hint). The one network read is the
kernel check (imagepipe.bases.kernelcheck: ~60 KB of the kernel package, cached in the store; an
unreachable mirror is a warning; --no-kernel-check skips it).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from imagepipe import ui
from imagepipe.cli.common import examples
from imagepipe.cli.variables import collect, var_options
from imagepipe.errors import Problem, RecipeError


@click.command(epilog=examples("imagepipe validate recipes/*.yaml",
                              "imagepipe validate recipes/httpd.yaml --var date=20250101"))
@click.argument("recipes", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@var_options
@click.option("--json", "json_mode", is_flag=True, help="One JSON event per line on stdout.")
@click.option("--no-kernel-check", is_flag=True,
              help="Do not read the kernel's config from the mirror to check that it drives "
              "each output's virtual hardware (offline; default: check, warn if unreachable).")
def validate(recipes: tuple[Path, ...], variables: tuple[str, ...], var_files: tuple[Path, ...],
             json_mode: bool, no_kernel_check: bool) -> None:
    """Check recipes (and the cloud-config they reference) without building anything.

    Prints `OK RECIPE` for each good one; lists every problem of every recipe and exits 2
    otherwise.
    """
    from imagepipe.bases.kernelcheck import check_or_warn
    from imagepipe.recipe.load import load_recipe, recipe_digest

    if json_mode:
        ui.settings.json = True
    values = collect(variables, var_files)
    problems: list[Problem] = []
    for path in recipes:
        try:
            recipe = load_recipe(path, variables=values)
        except RecipeError as exc:
            problems += exc.problems
            for p in exc.problems:
                ui.emit("problem", recipe=str(path), file=p.file, line=p.line, col=p.col,
                        path=p.path, message=p.message, hint=p.hint)
            continue
        kernel_problems = [] if no_kernel_check else check_or_warn(recipe)
        if kernel_problems:
            problems += kernel_problems
            for p in kernel_problems:
                ui.emit("problem", recipe=str(path), file=p.file, line=p.line, col=p.col,
                        path=p.path, message=p.message, hint=p.hint)
            continue
        ui.result(f"OK {path} ({recipe.name} {recipe.image_version or '-'}, "
                  f"{recipe.source.kind}, {len(recipe.outputs)} output(s))",
                  recipe=str(path), ok=True, name=recipe.name,
                  image_version=recipe.image_version, source=recipe.source.kind,
                  outputs=[o.format for o in recipe.outputs], digest=recipe_digest(recipe))
    if problems:
        raise RecipeError(problems)


@click.command(epilog=examples("imagepipe schema > recipe.schema.json",
                              "imagepipe schema --markdown > recipes.md"))
@click.option("--markdown", is_flag=True, help="Print the recipe reference (docs/recipes.md).")
def schema(markdown: bool) -> None:
    """Print the recipe JSON Schema (for editors: yaml-language-server, VS Code, ...)."""
    if markdown:
        from imagepipe.recipe.reference import render_markdown

        click.echo(render_markdown(), nl=False)
        return
    from imagepipe.recipe.reference import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
