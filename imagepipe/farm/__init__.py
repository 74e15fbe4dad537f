"""The build farm: recipes built by Celery workers on many machines (`imagepipe worker`,
`imagepipe build --broker`, `imagepipe farm status`).

Why Celery + Redis and not a scheduler of our own: operations teams already run them, and they
bring queueing, routing (`--queue`), worker pools and late acknowledgement. imagepipe adds what
a build farm needs on top: self-contained recipe bundles (`bundle`), a liveness record per
running build so a lost worker's recipe is rebuilt within a minute (`records`), and the same
summary and exit codes as a local `build --all` (`client`). A worker runs the very same
`imagepipe build` a user runs locally, on the unpacked bundle (`worker`).

Celery is an optional extra (`pip install imagepipe[farm]`); nothing here is imported unless a
farm command runs.
"""

from __future__ import annotations

DEFAULT_QUEUE = "imagepipe"
TASK_NAME = "imagepipe.farm.build"
BROKER_ENV = "IMAGEPIPE_BROKER"
