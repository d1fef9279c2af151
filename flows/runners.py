"""Task runners for the stages whose work is mapped in parts (augmentation and back-translation shards,
attack shards, few-shot grid cells, sweep trials): Prefect's thread pool, or Dask through prefect-dask.

A ``dask`` stage without an ``address`` starts a ``LocalCluster`` of ``workers`` processes (one thread
each, bound to 127.0.0.1) for the stage and stops it after. Its workers report their task runs to
the flow's own Prefect API: with no ``PREFECT_API_URL`` that is the flow's temporary server, whose
address they are given, so no worker starts a server of its own. With an ``address`` the stage uses
that scheduler's workers, which must see the same files (work folder, corpora) and the same
``PREFECT_API_URL`` and ``MLFLOW_TRACKING_URI`` (docs/team.md); the scheduler is checked when the
flow starts (``check_runners``), so a wrong address fails before any work.

A part is seeded by its stage's seed and its index, so the rows and digests are the same on every
runner and any number of workers.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit

from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

CONNECT_TIMEOUT = 5.0  # seconds a scheduler has to accept a connection at flow start


class RunnerUnavailable(RuntimeError):
    """A configured Dask scheduler does not answer; the message names its address."""


def worker_environment() -> dict[str, str]:
    """What a local Dask worker process needs beyond the environment it inherits: the Prefect API the
    flow talks to (its temporary server's address when no ``PREFECT_API_URL`` is set)."""
    env = {"OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    if not os.environ.get("PREFECT_API_URL"):
        from prefect.client.orchestration import get_client

        url = str(get_client(sync_client=True).api_url)  # the temporary server, started if it is not yet
        env["PREFECT_API_URL"] = url
    return env


@contextmanager
def task_runner(config):
    """The task runner ``config.runner`` names (a ``lowlm.config.runner.Runner``), started."""
    if config.runner == "thread":
        with ThreadPoolTaskRunner(max_workers=config.workers) as runner:
            yield runner
    elif config.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if config.address:
            runner = DaskTaskRunner(address=config.address)
        else:
            runner = DaskTaskRunner(cluster_kwargs={
                "n_workers": config.workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1",
                "dashboard_address": "127.0.0.1:0", "env": worker_environment(), "silence_logs": logging.ERROR})
        with runner:
            yield runner
    else:  # pragma: no cover - the config's Literal admits only what is built here
        raise ValueError(f"unknown task runner {config.runner!r}")


def map_shards(task, parameters: list[dict], config, what: str = "work") -> list[dict]:
    """Run ``task`` once per parameter set on the configured runner; results in shard order. A progress
    bar counts finished shards when stderr is a terminal."""
    if not parameters:
        return []
    with task_runner(config) as runner:
        futures = [runner.submit(task, p) for p in parameters]
        bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            bar = tqdm(total=len(futures), desc=f"{what} shards", unit="shard", leave=False)
        for future in as_completed(futures):
            future.result()  # raises the shard's error
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        return [f.result() for f in futures]


def check_scheduler(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise ``RunnerUnavailable`` unless a Dask scheduler at ``address`` accepts a connection in ``timeout`` s."""
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            pass
    except OSError as exc:
        raise RunnerUnavailable(f"the Dask scheduler {address} cannot be reached ({exc.strerror or exc}; waited at "
                                f"most {timeout:g} s): start it (dask scheduler --host ...) or set runner: thread")


def check_runners(*stages) -> None:
    """Check the scheduler of every stage config (``None`` for a stage that is off) that names one."""
    for config in stages:
        if config is not None and getattr(config, "runner", None) == "dask" and config.address:
            check_scheduler(config.address)
