"""User-data validation: catch a broken cloud-config before a template ships.

Why our own layer on top of cloud-init's validator: cloud-init (22.4, Debian bookworm) accepts
unknown top-level keys such as `runcmdd:` and answers the seed's broken script (docs/recipes.md:
`runcmd` without its colon) with the same "is not of type 'object'" line ~50 times and no line
number. We parse
the YAML ourselves (with marks, so every schema path maps back to FILE:LINE:COL), detect the
user-data kind from its first line, check top-level keys against the schema's properties with a
"did you mean" hint, and only then ask cloud-init's own schema (loaded lazily, once) for types.
"""

from __future__ import annotations

import difflib
import functools
import warnings
from pathlib import Path
from typing import Any

from imagepipe.errors import CloudConfigError, Problem

# Keys cloud-init reads from a cloud-config that its JSON schema does not describe (merging,
# datasource and logging settings); accepted without a "did you mean" error.
EXTRA_KEYS = frozenset(
    {
        "merge_how",
        "merge_type",
        "datasource",
        "datasource_list",
        "system_info",
        "output",
        "network",
        "log_cfg",
        "syslog_fix_perms",
        "manual_cache_clean",
        "def_log_file",
        "disable_vmware_customization",
        "preserve_sshd_config",
        "users_groups",
        "mount_setup",
        "_log",
        "instance-id",
        "local-hostname",
    }
)

MIME_HEADERS = ("content-type:", "mime-version:")
SCRIPT_PREFIXES = {
    "#!": "shell script",
    "#include": "include file",
    "#cloud-boothook": "boothook",
    "#part-handler": "part handler",
    "#cloud-config-archive": "cloud-config archive",
    "#cloud-config-jsonp": "JSON patch",
}


def detect_kind(text: str) -> str:
    """ "cloud-config", "mime", "shell script", ... or "unknown", from the first line."""
    first = text.split("\n", 1)[0].strip()
    if first.startswith("#cloud-config") and not first.startswith(
        ("#cloud-config-archive", "#cloud-config-jsonp")
    ):
        return "cloud-config"
    if first.lower().startswith(MIME_HEADERS):
        return "mime"
    for prefix, kind in SCRIPT_PREFIXES.items():
        if first.startswith(prefix):
            return kind
    return "unknown"


