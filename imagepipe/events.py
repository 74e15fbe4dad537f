"""The machine-readable side of imagepipe's output: the settings the CLI chooses once, and
`emit`, which writes one JSON event per line on stdout in --json mode.

Why apart from ui.py: the status board (imagepipe.activity) sends `phase` and `heartbeat`
events and reads these settings, while ui.py clears that board before it prints a line. With
the events here, the board needs nothing from ui, and the two do not import each other.
`imagepipe.ui` offers both names too (`ui.emit`, `ui.settings`): callers need only ui.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class _Settings:
    json: bool = False
    verbose: int = 0
    debug: bool = False
    last_emit: float = 0.0  # monotonic time of the last --json event (for the heartbeat)


settings = _Settings()


def emit(event: str, **data: Any) -> None:
    """Write one machine-readable event (only in --json mode)."""
    if settings.json:
        from imagepipe import redact

        line = json.dumps({"event": event, "time": round(time.time(), 3), **data}, default=str)
        sys.stdout.write(redact.urls(line) + "\n")  # no user:pw@ in any event
        sys.stdout.flush()
        settings.last_emit = time.monotonic()
