"""The stage contract: what every pipeline stage is, how its id is computed, what it returns.

Why this shape (osbuild + packer multistep):
- A stage is a small class with a `name`, a `version`, an options dataclass and named inputs.
  Its id (`key()`) is the sha256 of the canonical JSON of everything that can change its output:
  name, version, options (file paths replaced by the sha256 of their content), the digests of
  its input artifacts, and the versions of the tools it runs. A stage whose id is already in
  the store is not rerun. Never change what a stage version produces: bump `version`.
- A stage writes only into `ctx.workdir` (same filesystem as the store) and returns an
  `Artifact` naming the files it made. The *engine* hashes them, fsyncs them and renames them
  into the store atomically, so a stage can never publish a half-written result.
- Every resource a stage acquires registers its clean-up on `ctx.exit_stack` at once; the
  engine closes that stack after the stage, on success, failure and Ctrl-C alike.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from imagepipe.artifact import Artifact, hash_json
from imagepipe.hashing import file_digest

if TYPE_CHECKING:
    from imagepipe.recipe.model import Recipe
    from imagepipe.store import Store
    from imagepipe.tools.run import Result
    from imagepipe.ui import Progress

@dataclass(frozen=True)
class NoOptions:
    """Options of a stage that has none."""


class StageContext:
    """Everything a running stage may use. Created by the engine, one per stage run.

    Attributes:
      recipe        the validated recipe (imagepipe.recipe.model.Recipe)
      store         the content-addressed store (imagepipe.store.Store)
      workdir       an empty directory on the store's filesystem: write every output here
      build_dir     this build's directory (per-stage logs live in build_dir/logs/)
      stage_id      the plan node id ("guest", "convert.vmdk", ...)
      key           this stage's id (sha256 hex)
      log           a logger writing to this stage's log file (log_path)
      exit_stack    register every clean-up here, right after acquiring the resource
      keep_on_failure  the user asked to keep the work dir of a failed stage
      jobs          how many threads/processes this stage may use
      manifest      the build manifest so far (JSON-able, read-only; for publish stages)
    """

    def __init__(
        self,
        *,
        recipe: Recipe,
        store: Store,
        workdir: Path,
        build_dir: Path,
        stage_id: str,
        key: str,
        log_path: Path,
        exit_stack: ExitStack,
        keep_on_failure: bool = False,
        jobs: int = 1,
        manifest: Mapping[str, Any] | None = None,
    ) -> None:
        self.recipe = recipe
        self.store = store
        self.workdir = workdir
        self.build_dir = build_dir
        self.stage_id = stage_id
        self.key = key
        self.log_path = log_path
        self.exit_stack = exit_stack
        self.keep_on_failure = keep_on_failure
        self.jobs = jobs
        self.manifest: Mapping[str, Any] = manifest or {}
        self.log = _file_logger(f"imagepipe.stage.{stage_id}.{key[:8]}", log_path, exit_stack)
        self._accel: str | None = None

    @property
    def accel(self) -> str:
        """"kvm" or "tcg", decided once per host boot by imagepipe.tools.accel (lazy)."""
        if self._accel is None:
            from imagepipe.tools.accel import decide_accel

            self._accel = decide_accel()
        return self._accel

    def run(self, argv: Sequence[str | os.PathLike[str]], **kwargs: Any) -> Result:
        """tools.run.run(), with the command and its output written to this stage's log."""
        import shlex

        from imagepipe.tools.run import run

        args = [str(a) for a in argv]
        self.log.info("$ %s", shlex.join(args))
        try:
            result = run(args, **kwargs)
        except Exception as exc:
            self.log.error("%s", exc)
            raise
        for text in (result.stdout, result.stderr):
            if text.strip():
                self.log.info("%s", text.rstrip())
        return result

    def progress(self, label: str, size: int | None = None) -> Progress:
        """A ui.Progress bar (use as a context manager)."""
        from imagepipe.ui import Progress

        return Progress(f"{self.stage_id}: {label}", size)


