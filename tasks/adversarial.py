"""Adversarial: character-noise examples against the trained model; success rate logged."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.attack import char_noise_attack
from lowlm.config import AttackConfig
from lowlm.predictor import TextClassifier
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
        index = {name: i for i, name in enumerate(corpus["labels"])}
        result = char_noise_attack(classifier, test["text"].tolist(), [index[x] for x in test["label"]],
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
