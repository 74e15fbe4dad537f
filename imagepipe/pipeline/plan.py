"""From a recipe to the stage graph: which stages, with which options, fed by which stage.

The graph is fixed by the recipe's shape (osbuild's lesson: a pipeline is data, not code paths):

    fetch -> base.(image|iso|bootstrap) -> guest -> convert.<fmt> ... + test.boot
          -> publish.ovirt -> publish.local

Stages are grouped in levels; the stages of one level are independent (the converts and the
boot test, which all read the sealed image) and run in parallel. A stage the recipe needs but
whose module is missing fails the plan, naming it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from imagepipe.errors import InputError
from imagepipe.recipe.model import Recipe
from imagepipe.stages import get_stage
from imagepipe.stages.base import Stage


@dataclass
class Node:
    id: str  # unique in the plan: "fetch", "guest", "convert.vmdk", ...
    stage: Stage
    inputs: dict[str, str] = field(default_factory=dict)  # slot -> node id


def guest_needed(recipe: Recipe) -> bool:
    """The guest stage runs unless the recipe turns all guest work off: no customize:, no
    cloud_init:, and `seal: {operations: none}`."""
    ops = recipe.seal.operations.strip().lower()
    return not recipe.customize.empty or recipe.cloud_init is not None or ops not in ("none", "")


def _node(name: str, recipe: Recipe, node_id: str | None = None,
          inputs: dict[str, str] | None = None, options: Any = None) -> Node | None:
    cls = get_stage(name)
    opts = options if options is not None else cls.options_from_recipe(recipe)
    if opts is None:
        return None
    nid = node_id or name
    return Node(nid, cls(opts, stage_id=nid), dict(inputs or {}))


def make_plan(recipe: Recipe) -> list[list[Node]]:
    """The build's stages in levels (each level depends only on earlier ones)."""
    levels: list[list[Node]] = []
    kind = recipe.source.kind
    if kind in ("image", "iso"):
        fetch = _node("fetch", recipe)
        assert fetch is not None
        levels.append([fetch])
        base = _node(f"base.{kind}", recipe, inputs={"source" if kind == "image" else "iso":
                                                     "fetch"})
    else:
        base = _node("base.bootstrap", recipe)
    if base is None:
        raise InputError(f"{recipe.path}: source.{kind} gives no base image")
    levels.append([base])
    image = base.id
    if guest_needed(recipe):
        guest = _node("guest", recipe, inputs={"image": image})
        if guest is not None:
            levels.append([guest])
            image = guest.id
    converts = _converts(recipe, image)
    # The boot test needs only the sealed image, not the converted outputs, so it runs beside
    # the converts (the critical path of a build); publish still waits for both.
    level = list(converts)
    if recipe.test.boot is not None:
        level += _boot_tests(recipe, image)
    levels.append(level)
    per_output = _per_output_boots(recipe, converts)
    if per_output:
        levels.append(per_output)  # before publish: a failed one stops the build
    outputs = {f"output.{i}": n.id for i, n in enumerate(converts)}
    for target in ("ovirt", "local"):
        if getattr(recipe.publish, target) is not None:
            pub = _node(f"publish.{target}", recipe, inputs={"image": image, **outputs})
            if pub is not None:
                levels.append([pub])
    return levels


def _boot_tests(recipe: Recipe, image: str) -> list[Node]:
    """One boot test per (datasource, firmware) of `boot_plan`: `test.boot` when there is one,
    else `test.boot.<what varies>` (e.g. test.boot.configdrive, test.boot.uefi,
    test.boot.none-secureboot)."""
    from imagepipe.stages.boottest import BootTestStage, datasources, firmwares

    get_stage("test.boot")
    boots = BootTestStage.options_per_boot(recipe)
    many_ds, many_fw = len(datasources(recipe)) > 1, len(firmwares(recipe)) > 1
    nodes = []
    for opts in boots:
        parts = [p for p, many in ((opts.datasource, many_ds), (opts.firmware, many_fw)) if many]
        nid = "test.boot" if len(boots) == 1 else "test.boot." + "-".join(parts)
        node = _node("test.boot", recipe, nid, {"image": image}, opts)
        assert node is not None
        nodes.append(node)
    return nodes


def _converts(recipe: Recipe, image: str) -> list[Node]:
    from imagepipe.stages.convert import ConvertStage

    get_stage("convert")
    counts = Counter(o.format for o in recipe.outputs)
    seen: Counter[str] = Counter()
    nodes = []
    for out in recipe.outputs:
        seen[out.format] += 1
        nid = f"convert.{out.format}"
        if counts[out.format] > 1:
            nid += f".{seen[out.format]}"
        opts = ConvertStage.options_for_output(recipe, out)
        if counts[out.format] > 1 and not out.name:
            opts = type(opts)(**{**opts.__dict__, "file_name": f"{opts.file_name}-"
                                 f"{seen[out.format]}"})
        node = _node("convert", recipe, nid, {"image": image}, opts)
        assert node is not None
        nodes.append(node)
    if not nodes:
        raise InputError(f"{recipe.path}: outputs: is empty", "list at least one output format")
    return nodes


def _per_output_boots(recipe: Recipe, converts: list[Node]) -> list[Node]:
    """`test.boot.per_output`: one boot test per disk output, on its platform's hardware."""
    import dataclasses

    from imagepipe import formats
    from imagepipe.convert.hardware import boot_profile
    from imagepipe.stages.boottest import BootTestStage

    if recipe.test.boot is None or not recipe.test.boot.per_output:
        return []
    base = BootTestStage.options_from_recipe(recipe)
    nodes = []
    for out, conv in zip(recipe.outputs, converts, strict=True):
        if base is None or formats.is_container(out.format):
            continue
        opts = dataclasses.replace(base, hardware=boot_profile(out.preset, out.hardware))
        node = _node("test.boot", recipe, f"test.boot.{conv.id.removeprefix('convert.')}",
                     {"image": conv.id}, opts)
        if node is not None:
            nodes.append(node)
    return nodes


def flat(levels: list[list[Node]]) -> list[Node]:
    return [n for level in levels for n in level]


def select(levels: list[list[Node]], name: str) -> list[str]:
    """Node ids matching a --from/--force argument: an id, a stage name, or a prefix."""
    ids = [n.id for n in flat(levels)]
    hits = [i for i in ids if i == name or i.startswith(name + ".")]
    hits += [n.id for n in flat(levels) if n.stage.name == name and n.id not in hits]
    if not hits:
        raise InputError(f"no stage {name!r} in this build", f"stages: {', '.join(ids)}")
    return hits