class Stage:
    """Base class of every pipeline stage. Subclasses set the class attributes and `run()`.

    name       registry name ("convert", "guest", ...), see imagepipe.stages.STAGES
    version    bump whenever the same inputs would produce different output
    Options    a frozen dataclass; the instance's `options` is one of these
    inputs     the names of the input slots this stage expects (e.g. ("image",))
    cacheable  False for stages with outside effects that must happen every build (publish)
    tools      programs whose version changes the output; their versions enter the key
    """

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    Options: ClassVar[type] = NoOptions
    inputs: ClassVar[tuple[str, ...]] = ()
    cacheable: ClassVar[bool] = True
    tools: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: Any = None, *, stage_id: str | None = None) -> None:
        self.options = options if options is not None else self.Options()
        if not isinstance(self.options, self.Options):
            raise TypeError(f"{type(self).__name__} needs {self.Options.__name__} options")
        self.stage_id = stage_id or self.name

    @classmethod
    def options_from_recipe(cls, recipe: Recipe) -> Any:
        """The stage's options for this recipe, or None if the recipe does not need it."""
        return cls.Options()

    def run(self, ctx: StageContext, inputs: Mapping[str, Artifact]) -> Artifact:
        raise NotImplementedError

    def cache_enabled(self) -> bool:
        """Whether a stored result may be reused (default: the class's `cacheable`)."""
        return self.cacheable

    def cost_hint(self) -> float:
        """Relative expected run time; parallel stages start the most expensive first, so the
        longest one is not queued behind short ones (the critical path starts at once)."""
        return 1.0

    # -- identity ---------------------------------------------------------------------------
    def tool_versions(self) -> dict[str, str]:
        """Versions of `tools` (first line of `PROG --version`), cached per process."""
        return {t: tool_version(t) for t in self.tools}

    def key_material(self, inputs: Mapping[str, Artifact]) -> dict[str, Any]:
        """Everything that determines the output; `--explain` diffs this between builds."""
        missing = [slot for slot in inputs if inputs[slot].digest is None]
        if missing:
            raise ValueError(f"{self.stage_id}: input(s) without digest: {missing}")
        return {
            "stage": self.name,
            "version": self.version,
            "options": canonical_options(self.options),
            "inputs": {slot: inputs[slot].digest for slot in sorted(inputs)},
            "tools": self.tool_versions(),
        }

    def key(self, inputs: Mapping[str, Artifact]) -> str:
        return hash_json(self.key_material(inputs))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.stage_id}>"


# -- helpers ----------------------------------------------------------------------------------
def canonical_options(value: Any) -> Any:
    """Options as plain JSON. A Path becomes the sha256 of the file's content (a moved recipe
    directory does not invalidate the cache; an edited referenced file does)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: canonical_options(getattr(value, f.name))
                for f in dataclasses.fields(value) if f.compare}
    if isinstance(value, Path):
        return {"file_sha256": file_digest_or_none(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): canonical_options(v) for k, v in sorted(value.items(), key=str)}
    if isinstance(value, (list, tuple)):
        return [canonical_options(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    raise TypeError(f"stage option of type {type(value).__name__} cannot be hashed: {value!r}")


def file_digest_or_none(path: Path) -> str | None:
    """sha256 of a file, of a directory tree (names + contents), or None if missing."""
    if path.is_file():
        return file_digest(path)
    if path.is_dir():
        tree = {str(p.relative_to(path)): file_digest_or_none(p)
                for p in sorted(path.rglob("*")) if p.is_file()}
        return hash_json(tree)
    return None


_TOOL_VERSIONS: dict[str, str] = {}


def tool_version(program: str) -> str:
    """First line of `program --version`, or "missing"; cached per process."""
    if program not in _TOOL_VERSIONS:
        from imagepipe.errors import ImagepipeError
        from imagepipe.tools.run import run

        try:
            res = run([program, "--version"], check=False, timeout=30)
            text = (res.stdout or res.stderr).strip().splitlines()
            _TOOL_VERSIONS[program] = text[0] if text else "unknown"
        except ImagepipeError:
            _TOOL_VERSIONS[program] = "missing"
    return _TOOL_VERSIONS[program]


def _file_logger(name: str, path: Path, stack: ExitStack) -> logging.Logger:
    """A logger that writes only to `path`; its handler is closed with the stage's stack."""
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger(name)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    from imagepipe.redact import LogFilter

    handler.addFilter(LogFilter())  # URL credentials masked in every stage log
    logger.addHandler(handler)

    def close() -> None:
        logger.removeHandler(handler)
        handler.close()

    stack.callback(close)
    return logger
