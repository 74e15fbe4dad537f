"""`imagepipe seal | inject | customize | seed-iso`: guest work on one image, one launch each.

The input image is never modified unless --in-place is given: -o OUT gets a temp copy next to
OUT that is renamed into place only when all work (and, for seal, the lints and the read-back
verification) succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples, force_option
from imagepipe.errors import InputError

IMAGE = click.Path(exists=True, dir_okay=False, path_type=Path)
OUT = click.Path(dir_okay=False, path_type=Path)
FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _accel_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--accel",
        type=click.Choice(["auto", "kvm", "tcg"]),
        default=None,
        help="Appliance acceleration (default: $IMAGEPIPE_ACCEL or auto: probe "
        "KVM once per host boot, fall back to TCG).",
    )(f)


def _output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = force_option(f)
    f = click.option("--in-place", is_flag=True, help="Modify IN itself.")(f)
    return click.option(
        "-o",
        "--output",
        type=OUT,
        help="Write the result here (same format as IN); IN is untouched.",
    )(f)


def _guest_job(
    image: Path,
    output: Path | None,
    in_place: bool,
    accel: str | None,
    work: Callable[[Any], dict[str, Any]],
    *,
    network: bool = False,
    force: bool = False,
) -> dict[str, Any]:
    """Open one session on a working copy of `image`, run `work`, publish the copy on success."""
    from imagepipe.guest.work import image_format, working_copy
    from imagepipe.tools import accel as accel_mod
    from imagepipe.tools.guestfs import GuestSession

    if output is not None and in_place:
        raise InputError("give either -o OUT or --in-place, not both")
    accel_mod.set_requested(accel)
    fmt = image_format(image)
    suffix_fmt = {".qcow2": "qcow2", ".raw": "raw"}.get(output.suffix if output else "")
    if output is not None and suffix_fmt not in (None, fmt):
        raise InputError(f"-o {output}: the output keeps the input's format ({fmt}), but the "
                         f"name says {suffix_fmt}",
                         f"name it *.{fmt} and convert afterwards: imagepipe convert")
    with working_copy(image, output, in_place=in_place, force=force) as path:
        ui.info(
            f"launching the appliance on {path.name if in_place else image.name} "
            f"({accel_mod.decide_accel()})"
        )
        with ui.stage(click.get_current_context().info_name or "guest"):
            ui.phase("launching the appliance")
            with GuestSession(path, fmt=fmt, network=network) as session:
                record = work(session)
    record["output"] = str(image if in_place else output)
    return record


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe seal disk.qcow2 -o sealed.qcow2",
                               "imagepipe seal disk.qcow2 --in-place "
                               "--operations defaults,-ssh-hostkeys",
                               "imagepipe seal disk.qcow2 --dry-run",
                               "imagepipe seal --list-operations"))
@click.argument("image", type=IMAGE, required=False)
@_output_options
@click.option(
    "--operations",
    "spec",
    default="defaults",
    show_default=True,
    help="Selection, e.g. 'defaults,-ssh-hostkeys,+user-account' or 'none,machine-id'.",
)
@click.option("--list-operations", is_flag=True, help="List seal operations and exit.")
@click.option("--dry-run", is_flag=True, help="Only list what each operation would remove.")
@click.option("--allow-password", is_flag=True, help="Allow usable password hashes in /etc/shadow.")
@click.option("--allow-static-ip", is_flag=True, help="Allow static IP network configuration.")
@_accel_option
def seal(
    image: Path | None,
    output: Path | None,
    in_place: bool,
    force: bool,
    spec: str,
    list_operations: bool,
    dry_run: bool,
    allow_password: bool,
    allow_static_ip: bool,
    accel: str | None,
) -> None:
    """Seal IN as a template: remove machine-unique data, then lint (no static IP, no usable
    password) and verify by reading the sealed image back."""
    from imagepipe.guest.seal import operations, select

    if list_operations:
        ops = operations()
        lines = [f"{n:<24} {'*' if op.default else ' '} {op.summary}" for n, op in ops.items()]
        ui.result(
            "\n".join(lines) + "\n(* = on by default)",
            operations=[
                {"name": n, "default": op.default, "summary": op.summary} for n, op in ops.items()
            ],
        )
        return
    if image is None:
        raise click.UsageError("missing argument IN (or use --list-operations)")
    select(spec)  # bad selection: exit 2 before any launch
    if dry_run:
        _seal_dry_run(image, spec, accel)
        return

    def work(session: Any) -> dict[str, Any]:
        from imagepipe.guest.seal.run import seal_and_check

        return seal_and_check(
            session, spec, allow_static_ip=allow_static_ip, allow_password=allow_password
        ).to_json()

    rec = _guest_job(image, output, in_place, accel, work, force=force)
    s = rec["seal"]
    ui.result(
        f"sealed {rec['output']}: {len(s['operations'])} operations, "
        f"{s['files_removed']} files removed, lints passed, verified",
        **rec,
    )


def _seal_dry_run(image: Path, spec: str, accel: str | None) -> None:
    from imagepipe.guest.seal.run import seal as run_seal
    from imagepipe.guest.work import image_format
    from imagepipe.tools import accel as accel_mod
    from imagepipe.tools.guestfs import GuestSession

    accel_mod.set_requested(accel)
    with GuestSession(image, fmt=image_format(image), readonly=True) as session:
        rec = run_seal(session, spec, dry_run=True)
    lines = []
    for op in rec.operations:
        paths = rec.removed.get(op, []) + [f"(edit) {p}" for p in rec.edited.get(op, [])]
        lines.append(f"{op}: {len(paths)}" + "".join(f"\n  {p}" for p in paths))
    ui.result(
        "\n".join(lines) + f"\n(dry run: {rec.files_removed} files would be removed)",
        **rec.to_json(),
    )


def _seed_files(
    user_data: Path,
    meta_data: Path | None,
    network_config: Path | None,
    instance_id: str | None,
    hostname: str | None,
) -> tuple[bytes, bytes, bytes | None]:
    from imagepipe.cloudinit.seed import new_instance_id
    from imagepipe.guest.work import seed_payload
    from imagepipe.recipe.model import CloudInit

    ci = CloudInit(
        user_data=user_data,
        meta_data=meta_data,
        network_config=network_config,
        instance_id=instance_id,
        hostname=hostname,
    )
    return seed_payload(ci, new_instance_id())


def _seed_options(f: Callable[..., Any]) -> Callable[..., Any]:
    for opt in reversed(
        [
            click.option("--user-data", type=FILE, required=True, help="#cloud-config file."),
            click.option(
                "--meta-data", type=FILE, help="meta-data YAML (instance-id added if missing)."
            ),
            click.option("--network-config", type=FILE, help="network-config (v1/v2) YAML."),
            click.option("--instance-id", help="instance-id (default: a fresh unique one)."),
            click.option("--hostname", help="local-hostname (default: none; set per VM)."),
        ]
    ):
        f = opt(f)
    return f


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe inject disk.qcow2 --user-data user-data.yaml "
                               "-o seeded.qcow2",
                               "imagepipe inject disk.qcow2 --user-data u.yaml "
                               "--network-config net.yaml --in-place"))
@click.argument("image", type=IMAGE)
@_seed_options
@_output_options
@_accel_option
def inject(
    image: Path,
    user_data: Path,
    meta_data: Path | None,
    network_config: Path | None,
    instance_id: str | None,
    hostname: str | None,
    output: Path | None,
    in_place: bool,
    force: bool,
    accel: str | None,
) -> None:
    """Embed a NoCloud seed in IN (/var/lib/cloud/seed/nocloud) with a datasource_list drop-in.
    The user-data is validated first (exit 2 with file:line on errors)."""
    from imagepipe.cloudinit.seed import inject_seed

    payload = _seed_files(user_data, meta_data, network_config, instance_id, hostname)
    rec = _guest_job(image, output, in_place, accel, lambda s: inject_seed(s, *payload),
                     force=force)
    ui.result(f"injected the NoCloud seed into {rec['output']}", **rec)


@click.command("seed-iso", context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe seed-iso --user-data user-data.yaml -o seed.iso",
                               "imagepipe seed-iso --user-data u.yaml --meta-data m.yaml "
                               "--network-config net.yaml -o seed.iso --force"))
@_seed_options
@click.option("-o", "--output", type=OUT, required=True, help="The seed ISO to write.")
@force_option
def seed_iso(
    user_data: Path,
    meta_data: Path | None,
    network_config: Path | None,
    instance_id: str | None,
    hostname: str | None,
    output: Path,
    force: bool,
) -> None:
    """Write a NoCloud seed ISO (volume id cidata, user-data + meta-data [+ network-config])."""
    from imagepipe.cloudinit.seed import build_seed_iso
    from imagepipe.durable import refuse_overwrite

    refuse_overwrite(output, force)
    payload = _seed_files(user_data, meta_data, network_config, instance_id, hostname)
    build_seed_iso(output, *payload, force=force)
    ui.result(f"wrote {output}", output=str(output), size=output.stat().st_size)


def _split(value: str, what: str) -> tuple[str, str]:
    left, sep, right = value.partition(":")
    if not sep or not left:
        raise InputError(f"{what} {value!r}: expected the form LEFT:RIGHT")
    return left, right


@click.command(context_settings={"help_option_names": ["-h", "--help"]},
               epilog=examples("imagepipe customize disk.qcow2 -o web.qcow2 --install nginx "
                               "--enable nginx",
                               "imagepipe customize disk.qcow2 --in-place "
                               "--upload motd:/etc/motd --run 'echo hi > /etc/issue'"))
@click.argument("image", type=IMAGE)
@_output_options
@click.option("--install", multiple=True, metavar="PKG", help="Install a package (repeatable).")
@click.option("--run", "commands", multiple=True, metavar="CMD", help="Run a shell command.")
@click.option("--upload", multiple=True, metavar="SRC:DEST", help="Copy a host file in.")
@click.option("--write", multiple=True, metavar="DEST:CONTENT", help="Write a file.")
@click.option("--enable", multiple=True, metavar="SERVICE", help="Enable a systemd service.")
@_accel_option
def customize(
    image: Path,
    output: Path | None,
    in_place: bool,
    force: bool,
    install: tuple[str, ...],
    commands: tuple[str, ...],
    upload: tuple[str, ...],
    write: tuple[str, ...],
    enable: tuple[str, ...],
    accel: str | None,
) -> None:
    """Customize IN in one appliance launch: packages, files, commands, services (in that
    order). A failed command reports its exit code and last lines (exit 1)."""
    from imagepipe.guest.customize import customize as run_customize
    from imagepipe.recipe.model import Customize, FileSpec

    files = []
    for item in upload:
        src, dest = _split(item, "--upload")
        if not Path(src).is_file():
            raise InputError(f"--upload {item!r}: no such file {src}")
        files.append(FileSpec(dest=dest, src=Path(src).resolve()))
    for item in write:
        dest, content = _split(item, "--write")
        files.append(FileSpec(dest=dest, content=content))
    spec = Customize(packages=install, run=commands, files=tuple(files), enable_services=enable)
    if spec.empty:
        raise InputError("nothing to do", "give --install, --run, --upload, --write or --enable")
    rec = _guest_job(
        image, output, in_place, accel, lambda s: run_customize(s, spec).to_json(),
        network=bool(install),
        force=force,
    )
    ui.result(f"customized {rec['output']}", **rec)
