"""Stage `base.bootstrap`: a bootable disk from packages (see imagepipe.bootstrap for the why).

The rootfs tarball is cached in the store as its own entry, keyed by what it depends on (distro,
suite, mirror, package list, mmdebstrap version), so a recipe change that only touches the disk
(disk.size) rebuilds the disk from the cached tarball in ~1 minute instead of re-bootstrapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from imagepipe import bootstrap
from imagepipe.recipe.model import BootstrapSource, Recipe
from imagepipe.stages.base import Artifact, Stage, StageContext, hash_json, tool_version


@dataclass(frozen=True)
class BootstrapOptions:
    source: BootstrapSource
    mirror: str  # resolved at plan time: the host's mirror enters the stage id
    size: int | None = None


class BootstrapStage(Stage):
    name = "base.bootstrap"
    version = 2
    Options = BootstrapOptions
    inputs = ()
    tools = ("mmdebstrap",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> BootstrapOptions | None:
        src = recipe.source.bootstrap
        if src is None:
            return None
        return BootstrapOptions(source=src, mirror=bootstrap.resolve_mirror(src),
                                size=recipe.disk.size)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        opts: BootstrapOptions = self.options
        tar = rootfs_tarball(ctx, opts.source, opts.mirror)
        assert tar.path is not None
        out = ctx.workdir / "disk.raw"
        record = bootstrap.build_bootstrap_disk(tar.path, out, size=opts.size,
                                                distro=opts.source.distro)
        ctx.log.info("disk: %s", record)
        return Artifact(path=out, kind="image", format="raw",
                        metadata={**record, "mirror": opts.mirror, "suite": opts.source.suite,
                                  "distro": opts.source.distro,
                                  "packages": bootstrap.package_list(opts.source),
                                  "rootfs_tarball": str(tar.path),
                                  "rootfs_cached": tar.metadata.get("cached", False)})


def rootfs_tarball(ctx: StageContext, src: BootstrapSource, mirror: str) -> Artifact:
    """The mmdebstrap tarball from the store, or built and committed to it."""
    key = hash_json({"entry": "base.bootstrap.rootfs",
                     "tarball": bootstrap.tarball_key(src, mirror),
                     "mmdebstrap": tool_version("mmdebstrap")})
    cached = ctx.store.get_stage(key)
    if cached is not None:
        ctx.log.info("rootfs tarball cached: %s", cached.path)
        return Artifact(path=cached.path, kind=cached.kind, digest=cached.digest,
                        metadata={**cached.metadata, "cached": True})
    work = ctx.store.workdir("bootstrap-rootfs")
    ctx.exit_stack.callback(work.release)  # a no-op after the commit renamed it away
    tar = bootstrap.bootstrap_tarball(src, work.path / "rootfs.tar", mirror=mirror)
    return ctx.store.commit_stage(key, work, Artifact(
        path=tar, kind="file", metadata={"suite": src.suite, "mirror": mirror}),
        label=f"base.bootstrap rootfs {src.distro} {src.suite}")
