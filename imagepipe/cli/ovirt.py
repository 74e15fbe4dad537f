"""`imagepipe ovirt ...`: upload disks and ISOs, make templates, list templates.

Why every command takes the same engine options: one decorator, one resolution order (flags >
env > ~/.config/imagepipe/ovirt.yaml), and no option that accepts a password value, so a
password never lands in shell history, `ps` output or CI logs.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples
from imagepipe.errors import InputError
from imagepipe.recipe.model import TemplateOptions

# The same defaults as the recipe's publish.ovirt (one source: the recipe model).
_DEFAULTS = TemplateOptions()
_SIZE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(i?B?)?\s*$", re.I)


def parse_size(text: str) -> int:
    """`2G`, `2048M`, `2GiB` or plain bytes -> bytes (binary units, as oVirt shows memory)."""
    m = _SIZE.match(text)
    if not m:
        raise click.BadParameter(f"{text!r} is not a size like 2G or 4096M")
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2).upper()]


def engine_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """--engine/--username/--password-file/--ca-file/--insecure/--profile, resolved to a config."""
    opts = [
        click.option("--engine", "engine_url", metavar="URL",
                     help="Engine URL, e.g. https://engine.example.com (env OVIRT_URL)."),
        click.option("--username", help="Engine user (env OVIRT_USERNAME; admin@internal)."),
        click.option("--password-file", type=click.Path(path_type=Path),
                     help="File holding the password (env OVIRT_PASSWORD_FILE or "
                          "OVIRT_PASSWORD)."),
        click.option("--ca-file", type=click.Path(path_type=Path),
                     help="Engine CA certificate (env OVIRT_CA_FILE)."),
        click.option("--insecure", is_flag=True,
                     help="Do not verify TLS certificates (explicit only; never the default)."),
        click.option("--profile", help="Profile name in ~/.config/imagepipe/ovirt.yaml."),
    ]

    @functools.wraps(func)
    def wrapper(engine_url: str | None, username: str | None, password_file: Path | None,
                ca_file: Path | None, insecure: bool, profile: str | None,
                **kwargs: Any) -> Any:
        from imagepipe.targets.ovirt.connection import resolve_config

        cfg = resolve_config(url=engine_url, username=username, password_file=password_file,
                             ca_file=ca_file, insecure=insecure, profile=profile)
        if cfg.insecure:
            ui.warn("TLS verification is off (--insecure)")
        return func(cfg=cfg, **kwargs)

    for opt in reversed(opts):
        wrapper = opt(wrapper)
    return wrapper


def upload_options(func: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--retries", type=click.IntRange(0, 20), default=3, show_default=True,
                     help="Whole-upload retries after a paused or failed transfer."),
        click.option("--disk-timeout", type=click.FloatRange(1), default=120.0,
                     show_default=True, help="Seconds to wait for the engine to unlock a disk."),
        click.option("--verify/--no-verify", default=True, show_default=True,
                     help="Compare the remote checksum with the local image before finalizing."),
    ]
    for opt in reversed(opts):
        func = opt(func)
    return func


def _options(retries: int, disk_timeout: float, verify: bool) -> Any:
    from imagepipe.targets.ovirt.upload import UploadOptions

    return UploadOptions(retries=retries, disk_timeout=disk_timeout, verify=verify)


def _image(path: Path) -> Path:
    """IMAGE checked locally, before the engine is contacted."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not a disk image")
    return path


@click.group(epilog=examples(
    "imagepipe ovirt upload-disk disk.qcow2 -s data1 --engine https://engine.example.com",
    "imagepipe ovirt make-template disk.qcow2 -s data1 --cluster Default "
    "--name 'web-${date}' --description 'web server' --keep 3",
    "imagepipe ovirt templates ls --profile lab"))
def ovirt() -> None:
    """Publish to an oVirt engine: disks, ISOs and templates."""


