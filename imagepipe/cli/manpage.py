"""`imagepipe.1`, the man page, generated from the click commands themselves.

Why generated: the page then cannot drift from `--help` (a test regenerates it and compares
with the committed file). Why our own ~150 lines rather than click-man: click-man writes one
page per subcommand, while users of qemu-img and the virt-* tools expect one page with a
section per command, and our lazily imported command tree needs walking through
`get_command` anyway.

    python -m imagepipe.cli.manpage > imagepipe.1     (make man)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import click

from imagepipe import __version__

SEE_ALSO = ("qemu-img(1)", "virt-sysprep(1)", "virt-customize(1)", "cloud-localds(1)",
            "mmdebstrap(1)")

ENVIRONMENT = (
    ("IMAGEPIPE_STORE", "The content-addressed store (default ~/.cache/imagepipe)."),
    ("IMAGEPIPE_ACCEL", "kvm, tcg or auto: how qemu and the libguestfs appliance run."),
    ("OVIRT_URL, OVIRT_USERNAME, OVIRT_PASSWORD_FILE, OVIRT_CA_FILE",
     "Engine connection for the ovirt commands (after the command-line options, before "
     "~/.config/imagepipe/ovirt.yaml)."),
    ("_IMAGEPIPE_COMPLETE", "Shell completion: eval \"$(_IMAGEPIPE_COMPLETE=bash_source "
     "imagepipe)\" in ~/.bashrc (zsh_source, fish_source for zsh and fish)."),
)

EXIT_STATUS = (("0", "success"), ("1", "the operation failed (a build, a check, a transfer)"),
               ("2", "bad input: usage, a recipe, an image, a cloud-config"),
               ("130", "interrupted (Ctrl-C or SIGTERM); everything was cleaned up"))


def esc(text: str) -> str:
    """Roff-escape text: backslashes, dashes of options, and lines starting with . or '."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line
                     for line in text.split("\n"))


def paragraphs(text: str) -> Iterator[str]:
    """A click help text as roff: paragraphs filled, `\\b` paragraphs kept verbatim."""
    for block in text.strip().split("\n\n"):
        if block.startswith("\b"):
            body = block[1:].strip("\n")
            yield ".PP\n.nf\n" + esc(body) + "\n.fi"
        else:
            yield ".PP\n" + esc(" ".join(line.strip() for line in block.splitlines()))


def walk(cmd: click.Command, ctx: click.Context) -> Iterator[tuple[click.Command,
                                                                  click.Context]]:
    """Every command under `cmd` (groups too), depth first, in listing order."""
    yield cmd, ctx
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from walk(sub, _context(sub, name, ctx))


def _context(cmd: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context click would make (context_settings applied), without parsing anything."""
    return cmd.make_context(name, [], parent=parent, resilient_parsing=True)


def options(cmd: click.Command, ctx: click.Context) -> Iterator[str]:
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
        if record is not None and "--help" not in record[0]:
            yield f".TP\n.B {esc(record[0])}\n{esc(record[1])}"


def section(cmd: click.Command, ctx: click.Context) -> list[str]:
    path = ctx.command_path
    out = [f'.SS "{esc(path)}"', f".B {esc(path)}",
           esc(" ".join(cmd.collect_usage_pieces(ctx)))]
    out += paragraphs(cmd.help or cmd.short_help or "")
    if isinstance(cmd, click.Group):
        out.append(".PP\nCommands: " + esc(", ".join(cmd.list_commands(ctx))) + ".")
    opts = list(options(cmd, ctx))
    if opts:
        out += [".PP\nOptions:", ".RS", *opts, ".RE"]
    if cmd.epilog:
        out += paragraphs(cmd.epilog)
    return out


def render() -> str:
    from imagepipe.cli import cli

    root = _context(cli, "imagepipe", None)
    out = [f'.TH IMAGEPIPE 1 "" "imagepipe {esc(__version__)}" "User Commands"',
           ".SH NAME", "imagepipe \\- build, convert, seal and publish VM disk images",
           ".SH SYNOPSIS", ".B imagepipe", "[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR "
           "[\\fIARGS\\fR]...", ".SH DESCRIPTION", *paragraphs(cli.help or ""),
           ".SH GLOBAL OPTIONS", *[o for o in options(cli, root)], ".SH COMMANDS"]
    for cmd, ctx in walk(cli, root):
        if cmd is not cli:
            out += section(cmd, ctx)
    out += [".SH EXAMPLES", *paragraphs(cli.epilog or "")]
    out += [".SH EXIT STATUS"] + [f".TP\n.B {c}\n{esc(m)}" for c, m in EXIT_STATUS]
    out += [".SH ENVIRONMENT"] + [f".TP\n.B {esc(k)}\n{esc(v)}" for k, v in ENVIRONMENT]
    out += [".SH SEE ALSO", ", ".join(f"\\fB{esc(s.split('(')[0])}\\fR({s.split('(')[1]}"
                                       for s in SEE_ALSO)]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
