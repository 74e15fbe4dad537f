"""The recipe language: YAML with line marks -> validated, frozen `Recipe` objects.

`load_recipe(path)` is the one entry point; it raises `RecipeError` listing every problem at
once (FILE:LINE:COL: PATH: message (hint)) before anything runs.
"""
