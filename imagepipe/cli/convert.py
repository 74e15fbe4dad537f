"""`imagepipe convert SRC DST`: convert a disk image safely, verified, atomically."""

from __future__ import annotations

import time
from pathlib import Path

import click

from imagepipe import formats, ui


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VAL", param_hint="-o")
        out[key.strip()] = val
    return out


def _list_presets() -> None:
    from imagepipe.convert.presets import describe_presets

    rows = describe_presets()
    lines = []
    for r in rows:
        opts = ",".join(f"{k}={v}" for k, v in dict(r["options"]).items())  # type: ignore[call-overload]
        flag = " -c" if r["compress"] else ""
        lines.append(f"{r['name']:<12} {r['format']:<6} {opts}{flag}\n"
                     f"{'':<12} {r['summary']}; checks: {', '.join(r['checks'])}")  # type: ignore[arg-type]
        hw = list(r.get("hardware") or ())  # type: ignore[call-overload]
        if hw:
            lines.append(f"{'':<12} hardware: {hw[0]} (default)"
                         + (f"; also {', '.join(hw[1:])}" if hw[1:] else ""))
    ui.result("\n".join(lines), presets=rows)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.argument("dst", required=False, type=click.Path(path_type=Path))
@click.option("--to", "fmt", metavar="FMT", type=click.Choice(formats.names() + ["vpc"],
              case_sensitive=False), help="Output format: " + ", ".join(formats.names())
              + " (default: from --preset or DST's extension).")
@click.option("--preset", metavar="NAME", help="Named output recipe (see --list-presets).")
@click.option("-o", "options", multiple=True, metavar="KEY=VAL",
              help="qemu-img create option for the output, e.g. -o cluster_size=2M (repeatable).")
@click.option("--compress", is_flag=True, help="Compress: qcow2 with zstd, vmdk streamOptimized.")
@click.option("--no-verify", is_flag=True,
              help="Skip qemu-img check/compare, the preset's rules and (unless --checksum) "
              "the sha256.")
@click.option("--checksum/--no-checksum", default=None,
              help="Compute DST's sha256 (default: on when verifying).")
@click.option("--force", is_flag=True, help="Replace DST if it exists.")
@click.option("--allow-backing", is_flag=True,
              help="Accept a SRC with a backing file or other external files (trusted images "
              "only).")
@click.option("--resize", is_flag=True,
              help="Allow growing the virtual size where a preset needs it (azure: whole MiB).")
@click.option("--list-presets", is_flag=True, help="Print the presets and exit.")
@click.option("--json", "json_mode", is_flag=True, help="Same as the global --json.")
def convert(src: Path | None, dst: Path | None, fmt: str | None, preset: str | None,
            options: tuple[str, ...], compress: bool, no_verify: bool, checksum: bool | None,
            force: bool, allow_backing: bool, resize: bool, list_presets: bool,
            json_mode: bool) -> None:
    """Convert disk image SRC to DST (raw, qcow2, vmdk, vhd, vhdx, vdi, ova).

    SRC's format is read from its content (never guessed from its name); DST is written to a
    hidden temporary file next to it, verified, and renamed into place only when everything
    passed. Examples:

    \b
      imagepipe convert disk.raw disk.qcow2
      imagepipe convert disk.qcow2 disk.vmdk --preset vsphere
      imagepipe convert disk.qcow2 disk.vhd --preset azure --resize
    """
    if json_mode:
        ui.settings.json = True
    if list_presets:
        _list_presets()
        return
    if src is None or dst is None:
        raise click.UsageError("SRC and DST are required (or use --list-presets)")
    from imagepipe.convert import convert_image
    from imagepipe.convert.report import format_report

    start = time.monotonic()
    report = convert_image(src, dst, fmt=fmt, preset=preset, options=_parse_options(options),
                           compress=compress, verify=not no_verify, force=force,
                           allow_backing=allow_backing, resize=resize, checksum=checksum)
    seconds = round(time.monotonic() - start, 3)
    text = format_report(report, "wrote")
    if report.sha256 is None:
        text += "\n  sha256:          not computed (add --checksum, or drop --no-verify)"
    text += f"\n  verified:        {'yes' if report.verified else 'no (--no-verify)'}"
    ui.result(text, **report.to_dict(), seconds=seconds, preset=preset)
