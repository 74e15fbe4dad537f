"""mmdebstrap with a resolved package set: every repository, exact versions, deb822 sources.

Why pin every package (`name=version` in `--include`), not only the recipe's: mmdebstrap
installs the Essential set first from the plain suite, so without pins a newer libc6 in
SUITE-security would stay at the point-release version and the rootfs would not be the set
that keyed it. Measured here: with the pins, `dpkg-query` inside the tarball lists exactly the
resolved set. A customize hook writes that list next to the tarball and the build fails if it
differs (key and content must agree).

The hooks also replace mmdebstrap's one-line `/etc/apt/sources.list` with the image's deb822
files (imagepipe.apt.sources.image_files) and install extra repositories' keys under
/etc/apt/keyrings/.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from imagepipe.errors import ImagepipeError
from imagepipe.recipe.model import BootstrapSource


class ContentMismatch(ImagepipeError):
    """The bootstrap installed something else than the resolved set."""


def scratch_dir() -> Path:
    """A fresh directory for the files mmdebstrap's apt must read (extra repositories' keys).

    Why not beside the tarball in the store: in unshare mode apt runs as an unprivileged
    user of a user namespace, and the store usually sits below a private directory
    (`/root/.cache`, pytest's `/tmp/pytest-of-root`): apt then cannot open a `signed-by` key
    there and reports the repository as unsigned (NO_PUBKEY). The system temp dir serves:
    mmdebstrap keeps its own work tree there, so it is reachable or mmdebstrap fails anyway.
    The caller removes it."""
    path = Path(tempfile.mkdtemp(prefix="imagepipe-apt-"))
    path.chmod(0o755)
    return path


def _readable_key(key: str | None, side: Path, index: int) -> str | None:
    """`key` as a world-readable copy in `side` (the distro keyrings are readable already)."""
    if key is None or key.startswith("/usr/share/keyrings/"):
        return key
    dest = side / f"key{index}{Path(key).suffix}"
    shutil.copyfile(key, dest)
    os.chmod(dest, 0o644)
    return str(dest)


def pinned_options(src: BootstrapSource, mirror: str, pinned: Mapping[str, str],
                   side: Path) -> tuple[list[str], list[str], list[str]]:
    """`mmdebstrap_argv`'s (pins, sources, hooks) for a resolved set; `side` receives the
    image's apt files (read by the hooks) and `installed.tsv` (written by them). The bootstrap
    builds the argv with them (this module stays below it: no import back)."""
    from imagepipe.apt import sources as apt_sources
    from imagepipe.apt.resolve import AptState, apt_state

    state: AptState = apt_state()
    side.mkdir(parents=True, exist_ok=True)
    side.chmod(0o755)
    repos = [replace(r, signed_by=_readable_key(r.signed_by, side, i)) for i, r in
             enumerate(state.host_repo(r) for r in apt_sources.all_repos(src, mirror))]
    hooks = []
    script = ['rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/0000*']
    for i, (dest, content) in enumerate(sorted(apt_sources.image_files(src, mirror).items())):
        staged = side / f"file{i}"
        staged.write_bytes(content.read_bytes() if isinstance(content, Path)
                           else content.encode())
        staged.chmod(0o644)
        target = f'"$1"{shlex.quote(dest)}'
        script.append(f"mkdir -p \"$1\"{shlex.quote(str(Path(dest).parent))} && "
                      f"cat {shlex.quote(str(staged))} > {target} && chmod 0644 {target}")
    hooks.append("--customize-hook=" + " && ".join(script))
    listing = side / "installed.tsv"
    hooks.append("--customize-hook=dpkg-query --admindir=\"$1/var/lib/dpkg\" -W "
                 "-f='${Package}\\t${Version}\\t${Architecture}\\n' > "
                 + shlex.quote(str(listing)))
    pins = [f"{name}={va.split()[0]}" for name, va in sorted(pinned.items())]
    return pins, [r.line() for r in repos], hooks


def check_installed(listing: Path, pinned: Mapping[str, str]) -> None:
    """Fail when dpkg's view of the new rootfs differs from the resolved set."""
    try:
        rows = [line.split("\t") for line in listing.read_text().splitlines() if line]
    except OSError as exc:
        raise ContentMismatch(f"the bootstrap did not list its packages ({exc})") from exc
    installed = {r[0]: f"{r[1]} {r[2]}" for r in rows if len(r) == 3}
    wrong = [f"{n} {installed.get(n, 'missing')} (resolved {v})" for n, v in pinned.items()
             if installed.get(n) != v]
    wrong += [f"{n} {v} (not resolved)" for n, v in installed.items() if n not in pinned]
    if wrong:
        raise ContentMismatch(
            f"the bootstrap installed another package set than the resolved one: "
            f"{'; '.join(sorted(wrong)[:10])}" + (" ..." if len(wrong) > 10 else ""),
            "the repository changed during the build: build again (it resolves again)")
