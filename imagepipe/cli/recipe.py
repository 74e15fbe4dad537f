"""`imagepipe validate RECIPE...` and `imagepipe schema`.

Why a separate validate command: CI (and an editor's save hook) can check every recipe in
well under a second, without a store, a download or an appliance, and see every problem of
every recipe at once (exit 2), each as FILE:LINE:COL: PATH: message (hint).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from imagepipe import ui
from imagepipe.cli.variables import collect, var_options
from imagepipe.errors import Problem, RecipeError


@click.command()
@click.argument("recipes", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@var_options
@click.option("--json", "json_mode", is_flag=True, help="One JSON event per line on stdout.")
def validate(recipes: tuple[Path, ...], variables: tuple[str, ...], var_files: tuple[Path, ...],
             json_mode: bool) -> None:
    """Check recipes (and the cloud-config they reference) without building anything.

    Prints `OK RECIPE` for each good one; lists every problem of every recipe and exits 2
    otherwise.
    """
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
        ui.result(f"OK {path} ({recipe.name} {recipe.image_version or '-'}, "
                  f"{recipe.source.kind}, {len(recipe.outputs)} output(s))",
                  recipe=str(path), ok=True, name=recipe.name,
                  image_version=recipe.image_version, source=recipe.source.kind,
                  outputs=[o.format for o in recipe.outputs], digest=recipe_digest(recipe))
    if problems:
        raise RecipeError(problems)


@click.command()
@click.option("--markdown", is_flag=True, help="Print the recipe reference (docs/recipes.md).")
def schema(markdown: bool) -> None:
    """Print the recipe JSON Schema (for editors: yaml-language-server, VS Code, ...)."""
    if markdown:
        from imagepipe.recipe.reference import render_markdown

        click.echo(render_markdown(), nl=False)
        return
    from imagepipe.recipe.reference import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
