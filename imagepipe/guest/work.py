"""All guest work of a build in ONE appliance launch: customize, inject, seal, lint, verify,
and last the package inventory (read from the sealed guest).

Why this order: customization first, then the seed, then the seal (last, so nothing can
regenerate what it removed), then lints and verification reading the sealed guest back. The
user-data is validated before the appliance starts, so a broken cloud-config costs no launch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imagepipe import ui
from imagepipe.errors import InputError
from imagepipe.recipe.model import CloudInit, Recipe
from imagepipe.tools.guestfs import GuestSession

if TYPE_CHECKING:
    from imagepipe.guest.customize import CustomizeResult
    from imagepipe.guest.seal.run import SealCheck


def seed_payload(ci: CloudInit, instance_id: str) -> tuple[bytes, bytes, bytes | None]:
    """(user-data, meta-data, network-config) for a recipe's cloud_init, user-data validated."""
    import yaml

    from imagepipe.cloudinit.seed import make_meta_data
    from imagepipe.cloudinit.validate import check_user_data

    if ci.user_data is None:
        raise InputError("cloud_init: user_data is required to build a seed")
    user_data = check_user_data(ci.user_data).encode()
    if ci.meta_data is not None:
        meta = yaml.safe_load(ci.meta_data.read_text()) or {}
        if not isinstance(meta, dict):
            raise InputError(f"{ci.meta_data}: meta-data must be a YAML mapping")
        meta.setdefault("instance-id", ci.instance_id or instance_id)
        if ci.hostname:
            meta.setdefault("local-hostname", ci.hostname)
        meta_data = yaml.safe_dump(meta, sort_keys=False).encode()
    else:
        meta_data = make_meta_data(ci.instance_id or instance_id, ci.hostname)
    net = ci.network_config.read_bytes() if ci.network_config is not None else None
    return user_data, meta_data, net


@dataclass
class GuestWork:
    """Everything one appliance launch did to an image, in the order it happened; `to_json()`
    is the guest stage's manifest record."""

    guest: dict[str, Any]
    customize: CustomizeResult
    cloud_init: dict[str, Any] | None
    sealed: SealCheck
    guest_agent: str | None
    inventory: dict[str, Any]
    lean: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"guest": self.guest, "customize": self.customize.to_json()}
        if self.cloud_init is not None:
            record["cloud_init"] = self.cloud_init
        record.update(self.sealed.to_json())
        record.update(guest_agent=self.guest_agent, inventory=self.inventory, lean=self.lean)
        return record


def run_guest_work(
    image: Path,
    recipe: Recipe,
    *,
    instance_id: str,
    session: GuestSession | None = None,
    fmt: str | None = None,
) -> GuestWork:
    """Customize + inject + seal + lints + verification + inventory on `image` (modified in
    place: hand in a copy)."""
    from imagepipe.cloudinit.seed import inject_seed
    from imagepipe.guest.customize import customize
    from imagepipe.guest.lean import clean_and_trim
    from imagepipe.guest.seal import select
    from imagepipe.guest.seal.run import seal_and_check
    from imagepipe.inventory.packages import read_packages

    ci = recipe.cloud_init
    payload = seed_payload(ci, instance_id) if ci is not None and ci.embed else None
    select(recipe.seal.operations)  # a typo in the selection fails before the launch
    with ExitStack() as stack:
        if session is None:
            ui.phase("launching the appliance")
            session = stack.enter_context(
                GuestSession(image, fmt=fmt, network=bool(recipe.customize.packages
                                                         or recipe.customize.update))
            )
        assert session.info is not None
        guest = session.info.to_dict()
        customized = customize(session, recipe.customize)
        seeded = None
        if payload is not None:
            ui.phase("injecting the cloud-init seed")
            seeded = inject_seed(session, *payload)
            seeded["instance_id"] = _instance_id(payload[1])
        checked = seal_and_check(
            session,
            recipe.seal.operations,
            allow_static_ip=recipe.seal.allow_static_ip,
            allow_password=recipe.seal.allow_password,
        )
        if ci is not None:  # the recipe validator already failed what was not allowed
            from imagepipe.cloudinit.lints import lint_record

            checked.lints.cloud_config = lint_record(ci.user_data, ci.network_config)
        agent = guest_agent(session)
        # From the sealed guest: what VMs made from this image will really run.
        inventory = read_packages(session)
        lean = clean_and_trim(session)  # last: nothing writes after the trim
        ui.phase("closing the appliance")
    return GuestWork(guest, customized, seeded, checked, agent, inventory, lean)


GUEST_AGENTS = ("/usr/sbin/qemu-ga", "/usr/bin/qemu-ga")


def guest_agent(session: GuestSession) -> str | None:
    """The image's qemu guest agent (oVirt reads a VM's IPs and FQDN through it), or None."""
    return next((p for p in GUEST_AGENTS if session.is_file(p)), None)


def _instance_id(meta_data: bytes) -> str:
    import yaml

    return str((yaml.safe_load(meta_data) or {}).get("instance-id", ""))


def image_format(path: Path) -> str:
    """The format of an image guest work may open: probed like `convert` does (backing files,
    external data files and foreign extents refused, exit 2)."""
    from imagepipe.tools.guestfs import probed_format

    fmt = probed_format(path, None)
    if fmt not in ("raw", "qcow2"):
        raise InputError(
            f"{path}: guest work needs a raw or qcow2 image, not {fmt}",
            f"convert it first: imagepipe convert {path} --format qcow2",
        )
    return str(fmt)


@contextmanager
def working_copy(src: Path, out: Path | None, *, in_place: bool = False,
                 force: bool = False) -> Iterator[Path]:
    """Yield the path to modify: `src` itself (--in-place) or a temp copy next to `out` that is
    fsynced and renamed onto `out` only if the work succeeds (never a half-written output).
    An existing `out` is replaced only with `force` (the CLI's --force)."""
    if in_place:
        yield src
        return
    if out is None:
        raise InputError("give -o OUT (the input is never modified) or --in-place")
    if out.resolve() == src.resolve():
        raise InputError(f"-o {out} is the input image", "use --in-place to modify it")
    from imagepipe.durable import refuse_overwrite

    refuse_overwrite(out, force)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    from imagepipe.durable import refuse_special
    from imagepipe.tools.guestfs import probed_format

    probed_format(src, None)  # never copy (and then open) an image that names host files
    refuse_special(out)
    try:
        from imagepipe.durable import publish
        from imagepipe.tools.run import run

        run(["cp", "--sparse=always", "--reflink=auto", str(src), str(tmp)])
        yield tmp
        publish(tmp, out, force=force)
    finally:
        if tmp.exists():
            tmp.unlink()


def copy_to_qcow2(src: Path, src_fmt: str, dst: Path) -> None:
    """A standalone qcow2 copy of the input (flattened: no backing file; the input is never
    touched)."""
    from imagepipe.tools.run import run

    run(["qemu-img", "convert", "-f", src_fmt, "-O", "qcow2", str(src), str(dst)])
