"""What a written (or inspected) image is: the record every output path returns.

Why one record: `imagepipe convert`, `imagepipe info`, the OVA writer and the pipeline's
publish stage all hand users the same facts (format, sizes, sha256), and CI reads them from the
same `--json` keys.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from imagepipe.convert import rules


@dataclass(frozen=True)
class ImageReport:
    """Facts about one image file. `sha256` is of the file's bytes (None when not computed);
    `allocated_size` is what the file really occupies on disk (sparse files use less)."""

    path: Path
    format: str
    subformat: str | None
    virtual_size: int
    file_size: int
    allocated_size: int
    sha256: str | None = None
    verified: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["path"] = str(self.path)
        return d


def describe(path: Path, fmt: str, *, virtual_size: int, sha256: str | None = None,
             verified: bool = False, report_path: Path | None = None) -> ImageReport:
    """Build the report from the file itself (stat + headers); `fmt` is our format name."""
    st = os.stat(path)
    return ImageReport(
        path=report_path or path,
        format=fmt,
        subformat=rules.subformat(path, fmt),
        virtual_size=virtual_size,
        file_size=st.st_size,
        allocated_size=st.st_blocks * 512,
        sha256=sha256,
        verified=verified,
    )


def format_size(n: int) -> str:
    """`1073741824` -> `1 GiB (1073741824 bytes)`: exact bytes plus a human figure."""
    value = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            human = f"{int(value)} bytes" if unit == "bytes" else f"{value:.4g} {unit}"
            return human if unit == "bytes" else f"{human} ({n} bytes)"
        value /= 1024
    return str(n)


def format_report(r: ImageReport, title: str) -> str:
    """Human lines for stdout."""
    kind = r.format + (f" ({r.subformat})" if r.subformat else "")
    lines = [f"{title} {r.path}", f"  format:          {kind}",
             f"  virtual size:    {format_size(r.virtual_size)}",
             f"  file size:       {format_size(r.file_size)}",
             f"  allocated size:  {format_size(r.allocated_size)}"]
    if r.sha256:
        lines.append(f"  sha256:          {r.sha256}")
    return "\n".join(lines)
