"""What every stage task shares: its nested MLflow run, its output folder, its logging helpers.

How stages are cached (keys, result storage, stale results) is ``tasks._cache``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import datasets
import mlflow
import pandas as pd


datasets.disable_progress_bars()  # per-split progress bars only clutter task logs

DEFAULT_TRACKING_URI = "sqlite:///mlruns/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlruns/artifacts"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the project's SQLite store under mlruns/."""
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def ensure_experiment(name: str) -> str:
    """The experiment's id, creating it (artifacts beside the SQLite store) if needed."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        location = (db.parent.resolve() / "artifacts").as_uri()
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException as exc:  # another flow created it since we looked: use theirs
        if exc.error_code != "RESOURCE_ALREADY_EXISTS" or mlflow.get_experiment_by_name(name) is None:
            raise
        return mlflow.get_experiment_by_name(name).experiment_id


PID_TAG, HOST_TAG, START_TAG = "lowlm.pid", "lowlm.host", "lowlm.process_start"


def process_tags() -> dict[str, str]:
    """Tags that let a later process tell whether the one that started a run still lives (a run left
    RUNNING by a dead process is marked FAILED at the next start: ``flows.runtime.fail_stale_runs``)."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), START_TAG: str(process_start(os.getpid()))}


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/PID/stat``), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


@dataclass(frozen=True)
class Tracking:
    """Where a stage logs: passed to every task, left out of every cache key."""

    uri: str
    experiment_id: str
    parent_run_id: str


@contextmanager
def stage_run(tracking: Tracking, stage: str, run_name: str | None = None):
    """A nested MLflow run for one stage (named ``run_name``, default the stage's name; tagged
    ``lowlm.stage``). An exception ends it FAILED and propagates."""
    mlflow.set_tracking_uri(tracking.uri)
    with mlflow.start_run(experiment_id=tracking.experiment_id, run_name=run_name or stage, nested=True,
                          parent_run_id=tracking.parent_run_id, tags={"lowlm.stage": stage, **process_tags()}) as run:
        yield run


@contextmanager
def pipeline_run(flow_name: str, config):
    """The flow run's parent MLflow run (config logged, hash tagged); yields the ``Tracking`` for its stages.

    An exception inside ends the parent run FAILED and propagates.
    """
    experiment_id = ensure_experiment(config.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=config.name, tags=process_tags()) as parent:
        mlflow.set_tags({"lowlm.flow": flow_name, "config_hash": config.digest()})
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        yield Tracking(tracking_uri(), experiment_id, parent.info.run_id)


def stage_logger(name: str = "lowlm"):
    """The Prefect run's logger (its lines reach the run's log in the UI); a plain one outside Prefect."""
    from prefect import get_run_logger
    from prefect.exceptions import MissingContextError

    try:
        return get_run_logger()
    except MissingContextError:
        import logging

        return logging.getLogger(name)


def digest_of(*parts) -> str:
    """Stable short hash of JSON-able parts (configs as dicts, digests as strings)."""
    blob = json.dumps([p.model_dump(mode="json") if hasattr(p, "model_dump") else p for p in parts],
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def output_dir(work_dir: str, stage: str, key: str) -> Path:
    path = Path(work_dir) / stage / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def log_table(frame: pd.DataFrame, artifact_file: str) -> None:
    """A sample table as a JSON artifact the MLflow UI renders as a table."""
    mlflow.log_table(frame, artifact_file=artifact_file)


def log_figure(fig, artifact_file: str) -> None:
    import matplotlib.pyplot as plt

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def log_json(data, artifact_file: str) -> None:
    mlflow.log_dict(data, artifact_file)


def log_dataset(frame: pd.DataFrame, name: str, digest: str, source: str, context: str,
                targets: str = "label") -> None:
    """Record a data split as a run input (name, digest, source) in MLflow's dataset tracking."""
    try:
        dataset = mlflow.data.from_pandas(frame, source=source, name=name, digest=digest, targets=targets)
    except Exception:  # a source MLflow cannot resolve (an in-memory frame): record the digest alone
        dataset = mlflow.data.from_pandas(frame, name=name, digest=digest, targets=targets)
    for attempt in range(DATASET_ATTEMPTS):
        try:
            mlflow.log_input(dataset, context=context)
            return
        except mlflow.exceptions.MlflowException as exc:
            # MLflow's store looks the dataset up, then inserts it: two runs logging the same split at once
            # (two flows on one server) can both miss it, and the second insert breaks the unique key.
            # Once the first has committed, the lookup finds it: try again.
            if attempt + 1 == DATASET_ATTEMPTS or not _duplicate_key(exc):
                raise
            time.sleep(0.2 * (attempt + 1))


DATASET_ATTEMPTS = 4


def _duplicate_key(exc: Exception) -> bool:
    text = str(exc)
    return any(s in text for s in ("UniqueViolation", "UNIQUE constraint failed", "Duplicate entry", "dataset_pk"))
