#!/usr/bin/env python3
"""Run the benchmarks: every `benchmarks/bench_*.py` file's `main()`, each in its own process.

Usage: `python benchmarks/run.py [NAME...]` where NAME is `convert` or `bench_convert`
(default: all). Each bench prints its own `name: value (target ...)` lines under a header.
Why a process per bench: a crashing or memory-hungry bench cannot skew or stop the others, and
each measures a cold `import imagepipe` the way users see it. Exit status 1 if any bench failed.
Environment: BENCH_SCALE (e.g. 0.1) shrinks the data sizes for a quick try.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

RUNNER = ("import runpy, sys\n"
          "ns = runpy.run_path(sys.argv[1], run_name='bench')\n"
          "rc = ns['main']()\n"
          "sys.exit(rc if isinstance(rc, int) else 0)\n")


def discover(names: list[str]) -> list[Path]:
    found = sorted(HERE.glob("bench_*.py"))
    if not names:
        return found
    wanted = {n if n.startswith("bench_") else f"bench_{n}" for n in
              (Path(n).stem for n in names)}
    unknown = wanted - {p.stem for p in found}
    if unknown:
        raise SystemExit(f"unknown bench: {', '.join(sorted(unknown))} "
                         f"(have: {', '.join(p.stem[6:] for p in found)})")
    return [p for p in found if p.stem in wanted]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    failed = []
    for path in discover(args):
        print(f"== {path.stem[6:]} ({path.relative_to(REPO)}) ==", flush=True)
        start = time.monotonic()
        rc = subprocess.call([sys.executable, "-c", RUNNER, str(path)], cwd=REPO, env=env)
        print(f"-- {path.stem[6:]}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in "
              f"{time.monotonic() - start:.1f} s", flush=True)
        if rc != 0:
            failed.append(path.stem)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
