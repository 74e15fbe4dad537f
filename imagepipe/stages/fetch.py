"""Stage `fetch`: the recipe's download (image or ISO) into the store, verified.

Why the key holds the *checksum* and not the URL: the store is content-addressed, so a moved
URL or a new mirror with the same checksum is the same stage (cached, no network). A
`checksum_url` or an unverified download cannot be known without asking the network, so those
fetches run every build; they still hit the object cache when the digest is unchanged, and the
downstream stages stay cached because their input digest is the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from imagepipe.artifact import Artifact
from imagepipe.recipe.model import Download, Recipe
from imagepipe.stages.base import Stage, StageContext, canonical_options


@dataclass(frozen=True)
class FetchOptions:
    url: str
    checksum: str | None = None
    checksum_url: str | None = None
    mirrors: tuple[str, ...] = ()
    insecure_no_checksum: bool = False
    kind: str = "image"  # image | iso
    format: str | None = None  # declared image format (None: detected later)
    decompress: bool = True
    max_size: int | None = None
    allow_private_file: bool = False

    def download(self) -> Download:
        return Download(url=self.url, checksum=self.checksum, checksum_url=self.checksum_url,
                        mirrors=self.mirrors, insecure_no_checksum=self.insecure_no_checksum,
                        max_size=self.max_size, allow_private_file=self.allow_private_file)


class FetchStage(Stage):
    name = "fetch"
    version = 1
    Options = FetchOptions
    inputs = ()

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> FetchOptions | None:
        src = recipe.source.image or recipe.source.iso
        if src is None:
            return None
        kind = "image" if recipe.source.image is not None else "iso"
        fmt = recipe.source.image.format if recipe.source.image is not None else None
        return FetchOptions(url=src.url, checksum=src.checksum, checksum_url=src.checksum_url,
                            mirrors=tuple(src.mirrors),
                            insecure_no_checksum=src.insecure_no_checksum, kind=kind,
                            format=fmt, decompress=kind == "image", max_size=src.max_size,
                            allow_private_file=src.allow_private_file)

    def cache_enabled(self) -> bool:
        return self.options.checksum is not None

    def key_material(self, inputs: Mapping[str, Artifact]) -> dict[str, Any]:
        material = super().key_material(inputs)
        o: FetchOptions = self.options
        material["options"] = canonical_options(
            {"checksum": o.checksum, "kind": o.kind, "format": o.format,
             "decompress": o.decompress} if o.checksum else o)
        return material

    def peek(self, store: Any) -> Artifact | None:
        """For --dry-run: the result this fetch would give if its file is already stored
        (reads the checksum file over the network if needed; writes nothing)."""
        from imagepipe.fetch import expected_digest
        from imagepipe.fetch.transfer import session
        from imagepipe.fetch.unpack import cached_unpack

        o: FetchOptions = self.options
        want, _ = expected_digest(o.download(), session())
        path = store.get_object(want) if want else None
        if path is None or want is None:
            return None
        if o.decompress:
            art = cached_unpack(store, path, want)
            if art is not False:
                return art if isinstance(art, Artifact) else None
        return Artifact(path=path, kind="image" if o.kind == "image" else "iso",
                        format=o.format, digest=want)

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        from imagepipe.fetch import fetch_result
        from imagepipe.fetch.checksums import file_name
        from imagepipe.fetch.unpack import unpack

        o: FetchOptions = self.options
        res = fetch_result(o.download(), ctx.store)
        ctx.log.info("fetched %s -> %s (%s)", o.url, res.path, res.digest)
        record: dict[str, Any] = {"url": o.url, "mirrors": list(o.mirrors), **res.record()}
        path, digest = res.path, res.digest
        if o.decompress:
            art = unpack(ctx.store, res.path, res.digest, file_name(o.url))
            if art is not None and art.path is not None and art.digest is not None:
                path, digest = art.path, art.digest
                record["decompressed"] = {"codec": art.metadata.get("decompressed"),
                                          "digest": digest, "store_path": str(path)}
        kind = "image" if o.kind == "image" else "iso"
        return Artifact(path=path, kind=kind, format=o.format, metadata=record, digest=digest)
