"""The recipe's shape, defined once: the model's dataclasses plus a table of per-key facts.

Why one source: the validator (recipe/validate.py), the JSON Schema for editors (`imagepipe
schema`) and the reference (docs/recipes.md) all walk the same `Node` tree, so they cannot
disagree. Field names, Python types and defaults come from imagepipe/recipe/model.py by
introspection; `META` adds what types cannot say (sizes, checksums, allowed values, ranges,
which keys are required, a one-line doc and an example).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagepipe.recipe import model as m

SIZE_PATTERN = r"^\s*[0-9]+(\.[0-9]+)?\s*([KkMmGgTt](i?B)?)?\s*$"
CHECKSUM_PATTERN = r"^(sha256:[0-9a-fA-F]{64}|sha512:[0-9a-fA-F]{128})$"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]*$"
# image_version names a directory in the template store: one path component, no "..", no "/".
VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$"
SKIP = {"Recipe.path", "Recipe.data"}  # set by the loader, not written in YAML
MISSING = dataclasses.MISSING


@dataclass
class Node:
    """One value's shape. kind: object list map str int bool size path file enum."""

    kind: str
    cls: type | None = None
    fields: dict[str, FieldSpec] = field(default_factory=dict)
    item: Node | None = None
    choices: tuple[Any, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    pattern: str | None = None
    nonempty: bool = False
    min_items: int | None = None
    scalar_ok: bool = False  # a list that also accepts one bare item


@dataclass
class FieldSpec:
    name: str
    node: Node
    required: bool
    nullable: bool
    default: Any
    doc: str
    example: Any = None


def _formats() -> tuple[str, ...]:
    from imagepipe import formats

    return tuple(formats.names())


def _presets() -> tuple[str, ...]:
    from imagepipe.convert.presets import PRESETS

    return tuple(PRESETS)


def _hardware() -> tuple[str, ...]:
    from imagepipe.convert.hardware import profiles

    return profiles()


MMDEBSTRAP_VARIANTS = ("extract", "custom", "essential", "apt", "required", "minbase",
                       "buildd", "important", "debootstrap", "standard")

# "Class.field" -> facts the type cannot carry. Keys: doc, kind, required, choices, min, max,
# pattern, nonempty, min_items, example.
META: dict[str, dict[str, Any]] = {
    "Recipe.version": {"doc": "Recipe language version.", "choices": (1,)},
    "Recipe.name": {"doc": "Image name, used for output file names and the template store "
                    "(default: the recipe file's name without .yaml).", "pattern": NAME_PATTERN,
                    "required": False, "example": "httpd"},
    "Recipe.description": {"doc": "What the image is; shown on the template. Required.",
                           "nonempty": True, "example": "Apache httpd on Debian 12, DHCP, sealed"},
    "Recipe.comment": {"doc": "Free-form comment carried to the template (oVirt comment).",
                       "example": "built nightly"},
    "Recipe.image_version": {"doc": "Version of the built image; `${version}` expands to it. "
                             "Empty: the template store uses a UTC timestamp. One path "
                             "component: letters, digits, '.', '_', '+', '~', '-'.",
                             "example": "1.0.${date}"},  # VERSION_PATTERN: rules.py
    "Recipe.os_type": {"doc": "OS type hint for publishers (oVirt os type).",
                       "example": "debian_9"},
    "Recipe.source": {"doc": "Where the base system comes from: exactly one of image, iso, "
                      "bootstrap.", "required": True},
    "Recipe.disk": {"doc": "The disk of the built image."},
    "Recipe.customize": {"doc": "Changes made inside the image before sealing."},
    "Recipe.cloud_init": {"doc": "The cloud-config the image carries (validated by "
                          "cloud-init's own schema)."},
    "Recipe.seal": {"doc": "Sealing: remove per-instance data so clones are unique."},
    "Recipe.outputs": {"doc": "Disk images to write (one convert stage each).", "min_items": 1},
    "Recipe.test": {"doc": "Tests run on the sealed image before publishing."},
    "Recipe.publish": {"doc": "Where finished images go."},
    "Download.url": {"doc": "http(s):// or file:// URL.", "pattern": r"^(https?|file)://",
                     "required": True, "example": "https://example.org/disk.qcow2"},
    "Download.checksum": {"doc": "Expected digest, `sha256:HEX` or `sha512:HEX`.",
                          "kind": "checksum", "example": "sha256:" + "0" * 64},
    "Download.checksum_url": {"doc": "URL of a checksum file (GNU or BSD format).",
                              "pattern": r"^(https?|file)://"},
    "Download.mirrors": {"doc": "More URLs of the same file, tried in order."},
    "Download.insecure_no_checksum": {"doc": "Allow a download with no checksum (warned "
                                      "about in the manifest)."},
    "Download.max_size": {"doc": "Refuse a download larger than this (Content-Length, or a "
                          "body that keeps coming); default 64G.", "kind": "size",
                          "example": "4G"},
    "Download.allow_private_file": {"doc": "Allow a file:// source that other users cannot "
                                    "read (its bytes end up in world-readable outputs)."},
    "ImageSource.format": {"doc": "Disk format of the download (default: from its content).",
                           "choices": "formats"},
    "IsoInstall.kickstart": {"doc": "Kickstart file added to the ISO (relative to the recipe).",
                             "kind": "file"},
    "IsoInstall.preseed": {"doc": "Debian preseed file added to the ISO.", "kind": "file"},
    "IsoInstall.boot_args": {"doc": "Extra kernel command line for the installer."},
    "IsoInstall.timeout": {"doc": "Seconds to wait for the installer to power off.", "min": 1},
    "IsoInstall.memory": {"doc": "Installer VM memory.", "kind": "size", "example": "2G"},
    "IsoSource.install": {"doc": "Unattended installation settings."},
    "BootstrapSource.distro": {"doc": "Distribution.", "choices": ("debian", "ubuntu")},
    "BootstrapSource.suite": {"doc": "Release codename.", "example": "bookworm"},
    "BootstrapSource.mirror": {"doc": "Package mirror (default: the host's apt mirror).",
                               "pattern": r"^(https?|file)://"},
    "BootstrapSource.packages": {"doc": "Packages installed into the root filesystem.",
                                 "example": ["linux-image-amd64", "openssh-server"]},
    "BootstrapSource.variant": {"doc": "mmdebstrap variant.", "choices": MMDEBSTRAP_VARIANTS},
    "BootstrapSource.kernel": {"doc": "Kernel flavour, replacing the default kernel (Debian: "
                               "generic = linux-image-amd64, cloud = linux-image-cloud-amd64; "
                               "Ubuntu: virtual, generic). Default: the linux-image-* in "
                               "packages, else generic (Ubuntu: virtual).",
                               "choices": ("generic", "cloud", "virtual"), "example": "cloud"},
    "BootstrapSource.updates": {"doc": "Also use SUITE-updates and SUITE-security (resolve, "
                                "bootstrap and the image's apt sources)."},
    "BootstrapSource.security_mirror": {"doc": "Security mirror (default: the host's configured "
                                        "one, else the distribution's).",
                                        "pattern": r"^(https?|file)://"},
    "BootstrapSource.repositories": {"doc": "Extra apt repositories: resolved, installed from "
                                     "and listed in the image's apt sources."},
    "AptRepository.url": {"doc": "Repository URL.", "pattern": r"^(https?|file)://",
                          "required": True, "example": "http://apt.example.org/debian"},
    "AptRepository.suite": {"doc": "Suite (distribution) name.", "required": True,
                            "nonempty": True, "example": "stable"},
    "AptRepository.components": {"doc": "Components.", "min_items": 1, "example": ["main"]},
    "AptRepository.key": {"doc": "ASCII-armoured public key file (relative to the recipe, "
                          "inside its directory); installed under /etc/apt/keyrings/.",
                          "kind": "file", "example": "repo/key.asc"},
    "AptRepository.trusted": {"doc": "No signature check (warned about in the manifest); "
                              "only without key."},
    "Source.image": {"doc": "A cloud image to start from."},
    "Source.iso": {"doc": "An installer ISO run unattended."},
    "Source.bootstrap": {"doc": "Build the root filesystem from packages (mmdebstrap)."},
    "Disk.firmware": {"doc": "Boot firmware a bootstrapped disk supports: hybrid (GPT, GRUB "
                      "for BIOS and signed shim + GRUB for UEFI/Secure Boot), uefi (GPT + ESP "
                      "only) or bios (MBR + extlinux). Other sources keep their own layout.",
                      "choices": ("hybrid", "uefi", "bios")},
    "Disk.size": {"doc": "Virtual disk size (K/M/G/T, binary units); empty keeps the source's.",
                  "kind": "size", "example": "8G"},
    "FileSpec.dest": {"doc": "Absolute path in the guest.", "required": True, "pattern": r"^/",
                      "example": "/etc/motd"},
    "FileSpec.src": {"doc": "Local file to copy (relative to the recipe; must stay inside its "
                     "directory unless customize.allow_absolute_paths).", "kind": "file"},
    "FileSpec.content": {"doc": "Text to write instead of src."},
    "FileSpec.mode": {"doc": "Octal mode, quoted.", "pattern": r"^0?[0-7]{3,4}$",
                      "example": "0644"},
    "FileSpec.owner": {"doc": "user:group.", "pattern": r"^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)?$",
                       "example": "root:root"},
    "Customize.packages": {"doc": "Packages installed with the guest's package manager."},
    "Customize.run": {"doc": "Shell commands run in the guest, in order."},
    "Customize.files": {"doc": "Files copied or written into the guest."},
    "Customize.enable_services": {"doc": "systemd units to enable."},
    "Customize.allow_absolute_paths": {"doc": "Allow files[].src outside the recipe directory."},
    "Customize.repositories": {"doc": "Extra package repositories added to the guest before "
                               "packages are installed (apt: deb822 + key; dnf/zypper: .repo)."},
    "Customize.update": {"doc": "Upgrade every package in the guest with its package manager "
                         "(apt, dnf, zypper); recorded in the manifest."},
    "CloudInit.user_data": {"doc": "The cloud-config (checked before anything runs).",
                            "kind": "file", "example": "httpd/user-data.yaml"},
    "CloudInit.meta_data": {"doc": "NoCloud meta-data (default: a fresh instance-id).",
                            "kind": "file"},
    "CloudInit.network_config": {"doc": "NoCloud network-config.", "kind": "file"},
    "CloudInit.embed": {"doc": "Embed a NoCloud seed in the image."},
    "CloudInit.seed_iso": {"doc": "Also write a cidata seed ISO next to the outputs."},
    "CloudInit.instance_id": {"doc": "Fixed instance-id (default: new per build)."},
    "CloudInit.hostname": {"doc": "local-hostname (default: set per VM)."},
    "Seal.operations": {"doc": "Operation selection, e.g. `defaults,-ssh-hostkeys,+user-account`"
                        " (`imagepipe seal --list-operations`)."},
    "Seal.allow_password": {"doc": "Allow a usable password hash in the template."},
    "Seal.allow_static_ip": {"doc": "Allow a static IP in the template's network config."},
    "Output.format": {"doc": "Disk format (default: the preset's).", "choices": "formats",
                      "required": False},
    "Output.preset": {"doc": "Named, verified output settings (`imagepipe convert "
                      "--list-presets`).", "choices": "presets", "example": "vsphere"},
    "Output.options": {"doc": "Extra qemu-img create options, a mapping KEY: VALUE (what "
                              "`qemu-img -o` and `imagepipe convert --options` take).",
                       "kind": "map",
                       "example": {"cluster_size": "65536"}},
    "Output.compress": {"doc": "Compress (qcow2 zstd, vmdk streamOptimized)."},
    "Output.name": {"doc": "File name stem (default: the recipe name).",
                    "pattern": NAME_PATTERN},
    "Output.verify": {"doc": "Check and compare the written output against the built image."},
    "Output.hardware": {"doc": "Virtual disk controller + NIC of the VM this output is for, "
                        "when not the platform's default (the preset's first): the kernel must "
                        "drive them (checked by `imagepipe validate`; `imagepipe convert "
                        "--list-presets` shows each preset's choices).", "choices": "hardware",
                        "example": "virtio-scsi+virtio-net"},
    "HttpCheck.port": {"doc": "Guest TCP port.", "min": 1, "max": 65535},
    "HttpCheck.path": {"doc": "URL path.", "pattern": r"^/"},
    "HttpCheck.status": {"doc": "Expected HTTP status.", "min": 100, "max": 599},
    "HttpCheck.contains": {"doc": "Text the body must contain."},
    "BootTest.timeout": {"doc": "Seconds until every check must pass.", "min": 1},
    "BootTest.http": {"doc": "HTTP checks through forwarded ports.",
                      "example": [{"port": 80, "path": "/", "status": 200}]},
    "BootTest.memory": {"doc": "Test VM memory.", "kind": "size"},
    "BootTest.cpus": {"doc": "Test VM CPUs.", "min": 1, "max": 64},
    "BootTest.firmware": {"doc": "Firmware to boot the test VM with, once each: bios (SeaBIOS), "
                          "uefi (OVMF), secureboot (OVMF, Microsoft keys, enforced). Default: "
                          "one boot, uefi for a disk.firmware: uefi disk, else bios.",
                          "item_choices": ("bios", "uefi", "secureboot"), "scalar_ok": True,
                          "example": ["bios", "secureboot"]},
    "BootTest.per_output": {"doc": "Also boot every output on its platform's virtual hardware "
                            "as far as qemu emulates it (VirtualBox AHCI + e1000, vSphere PVSCSI "
                            "+ VMXNET3, virtio); Hyper-V/Azure outputs: their initramfs must "
                            "hold hv_vmbus, hv_storvsc, hv_netvsc."},
    "BootTest.datasource": {"doc": "How the test VM gets its per-VM data, one boot each: "
                            "`nocloud` (cidata ISO), `configdrive` (oVirt's config drive), "
                            "`none` (the baked seed). Default: configdrive when publish.ovirt "
                            "is set, else nocloud.", "scalar_ok": True,
                            "item_choices": ("nocloud", "configdrive", "none"),
                            "example": ["configdrive", "none"]},
    "Test.boot": {"doc": "Boot the image with its seed and check it."},
    "LocalPublish.dir": {"doc": "Template store directory (relative paths: to the recipe; "
                         "default: ./templates of the current directory)."},
    "LocalPublish.keep": {"doc": "Keep only the newest N versions.", "min": 1},
    "OvirtPublish.engine_url": {"doc": "Engine URL (or OVIRT_URL / profile).",
                                "pattern": r"^https://"},
    "OvirtPublish.username": {"doc": "Engine user, e.g. admin@internal."},
    "OvirtPublish.password_file": {"doc": "File holding the password (never the password)."},
    "OvirtPublish.ca_file": {"doc": "Engine CA certificate."},
    "OvirtPublish.insecure": {"doc": "Skip TLS verification (explicit only)."},
    "OvirtPublish.profile": {"doc": "Profile in ~/.config/imagepipe/ovirt.yaml."},
    "OvirtPublish.storage_domain": {"doc": "Storage domain for the disk.", "required": True,
                                    "nonempty": True, "example": "data"},
    "OvirtPublish.cluster": {"doc": "Cluster of the template."},
    "OvirtPublish.template_name": {"doc": "Base template name (default: NAME); each publish "
                                   "is a new version named by image_version. With ${date} in "
                                   "it: one template per image instead.",
                                   "example": "httpd"},
    "OvirtPublish.memory": {"doc": "Template memory.", "kind": "size"},
    "OvirtPublish.cpus": {"doc": "Template CPUs.", "min": 1, "max": 512},
    "OvirtPublish.os_type": {"doc": "oVirt OS type."},
    "OvirtPublish.network": {"doc": "vNIC profile network."},
    "OvirtPublish.ballooning": {"doc": "Memory ballooning."},
    "OvirtPublish.seal": {"doc": "Let the engine seal too (virt-sysprep)."},
    "OvirtPublish.keep": {"doc": "Keep the newest N versions; older ones no VM uses are "
                          "removed (the base template stays while versions exist).", "min": 1},
    "OvirtPublish.disk_format": {"doc": "Disk format on the storage domain.",
                                 "choices": ("cow", "raw")},
    "Publish.local": {"doc": "The local template store (on by default; null turns it off)."},
    "Publish.ovirt": {"doc": "An oVirt engine."},
}
EXTENDS_DOC = ("A base recipe (path relative to this file) deep-merged under this one: "
               "mappings merge, lists and scalars replace. Chains allowed.")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(tp))
    return tp, False


