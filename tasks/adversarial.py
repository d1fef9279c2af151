"""Adversarial: character-noise examples against the trained model; success rate logged."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.robustness.attack import char_noise_attack
from lowlm.config import AttackConfig
from lowlm.data.corpus import encode_labels
from lowlm.inference.classifier import TextClassifier
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, log_table, stage_run


@task(name="adversarial", **STAGE_OPTIONS)
def adversarial(corpus: dict, trained: dict, config: AttackConfig, tracking: Tracking) -> dict:
    if not config.enabled:
        return {"enabled": False}
    with stage_run(tracking, "adversarial"):
        mlflow.log_params({f"attack.{k}": v for k, v in config.model_dump().items()})
        classifier = TextClassifier.load(trained["model_dir"])
        test = pd.read_parquet(corpus["splits"]["test"])
        test = test[test["label"].isin(corpus["labels"])]  # out-of-scope rows have no label to attack
        result = char_noise_attack(classifier, test["text"].tolist(), encode_labels(test["label"], corpus["labels"]),
                                   config.methods, max_examples=config.max_examples, tries=config.tries,
                                   seed=config.seed)
        metrics = {"attacked": result.attacked, "succeeded": result.succeeded,
                   "attack_success_rate": result.success_rate}
        for method, stats in result.per_method.items():
            metrics[f"success_rate_{method}"] = stats["success_rate"]
        mlflow.log_metrics(metrics)
        if result.examples:
            log_table(pd.DataFrame(result.examples), "adversarial_examples.json")
        return {"enabled": True, **metrics}
