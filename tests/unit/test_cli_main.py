"""The CLI contract every command shares: version, help, exit codes, lazy imports."""

from __future__ import annotations

import subprocess
import sys
import time

from imagepipe.cli import COMMANDS, cli
from tests.conftest import run_cli


def test_version_is_fast_and_imports_nothing_heavy() -> None:
    code = ("import sys, time; t=time.perf_counter(); sys.argv=['imagepipe','--version'];"
            "import imagepipe.cli as c\n"
            "try:\n c.main()\nexcept SystemExit as e:\n rc=e.code\n"
            "heavy=[m for m in"
            " ('guestfs','ovirtsdk4','ovirt_imageio','cloudinit','rich','requests')"
            " if m in sys.modules]\nprint(rc, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("0 []"), out.stdout


def test_every_registered_command_loads_and_has_help() -> None:
    for name in COMMANDS:
        cmd = cli.get_command(None, name)  # type: ignore[arg-type]
        assert cmd is not None, f"command {name!r} is registered but its module is missing"
        res = run_cli(name, "--help")
        assert res.returncode == 0, (name, res.stderr)
        assert "Usage:" in res.stdout


def test_unknown_command_and_bad_option_exit_2() -> None:
    assert run_cli("no-such-command").returncode == 2
    assert run_cli("--no-such-flag").returncode == 2


def test_version_output() -> None:
    start = time.perf_counter()
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout.startswith("imagepipe, version ")
    assert time.perf_counter() - start < 30  # sanity only; speed is measured in make bench