# What to do when cloud-init's validator is missing: a cloud-config is never passed unchecked.
VALIDATOR_HINT = ("apt-get install cloud-init, and create the venv with "
                  "--system-site-packages; make setup does both")


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any] | None:
    """cloud-init's schema (~0.45 s to load): once per process. None when cloud-init's Python
    package is not importable; the caller reports that as a problem (see VALIDATOR_HINT)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cloudinit.config.schema import get_schema
        return dict(get_schema())
    except ImportError:
        return None


def known_top_level_keys(schema: dict[str, Any]) -> set[str]:
    """Every top-level property named by the schema (its allOf of per-module $defs)."""
    keys: set[str] = set(schema.get("properties", {}))
    defs = schema.get("$defs", {})
    for item in schema.get("allOf", []):
        ref = item.get("$ref")
        target = defs.get(ref.rsplit("/", 1)[-1], {}) if ref else item
        keys |= set(target.get("properties", {}))
    return keys


def validate_user_data(path: Path) -> list[Problem]:
    """Every problem in the user-data at `path` (empty list = fine). Never raises on bad input."""
    from imagepipe.limits import MAX_USER_DATA_BYTES, human

    name = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_USER_DATA_BYTES:
            return _whole_file(name, f"user-data is {human(size)}, more than the "
                               f"{human(MAX_USER_DATA_BYTES)} limit",
                               "install large files with customize.files or packages instead")
        raw = path.read_bytes()
    except OSError as e:
        return _whole_file(name, f"cannot read user-data: {e.strerror}",
                           "check the path in cloud_init.user_data")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return _whole_file(name, f"user-data is not UTF-8 text (byte {e.start})",
                           "gzip-compressed user-data is not supported here; give the plain file")
    return validate_user_data_text(text, name)


def _whole_file(name: str, message: str, hint: str) -> list[Problem]:
    """One problem about the user-data as a whole (no line to point at)."""
    return [Problem(name, None, None, "", message, hint)]


def validate_user_data_text(text: str, name: str = "<user-data>") -> list[Problem]:
    kind = detect_kind(text)
    if kind == "cloud-config":
        return _validate_cloud_config(text, name)
    if kind in ("shell script", "mime", "boothook"):
        return []  # valid user-data that cloud-init runs as-is; nothing to schema-check
    if kind != "unknown":
        return [
            Problem(
                name,
                1,
                1,
                "",
                f"user-data of kind '{kind}' is not supported",
                "use '#cloud-config', a '#!' script, or MIME multipart",
            )
        ]
    hint = "make '#cloud-config' the very first line"
    first = text.split("\n", 1)[0]
    if (
        first.strip().lower().replace(" ", "") in ("#cloud-config", "#cloudconfig")
        or "cloud-config" in first
    ):
        hint = f"the first line is {first!r}; it must be exactly '#cloud-config'"
    return [
        Problem(
            name,
            1,
            1,
            "",
            "user-data does not start with '#cloud-config' "
            "(nor '#!' or a MIME header), so cloud-init would ignore it",
            hint,
        )
    ]


def _validate_cloud_config(text: str, name: str) -> list[Problem]:
    import yaml

    schema = _schema()
    if schema is None:
        return _whole_file(name, "cannot check this cloud-config: cloud-init's schema "
                           "validator (Python module cloudinit) is not installed", VALIDATOR_HINT)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        msg = " ".join(x for x in (e.context, e.problem) if x) or "invalid YAML"
        return [
            Problem(
                name,
                line,
                col,
                "",
                f"YAML syntax error: {msg}",
                "check indentation and the ':' after each key",
            )
        ]
    except yaml.YAMLError as e:
        return [Problem(name, None, None, "", f"YAML syntax error: {e}")]
    if data is None:
        return []  # a bare '#cloud-config' header is valid (does nothing)
    if not isinstance(data, dict):
        return [_not_a_mapping(node, data, name)]
    problems = _check_keys(node, schema, name)
    problems += _check_schema(node, data, schema, name)
    return problems


def _not_a_mapping(node: Any, data: Any, name: str) -> Problem:
    """ONE message for a top level that is not a mapping (e.g. `runcmd` without its colon)."""
    line = node.start_mark.line + 1 if node is not None else 1
    col = node.start_mark.column + 1 if node is not None else 1
    hint = "write each top-level key as 'key:' followed by its value"
    if isinstance(data, str):
        word = data.split(None, 1)[0] if data.split() else data
        word = word.rstrip(":")
        if data.split() and word.isidentifier():
            hint = f"'{word}' needs a colon: write '{word}:' and put its items below it"
    kind = type(data).__name__ if not isinstance(data, str) else "a plain string"
    return Problem(
        name,
        line,
        col,
        "",
        f"the top level must be a mapping of keys, but it parses as {kind}",
        hint,
    )


def _check_keys(node: Any, schema: dict[str, Any], name: str) -> list[Problem]:
    known = known_top_level_keys(schema) | EXTRA_KEYS
    problems = []
    for key_node, _ in node.value:
        key = key_node.value
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "see the cloud-init module docs"
        problems.append(
            Problem(
                name,
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
                str(key),
                "unknown cloud-config key",
                hint,
            )
        )
    return problems


def _check_schema(node: Any, data: dict[str, Any], schema: dict[str, Any],
                  name: str) -> list[Problem]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from cloudinit.config.schema import SchemaValidationError, validate_cloudconfig_schema
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # jsonschema deprecation noise from cloud-init
            validate_cloudconfig_schema(data, schema, strict=True, log_details=False)
    except SchemaValidationError as e:
        seen: set[tuple[str, str]] = set()
        problems = []
        for err in e.schema_errors:
            path, msg = str(err[0]), str(err[1])
            if (path, msg) in seen:
                continue
            seen.add((path, msg))
            line, col = locate(node, path)
            problems.append(Problem(name, line, col, path or "(top level)", msg))
        return problems
    return []


def locate(root: Any, dotted: str) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the node at a schema path like `runcmd.0` or `users.1.name`."""
    import yaml

    node = root
    for part in [p for p in dotted.split(".") if p]:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if str(k.value) == part), None)
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            nxt = node.value[int(part)]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
    if node is None:
        return None, None
    return node.start_mark.line + 1, node.start_mark.column + 1


def check_user_data(path: Path) -> str:
    """Validate and return the user-data text, or raise CloudConfigError (exit 2) with every
    problem. Used by inject/seed-iso before anything touches an image."""
    problems = validate_user_data(path)
    if problems:
        raise CloudConfigError(problems)
    return path.read_text(encoding="utf-8")
