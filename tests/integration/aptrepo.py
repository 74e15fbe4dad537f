"""A real signed apt repository made by the test: dpkg-deb, apt-ftparchive, gpg.

Why real: the resolver, mmdebstrap and the image's deb822 sources must accept the signature
with the recipe's ASCII-armoured key exactly as with a vendor's repository. The key is a
throwaway one in a private GNUPGHOME; the repository is served over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from pathlib import Path

SUITE = "canary"


def _run(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
         stdout: int | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(argv, check=True, env={**os.environ, **(env or {})}, cwd=cwd,
                          stdout=stdout if stdout is not None else subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


class SignedRepo:
    def __init__(self, root: Path, gnupg: Path) -> None:
        self.root = root
        self.gnupg = gnupg
        gnupg.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.env = {"GNUPGHOME": str(gnupg)}
        _run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
              "--quick-gen-key", "imagepipe test repository <repo@example.invalid>",
              "ed25519", "sign", "never"], self.env)

    def close(self) -> None:
        """Stop the gpg-agent that signing started (no daemon outlives the test)."""
        subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, **self.env},
                       check=False, capture_output=True, timeout=30)

    def export_key(self, dest: Path) -> Path:
        dest.write_bytes(_run(["gpg", "--armor", "--export"], self.env).stdout)
        return dest

    def publish(self, name: str, version: str) -> None:
        """The repository holds exactly `name version` (as a Debian mirror holds one)."""
        shutil.rmtree(self.root / "pool", ignore_errors=True)
        shutil.rmtree(self.root / "dists", ignore_errors=True)
        build = self.root.parent / f"pkg-{name}-{version}"
        shutil.rmtree(build, ignore_errors=True)
        (build / "DEBIAN").mkdir(parents=True)
        (build / "usr/share" / name).mkdir(parents=True)
        (build / "usr/share" / name / "version").write_text(version + "\n")
        (build / "DEBIAN/control").write_text(
            f"Package: {name}\nVersion: {version}\nArchitecture: all\n"
            "Maintainer: imagepipe tests <repo@example.invalid>\nSection: misc\n"
            "Priority: optional\nDescription: imagepipe test package\n"
            " Proves that a new version in a repository rebuilds the image.\n")
        (self.root / "pool").mkdir(parents=True)
        _run(["dpkg-deb", "--root-owner-group", "--build", str(build),
              str(self.root / "pool" / f"{name}_{version}_all.deb")])
        binary = self.root / "dists" / SUITE / "main" / "binary-amd64"
        binary.mkdir(parents=True)
        packages = _run(["apt-ftparchive", "packages", "pool"], cwd=self.root).stdout
        (binary / "Packages").write_bytes(packages)
        (binary / "Packages.gz").write_bytes(gzip.compress(packages))
        dist = self.root / "dists" / SUITE
        release = _run(["apt-ftparchive", "-o", f"APT::FTPArchive::Release::Suite={SUITE}",
                        "-o", f"APT::FTPArchive::Release::Codename={SUITE}",
                        "-o", "APT::FTPArchive::Release::Architectures=amd64",
                        "-o", "APT::FTPArchive::Release::Components=main",
                        "release", "."], cwd=dist).stdout
        (dist / "Release").write_bytes(release)
        _run(["gpg", "--batch", "--yes", "--clearsign", "-o", str(dist / "InRelease"),
              str(dist / "Release")], self.env)
        _run(["gpg", "--batch", "--yes", "-abs", "-o", str(dist / "Release.gpg"),
              str(dist / "Release")], self.env)
