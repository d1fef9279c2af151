"""Summarize: the flow run's headline metrics and registry outcome on its parent MLflow run."""

from __future__ import annotations

import mlflow
from prefect import task

from tasks._stage import Tracking


@task(name="summarize")
def summarize(summary: dict, registered: dict, tracking: Tracking) -> dict:
    """Log ``summary`` (metrics) and the registered version and alias on the parent run; returns the
    flow's result: where the run and the model are."""
    client = mlflow.MlflowClient(tracking.uri)
    run_id = tracking.parent_run_id
    for key, value in summary.items():
        client.log_metric(run_id, key, float(value))
    client.set_tag(run_id, "registered_version", registered["version"])
    client.set_tag(run_id, "alias", str(registered["alias"]))
    return {"mlflow_run_id": run_id, "experiment_id": tracking.experiment_id, "metrics": summary,
            "model": registered}
