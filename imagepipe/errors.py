"""The error tree. The CLI is the only place that turns these into exit codes.

Why a tree: callers catch the narrowest class they can act on (a publisher retries a
`TransferError`, the pipeline keeps evidence on any `ImagepipeError`), and the CLI maps the two
roots to the documented exit codes: `InputError` -> 2 (the user must change something),
everything else -> 1 (the operation failed). Messages say what is wrong *and* what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


class ImagepipeError(Exception):
    """An operation failed (exit 1). `hint` tells the user what to try next."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class InputError(ImagepipeError):
    """Bad input from the user: usage, a recipe, an image, a cloud-config (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class ImageError(InputError):
    """An input image is not what it claims to be, or is unsafe to open."""


class ToolError(ImagepipeError):
    """An external command failed. Carries the argv (ready to paste) and the tail of stderr."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int,
        stderr: str = "",
        message: str | None = None,
    ) -> None:
        import shlex

        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        text = message or f"command failed with exit code {returncode}: {shlex.join(self.argv)}"
        if tail:
            text += "\n" + "\n".join("  " + line for line in tail.splitlines())
        super().__init__(text)


class ToolMissingError(ImagepipeError):
    """A required external program is not installed."""

    def __init__(self, program: str, package: str | None = None) -> None:
        hint = f"install it: apt-get install {package}" if package else "run: make setup"
        super().__init__(f"required program not found: {program}", hint)


class TimeoutExpired(ImagepipeError):
    """A bounded wait ran out (a boot, an install, a transfer)."""


@dataclass(frozen=True)
class Problem:
    """One located problem in a file: `FILE:LINE:COL: PATH: message (hint)`."""

    file: str
    line: int | None
    col: int | None
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


@dataclass
class RecipeError(InputError):
    """All problems found in a recipe (or a file it references), reported at once."""

    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found"
        InputError.__init__(self, head + ":\n" + "\n".join(str(p) for p in self.problems))

    def __str__(self) -> str:
        return self.message

    def __hash__(self) -> int:
        return id(self)


class CloudConfigError(RecipeError):
    """A cloud-config (user-data) file is broken; same located format as recipe errors."""


class LintError(ImagepipeError):
    """A sealed template breaks a template rule (static IP, usable password). Exit 1."""

    def __init__(self, problems: Sequence[Problem], hint: str | None = None) -> None:
        self.problems = list(problems)
        text = "template lint failed:\n" + "\n".join(str(p) for p in self.problems)
        super().__init__(text, hint)


class TransferError(ImagepipeError):
    """A disk upload to oVirt failed; the half-made disk has already been removed."""


class Interrupted(ImagepipeError):
    """The user pressed Ctrl-C or the process got SIGTERM; clean-up has already run."""

    exit_code = EXIT_INTERRUPTED
