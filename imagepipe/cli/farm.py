"""`imagepipe worker` and `imagepipe farm status`, plus the broker options `build` shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from imagepipe import ui
from imagepipe.cli.common import examples
from imagepipe.cli.store_option import store_option
from imagepipe.farm import BROKER_ENV, DEFAULT_QUEUE


def broker_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--broker (no password on the command line), IMAGEPIPE_BROKER, --broker-file."""
    f = click.option("--broker-file", type=click.Path(dir_okay=False, path_type=Path),
                     default=None, help="File holding the broker URL (mode 0600), for URLs "
                                        "with a password.")(f)
    return click.option("--broker", metavar="URL", envvar=BROKER_ENV, default=None,
                        help=f"Redis broker, e.g. redis://HOST:6379/0 (or ${BROKER_ENV}; a "
                             "URL with a password only from the environment or "
                             "--broker-file).")(f)


def broker_url(broker: str | None, broker_file: Path | None) -> str:
    from click.core import ParameterSource

    from imagepipe.farm.broker import resolve

    ctx = click.get_current_context()
    from_argv = ctx.get_parameter_source("broker") == ParameterSource.COMMANDLINE
    return resolve(broker, from_argv, broker_file)


def wants_broker(broker: str | None, broker_file: Path | None) -> bool:
    return bool(broker or broker_file)


queue_option = click.option("--queue", default=DEFAULT_QUEUE, show_default=True,
                            metavar="NAME", help="Celery queue (route recipes to a pool of "
                                                 "workers).")


@click.command(epilog=examples(
    "IMAGEPIPE_BROKER=redis://:PASSWORD@farm:6379/0 imagepipe worker --store /var/cache/imagepipe",
    "imagepipe worker --broker-file /etc/imagepipe/broker --concurrency 1 --queue nightly"))
@broker_options
@store_option
@click.option("--concurrency", type=click.IntRange(min=1), default=1, show_default=True,
              help="Builds at a time on this worker (one build already uses the cores).")
@queue_option
@click.option("--name", default=None, help="Worker name (default: the host name).")
def worker(broker: str | None, broker_file: Path | None, store: Path | None,
           concurrency: int, queue: str, name: str | None) -> None:
    """Build recipes sent with `build --broker`, as a Celery worker (runs until stopped)."""
    import socket

    from imagepipe.cache_root import default_root
    from imagepipe.farm.worker import WorkerSettings, run_worker

    url = broker_url(broker, broker_file)
    root = (store or default_root()).expanduser().absolute()
    rc = run_worker(WorkerSettings(url=url, name=name or socket.gethostname(), store=root,
                                   queue=queue, concurrency=concurrency))
    if rc:
        from imagepipe.errors import ImagepipeError

        raise ImagepipeError(f"the worker stopped with exit code {rc}",
                             "see the messages above (a lost broker?)")


@click.group(epilog=examples("imagepipe farm status --broker-file /etc/imagepipe/broker"))
def farm() -> None:
    """The build farm: queued, running and finished builds."""


@farm.command(epilog=examples("imagepipe farm status --broker-file /etc/imagepipe/broker",
                              "imagepipe --json farm status --hours 2"))
@broker_options
@click.option("--hours", type=float, default=24.0, show_default=True,
              help="Show builds queued in the last HOURS.")
def status(broker: str | None, broker_file: Path | None, hours: float) -> None:
    """Workers alive, and the builds queued, running and finished with their workers."""
    from imagepipe.farm import records
    from imagepipe.farm.broker import ping

    url = broker_url(broker, broker_file)
    r = ping(url)
    workers = records.workers(r)
    builds = records.recent(r, time.time() - hours * 3600)
    lines = [f"workers ({len(workers)} alive):"]
    lines += [f"  {w.get('name'):<16} {w.get('host')} queue {w.get('queue')}, "
              f"concurrency {w.get('concurrency')}, store {w.get('store')}" for w in workers]
    for state, title in (("queued", "queued"), ("started", "running"),
                         ("done", "finished"), ("failed", "failed")):
        rows = [b for b in builds if b.get("state") == state]
        lines.append(f"{title} ({len(rows)}):")
        for b in rows:
            lines.append("  " + _row(b))
    ui.result("\n".join(lines), workers=workers, builds=builds)


def _row(b: dict[str, Any]) -> str:
    text = f"{b.get('recipe'):<20} {b.get('id')}"
    if b.get("state") == "started":
        text += f" on {b.get('worker')}, stage {b.get('n')}/{b.get('m')} {b.get('stage')}"
    elif b.get("state") in ("done", "failed"):
        res = b.get("result") or {}
        text += f" on {res.get('worker', b.get('worker'))} in {res.get('seconds')}s"
        if res.get("error"):
            text += f": {res['error']}"
    else:
        text += f" queue {b.get('queue')}"
    if b.get("retries"):
        text += "; retried after losing " + ", ".join(str(x.get("worker"))
                                                      for x in b["retries"])
    return text
