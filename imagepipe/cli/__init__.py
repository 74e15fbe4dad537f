"""The `imagepipe` command line.

This is the only place that maps errors to exit codes (0 ok, 1 failed, 2 bad input, 130
interrupted by SIGINT, 143 terminated by SIGTERM; see imagepipe.interrupts). Subcommands
live in their own modules and are imported lazily, only when invoked, so `imagepipe
--version` stays fast and a broken optional dependency (the oVirt SDK, guestfs) cannot break
unrelated commands.
"""

from __future__ import annotations

import importlib
import sys

import click

from imagepipe import __version__, ui
from imagepipe.cli.common import examples
from imagepipe.errors import EXIT_BAD_INPUT, EXIT_INTERRUPTED, ImagepipeError

# command name -> "module:attribute". One line per command; modules are imported on use.
COMMANDS: dict[str, str] = {
    "convert": "imagepipe.cli.convert:convert",
    "info": "imagepipe.cli.info:info",
    "validate": "imagepipe.cli.recipe:validate",
    "schema": "imagepipe.cli.recipe:schema",
    "build": "imagepipe.cli.build:build",
    "fetch": "imagepipe.cli.fetch:fetch",
    "cache": "imagepipe.cli.cache:cache",
    "templates": "imagepipe.cli.templates:templates",
    "seal": "imagepipe.cli.guest:seal",
    "inject": "imagepipe.cli.guest:inject",
    "customize": "imagepipe.cli.guest:customize",
    "seed-iso": "imagepipe.cli.guest:seed_iso",
    "boot-test": "imagepipe.cli.boottest:boot_test",
    "ovirt": "imagepipe.cli.ovirt:ovirt",
    "worker": "imagepipe.cli.farm:worker",
    "farm": "imagepipe.cli.farm:farm",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=examples("imagepipe build recipes/httpd.yaml",
                             "imagepipe build --all recipes/ --dry-run",
                             "imagepipe convert disk.raw -o disk.qcow2",
                             "imagepipe seal disk.qcow2 -o sealed.qcow2",
                             "imagepipe templates show httpd",
                             "imagepipe COMMAND --help   (every command has examples)")
             + "\n\n\b\nShell completion (add to ~/.bashrc; zsh_source / fish_source for "
             "zsh / fish):\n  eval \"$(_IMAGEPIPE_COMPLETE=bash_source imagepipe)\"\n\n"
             "The manual: man imagepipe (man ./imagepipe.1 in a checkout).")
@click.version_option(__version__, prog_name="imagepipe")
@click.option("-v", "--verbose", count=True, help="More detail (-vv logs every command run).")
@click.option("--debug", is_flag=True, help="Show Python tracebacks on errors.")
@click.option("--json", "json_mode", is_flag=True,
              help="Write one JSON event per line on stdout (stage/progress/result/error).")
def cli(verbose: int, debug: bool, json_mode: bool) -> None:
    """Build sealed, cloud-init-ready disk images from YAML recipes, convert between disk
    formats, and publish them as oVirt templates."""
    ui.configure(json_mode=json_mode, verbose=verbose, debug=debug)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and map the outcome to an exit code."""
    from imagepipe import interrupts

    interrupts.install()  # first SIGINT/SIGTERM unwinds; more are noted, never re-raised
    try:
        rc = cli.main(args=argv, prog_name="imagepipe", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        ui.emit("error", message=exc.format_message(), exit_code=EXIT_BAD_INPUT)
        sys.exit(EXIT_BAD_INPUT)
    except (click.exceptions.Abort, KeyboardInterrupt):
        code = interrupts.exit_code()  # 130 SIGINT, 143 SIGTERM
        print("interrupted; cleaned up", file=sys.stderr)
        ui.emit("error", message="interrupted", exit_code=code)
        interrupts.exiting()
        sys.exit(code)
    except ImagepipeError as exc:
        if ui.settings.debug:
            import traceback

            traceback.print_exc()
        from imagepipe import redact

        print(f"error: {redact.urls(str(exc))}", file=sys.stderr)
        # a tool killed by the signal fails with its own error: still an interrupt (130/143)
        interrupted = exc.exit_code == EXIT_INTERRUPTED or interrupts.received() is not None
        code = interrupts.exit_code() if interrupted else exc.exit_code
        ui.emit("error", message=str(exc), kind=type(exc).__name__, exit_code=code)
        interrupts.exiting()  # only acts once a signal was received
        sys.exit(code)
    sys.exit(rc if isinstance(rc, int) else 0)
