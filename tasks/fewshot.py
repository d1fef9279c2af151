"""Few-shot: head-only fine-tuning of the trained encoder on k examples per class of a second corpus."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.config import FewShotConfig
from lowlm.data.corpus import encode_labels
from lowlm.training.fewshot import fit_head
from lowlm.evaluation.plots import confusion_matrix_figure
from lowlm.inference.classifier import TextClassifier
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_figure, output_dir, stage_run


@task(name="fewshot", **STAGE_OPTIONS)
def fewshot(target: dict, trained: dict, config: FewShotConfig, work_dir: str, tracking: Tracking) -> dict:
    """``target`` is the ingest handle of the second corpus."""
    with stage_run(tracking, "fewshot"):
        mlflow.log_params({f"fewshot.{k}": v for k, v in config.model_dump(exclude={"corpus"}).items()})
        base = TextClassifier.load(trained["model_dir"])
        labels = target["labels"]
        train = pd.read_parquet(target["splits"]["train"])
        test = pd.read_parquet(target["splits"]["test"])
        result = fit_head(base, train["text"].tolist(), encode_labels(train["label"], labels), test["text"].tolist(),
                          encode_labels(test["label"], labels), labels, k=config.k, epochs=config.epochs,
                          lr=config.lr, seed=config.seed)
        metrics = {"fewshot_accuracy": result.report["accuracy"], "fewshot_macro_f1": result.report["macro_f1"],
                   "fewshot_majority_baseline": result.majority_baseline, "shots": result.shots}
        mlflow.log_metrics(metrics)
        log_figure(confusion_matrix_figure(result.report["confusion_matrix"], labels, "Few-shot confusion matrix"),
                   "plots/fewshot_confusion_matrix.png")
        folder = output_dir(work_dir, "fewshot", digest_of(config, trained["digest"], target["digests"]))
        result.classifier.save(folder / "classifier")
        mlflow.log_artifacts(str(folder / "classifier"), artifact_path="checkpoint")
        return {"model_dir": str(folder / "classifier"), **metrics}