@ovirt.command("upload-disk", epilog=examples(
    "imagepipe ovirt upload-disk disk.qcow2 -s data1 --profile lab",
    "imagepipe ovirt upload-disk disk.img -s data1 --format raw --name db-disk"))
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--storage-domain", "-s", required=True, help="Data storage domain name.")
@click.option("--name", help="Disk name (default: the image file name without extension).")
@click.option("--format", "fmt", type=click.Choice(["cow", "raw"]), default="cow",
              show_default=True, help="Disk format on the engine (cow = qcow2).")
@click.option("--sparse/--no-sparse", default=True, show_default=True)
@upload_options
@engine_options
def upload_disk_cmd(cfg: Any, image: Path, storage_domain: str, name: str | None, fmt: str,
                    sparse: bool, retries: int, disk_timeout: float, verify: bool) -> None:
    """Upload IMAGE (raw, qcow2 or any format qemu reads) as a new disk."""
    from imagepipe.targets.ovirt import connect, upload_disk
    from imagepipe.targets.ovirt.transfer import image_info

    image = _image(image)  # exit 2 before any network
    image_info(image, raw_ok=fmt == "raw")  # not an image: exit 2, no network
    with connect(cfg) as con:
        r = upload_disk(con, cfg, image, storage_domain=storage_domain, name=name,
                        fmt=fmt, sparse=sparse, options=_options(retries, disk_timeout, verify))
    ui.result(f"disk {r.name} uploaded: id {r.disk_id}, checksum {r.checksum or 'not verified'}"
              f", {r.attempts} attempt(s), {r.seconds:.1f}s", **r.to_dict())


@ovirt.command("upload-iso", epilog=examples(
    "imagepipe ovirt upload-iso debian-12.iso -s data1 --profile lab"))
@click.argument("iso", type=click.Path(path_type=Path))
@click.option("--storage-domain", "-s", required=True, help="Data storage domain name.")
@click.option("--name", help="Disk name; `.iso` is appended when missing.")
@upload_options
@engine_options
def upload_iso_cmd(cfg: Any, iso: Path, storage_domain: str, name: str | None, retries: int,
                   disk_timeout: float, verify: bool) -> None:
    """Upload an installer ISO to a data domain (content type iso, raw, preallocated)."""
    from imagepipe.targets.ovirt import connect, upload_iso

    iso = _image(iso)  # exit 2 before any network
    with connect(cfg) as con:
        r = upload_iso(con, cfg, iso, storage_domain=storage_domain, name=name,
                       options=_options(retries, disk_timeout, verify))
    ui.result(f"ISO {r.name} uploaded: id {r.disk_id}", **r.to_dict())


@ovirt.command("make-template", epilog=examples(
    "imagepipe ovirt make-template web.qcow2 -s data1 --cluster Default --name 'web-${date}' "
    "--description 'web server' --user-data web.yaml --keep 3"))
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--storage-domain", "-s", required=True)
@click.option("--cluster", required=True)
@click.option("--name", required=True,
              help="Template name; `${date}` (UTC YYYYMMDD, as in recipes) makes it "
              "versioned; another image the same day gets NAME.2, NAME.3, ...")
@click.option("--description", required=True, help="Required: what this template is.")
@click.option("--comment", default="")
@click.option("--user-data", type=click.Path(path_type=Path),
              help="cloud-config for the template's initialization (custom script).")
@click.option("--memory", default=f"{_DEFAULTS.memory >> 30}G", show_default=True)
@click.option("--cpus", type=click.IntRange(1, 512), default=_DEFAULTS.cpus, show_default=True)
@click.option("--os-type", default=_DEFAULTS.os_type, show_default=True,
              help="oVirt OS type, e.g. debian_12, rhel_9x64.")
@click.option("--network", default=_DEFAULTS.network, show_default=True,
              help="vNIC profile / network for nic1.")
