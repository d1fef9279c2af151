"""Several registered classifiers evaluated side by side on one preset's corpus, as a Prefect DAG.

    (every model: resolved to one version, digests verified, labels checked: first)
    ingest ─> evaluate x N (on the task runner) ─> evaluate-attack x N (its shards on the runner) ─> table

Each model gets the pipeline's own evaluate stage (test metrics, per-class table, confusion matrix,
explanations) and, with ``attack``, the pipeline's evaluate-attack stage under the preset's attack, as
nested MLflow runs named after the version under one ``compare`` parent run, which holds the
side-by-side table (``compare/models.json``) and each version's headline metrics. Predictions are
deterministic, so any runner and any number of workers give the same table.

Run it:  lowlm compare sample models:/intents/1 models:/intents@champion --workers 2
"""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import flow

from lowlm.config import PipelineConfig
from lowlm.config.stages import CompareConfig
from lowlm.data.corpus import corpus_fingerprint
from lowlm.inference.bundle import read_meta
from flows.attacking import robustness_of
from flows.runners import check_runners, map_shards
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import log_table, pipeline_run, tracking_uri
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.registered import RegisteredRefError, fetch_classifier

HEADLINE = ("test_accuracy", "test_macro_f1", "test_ece", "test_attacked_accuracy", "test_attack_success_rate")


@flow(name="compare")
def compare(config: PipelineConfig, settings: CompareConfig) -> dict:
    """Evaluate every model of ``settings.models`` on ``config``'s corpus; one row per model, in their order."""
    guard_api_run(config)
    attack = settings.attack and config.attack.enabled
    check_runners(settings, config.attack if attack else None)  # a named Dask scheduler answers, now
    work = WorkFolder(config.work_dir)
    handles = [fetch_classifier(uri, work.path, tracking_uri()) for uri in settings.models]  # verified, now
    with pipeline_run("compare", config) as tracking:
        corpus = work(ingest)(config.corpus, work.path, tracking, fingerprint=corpus_fingerprint(config.corpus))
        models = [{k: h[k] for k in ("name", "version", "uri", "digest", "model_dir")} for h in handles]
        for uri, model in zip(settings.models, models):
            check_labels(uri, model, corpus["labels"])
        names = [f"{m['name']} v{m['version']}" for m in models]
        evaluations = map_shards(work(evaluate), [
            {"corpus": corpus, "trained": m, "tracking": tracking, "run_name": f"evaluate {name}"}
            for m, name in zip(models, names)], settings, what="evaluate")
        rows = []
        for uri, m, name, evaluation in zip(settings.models, models, names, evaluations):
            metrics = dict(evaluation["metrics"])
            if attack:
                metrics.update(robustness_of(corpus, m, config.attack, work, tracking,
                                             run_name=f"evaluate-attack {name}")["metrics"])
            rows.append({"model": uri, "name": m["name"], "version": m["version"], "digest": m["digest"],
                         **{k: metrics[k] for k in HEADLINE if k in metrics}})
        mlflow.log_metrics({f"v{r['version']}.{k}": r[k] for r in rows for k in HEADLINE if k in r})
        mlflow.set_tag("compare.models", ", ".join(settings.models)[:5000])
        log_table(pd.DataFrame(rows), "compare/models.json")
        return {"models": rows, "mlflow_run_id": tracking.parent_run_id}


def check_labels(uri: str, model: dict, labels: list[str]) -> None:
    """A model scored on this corpus must know its labels in its order (evaluate reads predictions as indices)."""
    known = read_meta(model["model_dir"])["labels"]  # bundle.json: the evaluate stage loads the weights
    if list(known) != list(labels):
        raise RegisteredRefError(f"{uri} (version {model['version']}) was trained on the labels {known}, not this "
                                 f"corpus's {labels}: compare models of the same task")
