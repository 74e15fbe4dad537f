"""The broker: where its URL comes from, how it is shown, and the Celery app built on it.

Why the password never comes from argv: a command line is visible to every user of the
machine (`ps`, /proc/PID/cmdline) and lands in shell history and unit files. `--broker` may
therefore only carry a URL without a password; one with a password must come from the
IMAGEPIPE_BROKER environment variable or a `--broker-file` readable by its owner only. Every
URL shown or logged goes through `redact()`.

Why these Celery settings: JSON only (pickle runs code on the worker), late acknowledgement
with one message reserved at a time (a killed worker never takes more than the build it was
running with it), and short connection timeouts with few retries (a broker that is down is
an exit 1 within seconds, never a hang).
"""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from imagepipe.errors import ImagepipeError, InputError
from imagepipe.farm import BROKER_ENV

CONNECT_TIMEOUT = 5.0  # seconds for one connection attempt to the broker
# Messages reserved but not acknowledged come back to the queue after this long (the kombu
# Redis transport's backstop); the liveness records in imagepipe.farm.records find a lost
# worker far sooner (see docs/farm.md).
VISIBILITY_TIMEOUT = 900


class BrokerError(ImagepipeError):
    """The broker cannot be reached or went away (exit 1)."""


def redact(url: str) -> str:
    """The URL with any password replaced by `***`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable broker URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query,
                       parts.fragment))


def resolve(url: str | None, from_argv: bool, broker_file: Path | None) -> str:
    """The broker URL from --broker, IMAGEPIPE_BROKER or --broker-file (exit 2 if unsafe)."""
    if broker_file is not None:
        if url and from_argv:
            raise InputError("give --broker or --broker-file, not both")
        url = _read_file(broker_file)
    if not url:
        raise InputError("no broker given",
                         f"--broker redis://HOST:6379/0, or set {BROKER_ENV}, or "
                         "--broker-file FILE")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise InputError(f"broker {redact(url)}: only Redis brokers are supported "
                         "(redis:// or rediss://)")
    if from_argv and parts.password is not None:
        raise InputError("the broker URL on the command line carries a password",
                         f"anyone on this machine can read a command line: put the URL in "
                         f"{BROKER_ENV} or in a file given with --broker-file (mode 0600)")
    return url


def _read_file(path: Path) -> str:
    try:
        st = path.stat()
        text = path.read_text().strip()
    except OSError as exc:
        raise InputError(f"cannot read --broker-file {path}: {exc.strerror}") from None
    if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise InputError(f"--broker-file {path} is readable by others "
                         f"(mode {stat.S_IMODE(st.st_mode):04o})", f"chmod 600 {path}")
    if not text or "\n" in text:
        raise InputError(f"--broker-file {path} must hold exactly one line: the broker URL")
    return text


def redis_client(url: str) -> Any:
    """A redis-py client with short timeouts: a dead broker fails fast, never hangs."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                socket_timeout=10, health_check_interval=10,
                                decode_responses=True)


def ping(url: str) -> Any:
    """A connected client, or BrokerError saying what is wrong and what to do."""
    import redis

    client = redis_client(url)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as exc:
        raise BrokerError(f"broker {redact(url)} refused the password: {exc}",
                          f"check the URL in {BROKER_ENV} or --broker-file") from None
    except redis.exceptions.RedisError as exc:
        raise BrokerError(f"cannot reach the broker {redact(url)}: {exc}",
                          "is redis-server running and reachable from here?") from None
    return client


def make_app(url: str) -> Any:
    """The Celery app (JSON only, late acks, fast-failing connections)."""
    from celery import Celery

    app = Celery("imagepipe", broker=url, set_as_current=False)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        event_serializer="json", result_accept_content=["json"],
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_track_started=False, worker_send_task_events=False, task_ignore_result=True,
        broker_connection_timeout=CONNECT_TIMEOUT, broker_connection_retry=True,
        broker_connection_max_retries=3, broker_connection_retry_on_startup=False,
        broker_channel_error_retry=False, broker_heartbeat=0,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT, "socket_connect_timeout": CONNECT_TIMEOUT,
            "socket_timeout": 10, "max_retries": 2, "interval_start": 0, "interval_step": 1,
            "interval_max": 2, "unacked_restore_interval": 30, "unacked_restore_throttle": 1},
        worker_enable_remote_control=False, worker_redirect_stdouts=False,
    )
    return app
