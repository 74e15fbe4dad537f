"""Credentials inside URLs (`https://user:secret@host/...`) never leave the process.

Why a text filter at the sinks, not only at the recipe: the URL travels through fetch records,
artifact.json, stage logs, the manifest, --json events and error messages (a requests
exception repeats the URL). Every sink passes its text through `urls` (or structured data
through `deep`), so one forgotten path cannot leak `user:pw@` into a world-readable file.
The password is replaced; the user name stays visible as `user:***@` only when no password
was given (`user@`), so the audit still shows which account was used.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/\s@:?#]*)"
                       r"(?::[^/\s@?#]*)?@")


def urls(text: str) -> str:
    """`text` with the user info of every URL in it masked."""
    if "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def deep(value: Any) -> Any:
    """`urls` applied to every string in nested mappings/lists (keys included)."""
    if isinstance(value, str):
        return urls(value)
    if isinstance(value, Mapping):
        return {deep(k): deep(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [deep(v) for v in value]
    return value


class LogFilter(logging.Filter):
    """Masks URL credentials in a log record's final message (stage logs such as fetch.log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        if "@" in message:
            record.msg, record.args = urls(message), None
        return True
