"""Augment: add nlpaug variants of a share of the training rows (switchable by config)."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.robustness.augment import augment_rows
from lowlm.config import AugmentConfig, PairAugmentConfig
from lowlm.data.corpus import encode_labels, split_digest
from lowlm.data.pairs import pairs_digest
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_dataset, log_table, output_dir, stage_run


@task(name="augment", **STAGE_OPTIONS)
def augment(corpus: dict, config: AugmentConfig, work_dir: str, tracking: Tracking) -> dict:
    """Returns the training split to use: the original when disabled, else original + new rows."""
    if not config.enabled:
        return {"train": corpus["splits"]["train"], "digest": corpus["digests"]["train"], "added": 0}
    with stage_run(tracking, "augment"):
        mlflow.log_params({f"augment.{k}": v for k, v in config.model_dump().items()})
        train = pd.read_parquet(corpus["splits"]["train"])
        labels = corpus["labels"]
        new = augment_rows(train, "text", config.methods, config.copies, config.fraction, config.seed)
        combined = pd.concat([train, new[["text", "label"]]], ignore_index=True).drop_duplicates()
        digest = split_digest(combined["text"], encode_labels(combined["label"], labels), labels)
        path = output_dir(work_dir, "augment", digest_of(config, corpus["digests"]["train"])) / "train.parquet"
        combined.to_parquet(path, index=False)
        mlflow.log_metrics({"rows_added": len(combined) - len(train), "rows_train": len(combined)})
        for method in config.methods:
            mlflow.log_metric(f"rows_{method}", int((new["method"] == method).sum()))
        log_table(new.head(50), "augmented_sample.json")
        log_dataset(combined, name="augment-train", digest=digest, source=str(path), context="train")
        return {"train": str(path), "digest": digest, "added": len(combined) - len(train)}


@task(name="augment-pairs", **STAGE_OPTIONS)
def augment_pairs(corpus: dict, config: PairAugmentConfig, work_dir: str, tracking: Tracking) -> dict:
    """Training pairs to use: noisy copies of a share of the sources, each with its clean target."""
    if not config.enabled:
        return {"train": corpus["splits"]["train"], "digest": corpus["digests"]["train"], "added": 0}
    with stage_run(tracking, "augment"):
        mlflow.log_params({f"augment.{k}": v for k, v in config.model_dump().items()})
        train = pd.read_parquet(corpus["splits"]["train"])
        new = augment_rows(train, "source", config.methods, config.copies, config.fraction, config.seed)
        combined = pd.concat([train, new[["source", "target"]]], ignore_index=True).drop_duplicates()
        digest = pairs_digest(list(zip(combined["source"], combined["target"])))
        path = output_dir(work_dir, "augment-pairs", digest_of(config, corpus["digests"]["train"])) / "train.parquet"
        combined.to_parquet(path, index=False)
        mlflow.log_metrics({"rows_added": len(combined) - len(train), "rows_train": len(combined)})
        log_table(new.head(50), "augmented_sample.json")
        log_dataset(combined, name="augment-train", digest=digest, source=str(path), context="train", targets="target")
        return {"train": str(path), "digest": digest, "added": len(combined) - len(train)}
