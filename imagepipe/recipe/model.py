"""Frozen dataclasses for a validated recipe (language version 1).

Every stage takes its options from these objects, never from raw dicts, so a typo cannot reach
a stage: the loader (recipe/load.py) and validator (recipe/validate.py) are the only code that
sees YAML. Paths are already resolved against the recipe's directory. Sizes are bytes.
Fields may be added (with defaults); never rename one: recipes and the stage ids depend on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Download:
    """Something fetched by URL and verified by checksum (an image or an ISO)."""

    url: str
    checksum: str | None = None  # "sha256:HEX" / "sha512:HEX"
    checksum_url: str | None = None
    mirrors: tuple[str, ...] = ()
    insecure_no_checksum: bool = False
    max_size: int | None = None  # bytes; None: imagepipe.limits.MAX_DOWNLOAD_BYTES
    allow_private_file: bool = False  # file:// of a file other users cannot read


@dataclass(frozen=True)
class ImageSource(Download):
    format: str | None = None  # qcow2, raw, ... (None: detected from content)


@dataclass(frozen=True)
class IsoInstall:
    kickstart: Path | None = None
    preseed: Path | None = None
    boot_args: str | None = None  # extra kernel command line
    timeout: int = 3600  # seconds to wait for the installer to power off
    memory: int = 2 * 1024**3


@dataclass(frozen=True)
class IsoSource(Download):
    install: IsoInstall = field(default_factory=IsoInstall)


@dataclass(frozen=True)
class AptRepository:
    """An extra apt repository (bootstrap resolve + the image's sources, or the guest's)."""

    url: str
    suite: str
    components: tuple[str, ...] = ("main",)
    key: Path | None = None  # ASCII-armoured public key, inside the recipe directory
    trusted: bool = False  # no signature check (warned about, recorded in the manifest)


@dataclass(frozen=True)
class BootstrapSource:
    distro: str = "debian"  # debian | ubuntu
    suite: str = "bookworm"
    mirror: str | None = None  # None: the host's apt mirror
    packages: tuple[str, ...] = ()
    variant: str = "minbase"
    kernel: str | None = None  # flavour: debian generic|cloud, ubuntu virtual|generic
    # issue 10: updates + security suites, extra repositories
    updates: bool = True  # SUITE-updates and SUITE-security too
    security_mirror: str | None = None  # None: the host's configured security mirror
    repositories: tuple[AptRepository, ...] = ()


@dataclass(frozen=True)
class Source:
    """Exactly one of image / iso / bootstrap is set."""

    image: ImageSource | None = None
    iso: IsoSource | None = None
    bootstrap: BootstrapSource | None = None

    @property
    def kind(self) -> str:
        for name in ("image", "iso", "bootstrap"):
            if getattr(self, name) is not None:
                return name
        raise ValueError("recipe source has no kind")


@dataclass(frozen=True)
class Disk:
    size: int | None = None  # bytes; None keeps the source's size
    firmware: str = "hybrid"  # hybrid | uefi | bios (bootstrapped disks' layout + bootloader)


@dataclass(frozen=True)
class FileSpec:
    dest: str
    src: Path | None = None  # resolved, checked not to escape the recipe dir
    content: str | None = None
    mode: str | None = None  # "0644"
    owner: str | None = None  # "root:root"


@dataclass(frozen=True)
class Customize:
    packages: tuple[str, ...] = ()
    run: tuple[str, ...] = ()
    files: tuple[FileSpec, ...] = ()
    enable_services: tuple[str, ...] = ()
    allow_absolute_paths: bool = False  # let files[].src leave the recipe directory
    repositories: tuple[AptRepository, ...] = ()  # added to the guest's package manager
    update: bool = False  # upgrade every package in the guest (apt, dnf, zypper)

    @property
    def empty(self) -> bool:
        return not (self.packages or self.run or self.files or self.enable_services
                    or self.repositories or self.update)


@dataclass(frozen=True)
class CloudInit:
    user_data: Path | None = None
    meta_data: Path | None = None
    network_config: Path | None = None
    embed: bool = True  # NoCloud seed inside the image
    seed_iso: bool = True  # also produce a cidata seed ISO next to the outputs
    instance_id: str | None = None  # None: a fresh one per build
    hostname: str | None = None  # None: set per VM (a template rule: docs/recipes.md)


@dataclass(frozen=True)
class Seal:
    operations: str = "defaults"
    allow_password: bool = False
    allow_static_ip: bool = False


@dataclass(frozen=True)
class Output:
    format: str  # raw qcow2 vmdk vhd vhdx vdi ova
    preset: str | None = None
    options: tuple[tuple[str, str], ...] = ()  # extra -o KEY=VAL
    compress: bool = False
    name: str | None = None  # file name stem; default: recipe name
    verify: bool = True  # check + compare the written output against the built image
    hardware: str | None = None  # "DISK+NIC" the VM gets (default: the preset's platform's)


@dataclass(frozen=True)
class HttpCheck:
    port: int = 80
    path: str = "/"
    status: int = 200
    contains: str | None = None


@dataclass(frozen=True)
class BootTest:
    timeout: int = 600
    http: tuple[HttpCheck, ...] = ()
    memory: int = 1024**3
    cpus: int = 2
    firmware: tuple[str, ...] | None = None  # bios|uefi|secureboot; None: from the image
    per_output: bool = False  # also boot each output on its platform's (emulated) hardware
    # How the test VM gets its per-VM data: one boot per entry; () = follow the publish targets
    datasource: tuple[str, ...] = ()


@dataclass(frozen=True)
class Test:
    boot: BootTest | None = None


@dataclass(frozen=True)
class LocalPublish:
    dir: Path = Path("templates")
    keep: int | None = None


@dataclass(frozen=True)
class TemplateOptions:
    """The VM an oVirt template describes, with the one set of defaults: the recipe's
    `publish.ovirt` keys, the `publish.ovirt` stage, `imagepipe ovirt make-template` and the
    engine-side `TemplateSpec` all take these fields (and defaults) from here."""

    memory: int = 2 * 1024**3
    cpus: int = 2
    os_type: str = "other_linux"
    network: str = "ovirtmgmt"
    ballooning: bool = True
    seal: bool = False  # imagepipe seals already; the engine's virt-sysprep is optional
    keep: int | None = None
    disk_format: str = "cow"


def template_fields(obj: TemplateOptions) -> dict[str, Any]:
    """The TemplateOptions fields of `obj` as keyword arguments (to build a subclass)."""
    return {f.name: getattr(obj, f.name) for f in fields(TemplateOptions)}


@dataclass(frozen=True)
class OvirtEngineTarget:
    """Where `publish.ovirt` goes (declared before the template fields: the recipe docs list
    the keys in this order)."""

    engine_url: str | None = None  # or OVIRT_URL / profile
    username: str | None = None
    password_file: Path | None = None
    ca_file: Path | None = None
    insecure: bool = False
    profile: str | None = None
    storage_domain: str = ""
    cluster: str = "Default"
    template_name: str | None = None  # default: recipe name + "-" + version


@dataclass(frozen=True)
class OvirtPublish(TemplateOptions, OvirtEngineTarget):
    """`publish.ovirt`: the engine target, then the template's VM (TemplateOptions)."""


@dataclass(frozen=True)
class Publish:
    local: LocalPublish | None = field(default_factory=LocalPublish)
    ovirt: OvirtPublish | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    description: str
    path: Path  # the recipe file
    source: Source
    version: int = 1  # recipe language version
    comment: str = ""
    image_version: str = ""  # the built image's version (after ${date} expansion)
    os_type: str | None = None  # hint for publishers (oVirt os type)
    disk: Disk = field(default_factory=Disk)
    customize: Customize = field(default_factory=Customize)
    cloud_init: CloudInit | None = None
    seal: Seal = field(default_factory=Seal)
    outputs: tuple[Output, ...] = (Output(format="qcow2", preset="kvm"),)
    test: Test = field(default_factory=Test)
    publish: Publish = field(default_factory=Publish)
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """The merged, expanded recipe as plain data (after extends: and variables), for hashing."""

    @property
    def base_dir(self) -> Path:
        return self.path.parent
