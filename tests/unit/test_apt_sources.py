"""Pure parts of issue 10: suites and deb822 sources, the resolver's parsing and keys, extra
repositories in recipes and guests, --var-file."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagepipe.apt import sources as apt_sources
from imagepipe.apt.resolve import _INST, VARIANT_PATTERNS, Package, Resolved
from imagepipe.bases import bootstrap
from imagepipe.bases.bootstrap_sources import ContentMismatch, check_installed
from imagepipe.cli.variables import collect, read_var_file
from imagepipe.errors import InputError, RecipeError
from imagepipe.guest import customize_repos
from imagepipe.recipe.load import load_recipe
from imagepipe.recipe.model import AptRepository, BootstrapSource

MIRROR = "http://m.example/debian"


def test_debian_uses_updates_and_security_by_default(tmp_path: Path) -> None:
    src = BootstrapSource(security_mirror="http://sec.example/debian-security")
    repos = apt_sources.distro_repos(src, MIRROR)
    assert [(r.uri, r.suite) for r in repos] == [
        (MIRROR, "bookworm"), (MIRROR, "bookworm-updates"),
        ("http://sec.example/debian-security", "bookworm-security")]
    assert all(r.signed_by == "/usr/share/keyrings/debian-archive-keyring.gpg" for r in repos)
    assert len(apt_sources.distro_repos(BootstrapSource(updates=False), MIRROR)) == 1
    assert len(apt_sources.distro_repos(BootstrapSource(suite="sid"), MIRROR)) == 1
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://host.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n")
    assert apt_sources.host_security_mirror("debian", apt) == \
        "http://host.example/debian-security"


def test_image_sources_are_deb822_with_signed_by(tmp_path: Path) -> None:
    key = tmp_path / "vendor.key"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n")
    src = BootstrapSource(security_mirror="http://sec.example/debian-security",
                          repositories=(AptRepository("http://r.example/apt/", "stable",
                                                      ("main", "extra"), key),))
    files = apt_sources.image_files(src, MIRROR)
    debian = files["/etc/apt/sources.list.d/debian.sources"]
    assert isinstance(debian, str)
    stanzas = debian.split("\n\n")
    assert stanzas[0] == ("Types: deb\nURIs: http://m.example/debian\n"
                          "Suites: bookworm bookworm-updates\nComponents: main\n"
                          "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg")
    assert "Suites: bookworm-security" in stanzas[1]
    extra = files["/etc/apt/sources.list.d/extra.sources"]
    assert isinstance(extra, str)
    assert "URIs: http://r.example/apt\n" in extra and "Components: main extra" in extra
    assert "Signed-By: /etc/apt/keyrings/vendor.key.asc" in extra
    assert files["/etc/apt/keyrings/vendor.key.asc"] == key
    trusted = apt_sources.extra_repos((AptRepository("http://t", "s", trusted=True),))
    assert trusted[0].line() == "deb [trusted=yes] http://t s main"
    assert "trusted without a signature check" in apt_sources.trust_warnings(trusted)[0]


def test_simulate_output_parsing_and_variants() -> None:
    out = ("NOTE: simulation\nInst libc6 (2.36-9+deb12u13 Debian:12.12/stable [amd64]) []\n"
           "Inst openssl (3.0.22-1~deb12u2 Debian-Security:12/oldstable-security [amd64])\n"
           "Inst tzdata (2025b-0+deb12u2 Debian:12/stable [all])\n"
           "Conf libc6 (2.36-9+deb12u13 Debian:12.12/stable [amd64])\n")
    found = [(m.group(1), m.group(2), m.group(4)) for m in _INST.finditer(out)]
    assert found == [("libc6", "2.36-9+deb12u13", "amd64"),
                     ("openssl", "3.0.22-1~deb12u2", "amd64"),
                     ("tzdata", "2025b-0+deb12u2", "all")]
    assert VARIANT_PATTERNS["minbase"] == ("?essential", "apt", "?priority(required)")
    a = Resolved([Package("a", "1", "all")], [], "now")
    b = Resolved([Package("a", "2", "all")], [], "now")
    assert a.as_map() == {"a": "1 all"} and a.digest() != b.digest()


def test_resolved_set_keys_the_rootfs_not_the_mirror() -> None:
    src = BootstrapSource()
    one = bootstrap.tarball_key(src, "http://a", {"openssl": "3.0.20 amd64"}, "S")
    assert one == bootstrap.tarball_key(src, "http://b", {"openssl": "3.0.20 amd64"}, "S")
    assert one != bootstrap.tarball_key(src, "http://a", {"openssl": "3.0.22 amd64"}, "S")
    argv = bootstrap.mmdebstrap_argv(src, MIRROR, Path("o.tar"), pins=["openssl=3.0.22"],
                                     sources=["deb http://x bookworm main"])
    assert "--include=openssl=3.0.22" in argv and argv[-1] == "deb http://x bookworm main"


def test_installed_set_must_equal_the_resolved_one(tmp_path: Path) -> None:
    listing = tmp_path / "installed.tsv"
    listing.write_text("a\t1\tamd64\nb\t2\tall\n")
    check_installed(listing, {"a": "1 amd64", "b": "2 all"})
    with pytest.raises(ContentMismatch, match="a 1 amd64 \\(resolved 1.1 amd64\\)"):
        check_installed(listing, {"a": "1.1 amd64", "b": "2 all"})
    with pytest.raises(ContentMismatch, match="b 2 all \\(not resolved\\)"):
        check_installed(listing, {"a": "1 amd64"})


def _recipe(tmp_path: Path, repos: str) -> Path:
    (tmp_path / "k.asc").write_text("key")
    p = tmp_path / "r.yaml"
    p.write_text(f"description: d\nsource:\n  bootstrap:\n    repositories:\n{repos}"
                 "outputs: [{format: qcow2}]\n")
    return p


def test_recipe_repositories_need_a_key_inside_the_recipe_dir(tmp_path: Path) -> None:
    ok = load_recipe(_recipe(tmp_path, "      - {url: 'http://r', suite: s, key: k.asc}\n"))
    assert ok.source.bootstrap is not None
    repo = ok.source.bootstrap.repositories[0]
    assert repo.key == tmp_path / "k.asc" and repo.components == ("main",)
    (tmp_path.parent / "outside.asc").write_text("key")
    for body, message in (("      - {url: 'http://r', suite: s}\n", "needs a key"),
                          ("      - {url: 'http://r', suite: s, key: ../outside.asc}\n",
                           "escapes the recipe directory"),
                          ("      - {url: 'http://r', suite: s, key: k.asc, trusted: true}\n",
                           "trusted: true with a key")):
        with pytest.raises(RecipeError) as err:
            load_recipe(_recipe(tmp_path, body))
        assert message in str(err.value)


def test_guest_repository_files_and_update_commands(tmp_path: Path) -> None:
    key = tmp_path / "k.asc"
    key.write_text("KEY")
    repos = (AptRepository("https://rpm.example/el9/", "el9", key=key),)
    dnf = customize_repos.repository_files("dnf", repos)
    assert dnf[0].path == "/etc/pki/rpm-gpg/imagepipe-0-rpm.example-el9.asc"
    text = dnf[1].data.decode()
    assert dnf[1].path == "/etc/yum.repos.d/imagepipe-0-rpm.example-el9.repo"
    assert "gpgcheck=1" in text and "gpgkey=file:///etc/pki/rpm-gpg/" in text
    assert "type=rpm-md" in customize_repos.repository_files("zypper", repos)[1].data.decode()
    apt = customize_repos.repository_files("apt", repos)
    assert [f.path for f in apt] == ["/etc/apt/keyrings/k.asc",
                                     "/etc/apt/sources.list.d/extra.sources"]
    assert "dist-upgrade" in customize_repos.update_command("apt")
    assert customize_repos.update_command("dnf").startswith("dnf -y upgrade")
    assert "zypper -n update" in customize_repos.update_command("zypper")
    assert customize_repos.upgraded_count("apt", "12 upgraded, 3 newly installed, 0 to "
                                                 "remove") == 15
    with pytest.raises(Exception, match="unsupported package manager"):
        customize_repos.update_command("pacman")


def test_var_files(tmp_path: Path) -> None:
    y = tmp_path / "v.yaml"
    y.write_text("site: lab\nkeep: 3\nenabled: true\n")
    kv = tmp_path / "v.env"
    kv.write_text("# comment\nsite=prod\n\nowner = ops\n")
    assert read_var_file(y) == {"site": "lab", "keep": "3", "enabled": "true"}
    assert collect(("site=cli",), (y, kv)) == {"site": "cli", "keep": "3", "enabled": "true",
                                              "owner": "ops"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(InputError, match="must be a mapping"):
        read_var_file(bad)
    with pytest.raises(InputError, match="cannot read --var-file"):
        read_var_file(tmp_path / "missing")


def test_explain_names_the_changed_packages() -> None:
    from imagepipe.pipeline import explain

    old = {"options": {"resolved": {"canary": "1.0 all", "passwd": "1:4.13 amd64",
                                    "gone": "1 all"}}}
    new = {"options": {"resolved": {"canary": "1.1 all", "passwd": "1:4.14 amd64",
                                    "fresh": "2 all"}}}
    why = explain.reason({"material": explain.scrub(old)}, new)
    assert "options.resolved.canary changed: 1.0 all -> 1.1 all" in why
    assert "options.resolved.passwd changed: 1:4.13 amd64 -> 1:4.14 amd64" in why
    assert "options.resolved.gone removed" in why and "options.resolved.fresh added" in why


def test_mmdebstrap_reads_extra_keys_from_a_place_others_can_open(tmp_path: Path) -> None:
    """mmdebstrap's apt runs as an unprivileged namespace user: a key below a private store
    (0700, like /root/.cache) must reach it as a copy anyone can read."""
    import os
    import shutil
    import subprocess

    from imagepipe.apt import resolve as apt_resolve
    from imagepipe.bases.bootstrap_sources import pinned_options, scratch_dir

    private = tmp_path / "private"
    (private / "recipe").mkdir(parents=True)
    private.chmod(0o700)
    key = private / "recipe" / "vendor.asc"
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\nxyz\n")
    src = BootstrapSource(security_mirror="http://sec.example/debian-security",
                          repositories=(AptRepository("http://r.example/apt", "stable",
                                                      ("main",), key),))
    apt_resolve.settings.store_root, before = private / "store", apt_resolve.settings.store_root
    side = scratch_dir()
    try:
        _, sources, _ = pinned_options(src, MIRROR, {"bash": "5.2 amd64"}, side)
        keys = [a.split("signed-by=")[1].split("]")[0] for a in sources if "signed-by=/" in a]
        extra = [k for k in keys if not k.startswith("/usr/share/keyrings/")]
        assert len(extra) == 1 and Path(extra[0]).parent == side
        assert Path(extra[0]).read_bytes() == key.read_bytes()
        if os.geteuid() == 0 and shutil.which("setpriv"):
            as_nobody = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                                        "--clear-groups", "cat", extra[0]],
                                       capture_output=True, check=False)
            assert as_nobody.returncode == 0, as_nobody.stderr
    finally:
        apt_resolve.settings.store_root = before
        shutil.rmtree(side)