def _node_for(tp: Any, meta: dict[str, Any]) -> Node:
    kind = meta.get("kind")
    choices = meta.get("choices", ())
    if choices == "formats":
        choices = _formats()
    elif choices == "presets":
        choices = _presets()
    elif choices == "hardware":
        choices = _hardware()
    common = {"minimum": meta.get("min"), "maximum": meta.get("max"),
              "pattern": meta.get("pattern"), "nonempty": meta.get("nonempty", False),
              "min_items": meta.get("min_items")}
    if kind in ("size", "checksum", "file", "map"):
        return Node(kind, **common)
    if dataclasses.is_dataclass(tp):
        return object_node(tp)  # type: ignore[arg-type]
    if typing.get_origin(tp) is tuple:
        item_meta = {"choices": meta["item_choices"]} if "item_choices" in meta else {}
        return Node("list", item=_node_for(typing.get_args(tp)[0], item_meta),
                    scalar_ok=meta.get("scalar_ok", False), **common)
    if choices:
        return Node("enum", choices=tuple(choices), **common)
    simple = {str: "str", int: "int", bool: "bool", Path: "path"}
    if tp in simple:
        return Node(simple[tp], **common)
    raise TypeError(f"no recipe kind for {tp!r}")


@functools.cache
def object_node(cls: type) -> Node:
    """The Node of a model dataclass, its fields in declaration order."""
    hints = typing.get_type_hints(cls, vars(m))
    node = Node("object", cls=cls)
    for f in dataclasses.fields(cls):
        key = f"{cls.__name__}.{f.name}"
        owner = next((c.__name__ for c in cls.__mro__ if f"{c.__name__}.{f.name}" in META), None)
        if key in SKIP:
            continue
        meta = META.get(f"{owner}.{f.name}", {}) if owner else {}
        tp, nullable = _unwrap_optional(hints[f.name])
        if f.default is not MISSING:
            default: Any = f.default
        elif f.default_factory is not MISSING:
            default = f.default_factory()
        else:
            default = MISSING
        required = meta.get("required", default is MISSING)
        node.fields[f.name] = FieldSpec(f.name, _node_for(tp, meta), required, nullable,
                                        default, meta.get("doc", ""), meta.get("example"))
    return node


def recipe_node() -> Node:
    return object_node(m.Recipe)
