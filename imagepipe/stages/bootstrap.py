"""Stage `base.bootstrap`: a bootable disk from packages (the why: imagepipe.bases.bootstrap).

The rootfs tarball is cached in the store as its own entry, keyed by what it depends on (distro,
suite, variant, the resolved package set with exact versions, the image's apt sources, the
mmdebstrap version), so a recipe change that only touches the disk
(disk.size) rebuilds the disk from the cached tarball in ~1 minute instead of re-bootstrapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from imagepipe import ui
from imagepipe.artifact import Artifact, hash_json
from imagepipe.bases import bootstrap
from imagepipe.recipe.model import BootstrapSource, Recipe
from imagepipe.stages.base import Stage, StageContext, tool_version


@dataclass(frozen=True)
class BootstrapOptions:
    source: BootstrapSource
    mirror: str  # resolved at plan time: the host's mirror enters the stage id
    size: int | None = None
    firmware: str = "hybrid"  # disk.firmware
    # The resolved package set (name -> "version arch", imagepipe.bases.freshness): it keys the
    # stage, so a changed version anywhere reruns it and --explain names the package.
    resolved: Mapping[str, str] = field(default_factory=dict, hash=False)
    sources: str = ""  # the image's apt sources (deb822)
    warnings: tuple[str, ...] = field(default=(), compare=False)


class BootstrapStage(Stage):
    name = "base.bootstrap"
    version = 4  # 2: GPT + GRUB (disk.firmware); 3: the resolved package set keys it;
    # 4: net.ifnames=0 (the NIC is eth0, as oVirt's per-VM network configuration expects)
    Options = BootstrapOptions
    inputs = ()
    tools = ("mmdebstrap",)

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> BootstrapOptions | None:
        src = recipe.source.bootstrap
        if src is None:
            return None
        from imagepipe.apt import sources as apt_sources
        from imagepipe.bases import freshness

        mirror = bootstrap.resolve_mirror(src)
        resolved = freshness.resolve_bootstrap(src, recipe.disk.firmware)
        repos = apt_sources.all_repos(src, mirror)
        sources = "".join(f"# {dest}\n{text}" for dest, text in
                          sorted(apt_sources.image_files(src, mirror).items())
                          if isinstance(text, str))
        warnings = tuple(apt_sources.trust_warnings(repos))
        for w in warnings:
            ui.warn(w)
        return BootstrapOptions(source=src, mirror=mirror, size=recipe.disk.size,
                                firmware=recipe.disk.firmware,
                                resolved=resolved.as_map(), sources=sources, warnings=warnings)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        opts: BootstrapOptions = self.options
        tar = rootfs_tarball(ctx, opts.source, opts.mirror, opts.resolved, opts.sources,
                             opts.firmware)
        assert tar.path is not None
        out = ctx.workdir / "disk.raw"
        ui.phase("making the bootable disk")
        record = bootstrap.build_bootstrap_disk(tar.path, out, size=opts.size,
                                                distro=opts.source.distro,
                                                firmware=opts.firmware)
        ctx.log.info("disk: %s", record)
        return Artifact(path=out, kind="image", format="raw",
                        metadata={**record, "mirror": opts.mirror, "suite": opts.source.suite,
                                  "distro": opts.source.distro,
                                  "packages": bootstrap.package_list(opts.source,
                                                                     opts.firmware),
                                  "kernel": bootstrap.kernel_package(opts.source),
                                  "resolved_packages": len(opts.resolved),
                                  "repositories": _repositories(opts),
                                  "warnings": list(opts.warnings),
                                  "rootfs_tarball": str(tar.path),
                                  "rootfs_cached": tar.metadata.get("cached", False)})


def _repositories(opts: BootstrapOptions) -> list[str]:
    from imagepipe.apt import sources as apt_sources

    return [r.id for r in apt_sources.all_repos(opts.source, opts.mirror)]


def rootfs_tarball(ctx: StageContext, src: BootstrapSource, mirror: str,
                   resolved: Mapping[str, str] | None = None, sources: str = "",
                   firmware: str = "hybrid") -> Artifact:
    """The mmdebstrap tarball from the store, or built and committed to it."""
    key = hash_json({"entry": "base.bootstrap.rootfs",
                     "tarball": bootstrap.tarball_key(src, mirror, resolved or None, sources,
                                                      firmware),
                     "mmdebstrap": tool_version("mmdebstrap")})
    cached = ctx.store.get_stage(key)
    if cached is not None:
        ctx.log.info("rootfs tarball cached: %s", cached.path)
        return Artifact(path=cached.path, kind=cached.kind, digest=cached.digest,
                        metadata={**cached.metadata, "cached": True})
    work = ctx.store.workdir("bootstrap-rootfs")
    ctx.exit_stack.callback(work.release)  # a no-op after the commit renamed it away
    tar = bootstrap.bootstrap_tarball(src, work.path / "rootfs.tar", mirror=mirror,
                                      pinned=resolved or None, firmware=firmware)
    return ctx.store.commit_stage(key, work, Artifact(
        path=tar, kind="file", metadata={"suite": src.suite, "mirror": mirror}),
        label=f"base.bootstrap rootfs {src.distro} {src.suite}")
