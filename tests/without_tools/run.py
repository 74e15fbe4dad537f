"""Run the fast test selection the way a laptop without the heavy tools would.

Why: `pytest -m "not qemu and not guestfs and not ovirt and not slow"` is promised to pass on
a machine without qemu, libguestfs or mmdebstrap. Running it here, where they are installed,
proves nothing: a test that calls qemu-img without its `qemu` marker would still pass. This
runner hides them first:

- PATH is replaced by one temporary directory of symlinks to every program on the current
  PATH except the hidden ones (qemu-*, mmdebstrap, the libguestfs tools), so `shutil.which`
  and every subprocess see a host without them;
- this directory goes first on PYTHONPATH, where `guestfs.py` raises ImportError, in the test
  process and in every `imagepipe` subprocess a test starts;
- the network is out of reach: every HTTP(S) proxy variable points at a closed port on
  127.0.0.1 (apt-get, requests and urllib honour them; 127.0.0.1 itself stays direct, so the
  tests' own servers work), so a test that needs the Debian mirror without its `network`
  marker fails too; `network` tests are left out of this selection.

A test that needs a hidden tool and lacks its marker then fails (or skips, if it checks for
the tool itself). Extra arguments are passed to pytest. Exit code: pytest's.
"""

from __future__ import annotations

import fnmatch
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SELECTION = "not qemu and not guestfs and not ovirt and not slow and not network"
HIDDEN = ("qemu-*", "mmdebstrap", "guestfish", "guestmount", "guestunmount", "virt-*",
          "libguestfs-*", "supermin")
BUDGET_S = 30.0


def is_hidden(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in HIDDEN)


def shadow_path(bin_dir: Path, path: str) -> list[str]:
    """Fill bin_dir with symlinks to every program on `path` that is not hidden (the first
    of each name wins, as in a PATH lookup); returns the names left out."""
    left_out: set[str] = set()
    for d in path.split(os.pathsep):
        if not d or not os.path.isdir(d):
            continue
        for entry in os.scandir(d):
            if is_hidden(entry.name):
                left_out.add(entry.name)
                continue
            link = bin_dir / entry.name
            if not link.exists() and not link.is_symlink() and os.access(entry.path, os.X_OK):
                link.symlink_to(entry.path)
    return sorted(left_out)


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (free a moment ago): connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="imagepipe-without-tools-") as tmp:
        bin_dir = Path(tmp)
        hidden = shadow_path(bin_dir, os.environ.get("PATH", os.defpath))
        env = dict(os.environ)
        env["PATH"] = str(bin_dir)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(HERE), env.get("PYTHONPATH", "")) if p)
        for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
            env[var] = f"http://127.0.0.1:{closed_port()}"
        env["no_proxy"] = env["NO_PROXY"] = "127.0.0.1,localhost"
        print(f"without-tools: hiding {len(hidden)} programs ({', '.join(hidden[:8])}"
              f"{', ...' if len(hidden) > 8 else ''}) and `import guestfs`; no network", flush=True)
        start = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-m", SELECTION, *argv],
                              cwd=REPO, env=env)
        elapsed = time.monotonic() - start
    verdict = "within" if elapsed < BUDGET_S else "OVER"
    print(f"without-tools: {elapsed:.1f} s ({verdict} the {BUDGET_S:.0f} s budget), "
          f"pytest exit {proc.returncode}", flush=True)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
