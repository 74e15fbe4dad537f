"""`imagepipe convert SRC DST`: convert a disk image safely, verified, atomically."""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from imagepipe import formats, ui
from imagepipe.cli.common import examples, force_option


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VAL` items, each possibly a comma list as qemu-img writes them."""
    out: dict[str, str] = {}
    for item in (part for value in values for part in value.split(",")):
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VAL", param_hint="--options")
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


_FORMATS = click.Choice(formats.names() + ["vpc"], case_sensitive=False)
_KEY_VAL = re.compile(r"^[a-z][a-z0-9_]*=[^/]*$")


def _split_o(src: Path | None, dst: Path | None, outs: tuple[str, ...],
             options: tuple[str, ...]) -> tuple[Path | None, tuple[str, ...]]:
    """`-o` is the output file, as in the virt-* tools. For old scripts, `-o KEY=VAL` (a
    qemu-img option, the former meaning) still works when DST is given positionally; it is
    reported as deprecated. Returns (DST, qemu-img options)."""
    files = []
    for value in outs:
        if dst is not None and _KEY_VAL.match(value) and not formats.output_by_extension(
                Path(value)):
            ui.warn(f"-o {value}: -o now names the output file; write --options {value}")
            options += (value,)
        else:
            files.append(Path(value))
    if len(files) > 1 or (files and dst is not None):
        raise click.UsageError("give the output once: DST or -o FILE")
    return (files[0] if files else dst), options


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples(
                   "imagepipe convert disk.raw disk.qcow2",
                   "imagepipe convert -f raw -O qcow2 disk.img -o disk.qcow2 -c",
                   "imagepipe convert disk.qcow2 disk.vmdk --preset vsphere",
                   "imagepipe convert disk.qcow2 disk.vhd --preset azure --resize",
                   "imagepipe convert disk.raw disk.qcow2 --options cluster_size=2M",
                   "imagepipe convert --list-presets"))
@click.argument("src", required=False, type=click.Path(path_type=Path))
@click.argument("dst", required=False, type=click.Path(path_type=Path))
@click.option("-o", "--output", "outs", multiple=True, metavar="FILE",
              help="The output file (same as DST), as in the virt-* tools.")
@click.option("-O", "--dst-format", "--to", "fmt", metavar="FMT", type=_FORMATS,
              help="Output format: " + ", ".join(formats.names())
              + " (default: from --preset or DST's extension). qemu-img's -O.")
@click.option("-f", "--src-format", "--format", "src_fmt", metavar="FMT", type=_FORMATS,
              help="SRC's format, checked against its content (needed only for a raw image "
              "whose name and bytes do not say so). qemu-img's -f.")
@click.option("--preset", metavar="NAME", help="Named output recipe (see --list-presets).")
@click.option("--options", "options", multiple=True, metavar="KEY=VAL[,KEY=VAL]",
              help="qemu-img create options for the output, e.g. --options cluster_size=2M "
              "(repeatable; qemu-img's -o).")
@click.option("-c", "--compress", is_flag=True,
              help="Compress: qcow2 with zstd, vmdk streamOptimized. qemu-img's -c.")
@click.option("--no-verify", is_flag=True,
              help="Skip qemu-img check/compare, the preset's rules and (unless --checksum) "
              "the sha256.")
@click.option("--checksum/--no-checksum", default=None,
              help="Compute DST's sha256 (default: on when verifying).")
@force_option
@click.option("--allow-backing", is_flag=True,
              help="Accept a SRC with a backing file or other external files (trusted images "
              "only).")
@click.option("--resize", is_flag=True,
              help="Allow growing the virtual size where a preset needs it (azure: whole MiB).")
@click.option("--list-presets", is_flag=True, help="Print the presets and exit.")
@click.option("--json", "json_mode", is_flag=True, help="Same as the global --json.")
def convert(src: Path | None, dst: Path | None, outs: tuple[str, ...], fmt: str | None,
            src_fmt: str | None, preset: str | None, options: tuple[str, ...], compress: bool,
            no_verify: bool, checksum: bool | None, force: bool, allow_backing: bool,
            resize: bool, list_presets: bool, json_mode: bool) -> None:
    """Convert disk image SRC to DST (raw, qcow2, vmdk, vhd, vhdx, vdi, ova).

    SRC's format is read from its content (never guessed from its name); a file that is no
    known format and not named like an image is refused unless `-f raw` says it is a raw
    disk. DST is written to a hidden temporary file next to it, verified, and renamed into
    place only when everything passed; an existing DST is replaced only with --force.
    """
    if json_mode:
        ui.settings.json = True
    if list_presets:
        _list_presets()
        return
    dst, options = _split_o(src, dst, outs, options)
    if src is None or dst is None:
        raise click.UsageError("SRC and DST (or -o FILE) are required (or use --list-presets)")
    from imagepipe.convert import convert_image
    from imagepipe.tools.probe import inspect_image, refuse_unrecognised

    if src.exists():  # a missing SRC gets convert_image's own message
        refuse_unrecognised(src, inspect_image(src)[0], declared=src_fmt)
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