@click.option("--ballooning/--no-ballooning", default=_DEFAULTS.ballooning, show_default=True)
@click.option("--seal/--no-seal", default=_DEFAULTS.seal, show_default=True,
              help="Let the engine seal the template too (virt-sysprep on a host), as oVirt's "
              "'Seal Template'; images imagepipe built are sealed already.")
@click.option("--keep", type=click.IntRange(1), help="Keep only the newest N versions.")
@click.option("--version-name", metavar="VERSION",
              help="Publish as a new version of template NAME (the first creates NAME as the "
                   "base template); VMs and pools set to 'latest' follow it.")
@click.option("--firmware", type=click.Choice(["bios", "uefi", "secureboot"]),
              help="The template's firmware (bios.type q35_sea_bios, q35_ovmf, "
              "q35_secure_boot); default: the cluster's.")
@upload_options
@engine_options
def make_template_cmd(cfg: Any, image: Path, storage_domain: str, cluster: str, name: str,
                      description: str, comment: str, user_data: Path | None, memory: str,
                      cpus: int, os_type: str, network: str, ballooning: bool, seal: bool,
                      keep: int | None, version_name: str | None, firmware: str | None,
                      retries: int,
                      disk_timeout: float, verify: bool) -> None:
    """Upload IMAGE and turn it into a template (temporary VM removed in every outcome)."""
    from imagepipe.bases.bootloader import OVIRT_BIOS_TYPES
    from imagepipe.targets.ovirt import TemplateSpec, connect, make_template

    image = _image(image)  # exit 2 before any network
    script = _read_user_data(user_data) if user_data else None
    if not description.strip():
        raise InputError("--description must not be empty")
    spec = TemplateSpec(name=name, description=description, comment=comment,
                        cluster=cluster, storage_domain=storage_domain, user_data=script,
                        memory=parse_size(memory), cpus=cpus, os_type=os_type,
                        network=network, ballooning=ballooning, seal=seal, keep=keep,
                        version_name=version_name,
                        bios_type=OVIRT_BIOS_TYPES[firmware] if firmware else None)
    with connect(cfg) as con:
        r = make_template(con, cfg, image, spec,
                          options=_options(retries, disk_timeout, verify))
    verb = "already published as" if r.reused else "created"
    what = r.template_name + (f" version {r.version_number} ({r.version_name})"
                              if r.version_number else "")
    lines = [f"template {verb} {what} (id {r.template_id})"]
    lines += [f"kept {k['label']}: {k['reason']}" for k in r.kept_versions]
    lines += [f"removed {v}" for v in r.removed_versions]
    ui.result("\n".join(lines), **r.to_dict())


def _read_user_data(path: Path) -> str:
    """The cloud-config, checked with cloud-init's own schema (located errors, exit 2)."""
    from imagepipe.cloudinit.validate import validate_user_data
    from imagepipe.errors import CloudConfigError

    problems = validate_user_data(path)
    if problems:
        raise CloudConfigError(problems)
    return path.read_text()


@ovirt.group(epilog=examples("imagepipe ovirt templates ls --profile lab"))
def templates() -> None:
    """Templates on the engine."""


@templates.command("ls", epilog=examples(
    "imagepipe ovirt templates ls --profile lab --name-prefix web-"))
@click.option("--name-prefix", help="Only templates whose name starts with this.")
@engine_options
def templates_ls(cfg: Any, name_prefix: str | None) -> None:
    """List templates (name, version, status, id, description)."""
    from imagepipe.targets.ovirt import connect, list_templates

    with connect(cfg) as con:
        rows = list_templates(con, name_prefix)
    if ui.settings.json:
        ui.result(templates=rows)
        return
    for row in rows:
        version = f"v{row['version_number']} {row['version_name'] or ''}".strip() \
            if row.get("version_number") else "-"
        ui.result(f"{row['name']:<32} {version:<22} {row['status'] or '-':<8} {row['id']}  "
                  f"{row['description'] or ''}")
