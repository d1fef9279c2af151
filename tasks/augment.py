"""Augment: add nlpaug variants of a share of the training rows (switchable by config)."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.augment import augment_texts
from lowlm.config import AugmentConfig, PairAugmentConfig
from lowlm.corpus import split_digest
from lowlm.pairs import pairs_digest
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
        index = {name: i for i, name in enumerate(labels)}
        rows = augment_texts(train["text"].tolist(), [index[x] for x in train["label"]], config.methods,
                             copies=config.copies, fraction=config.fraction, seed=config.seed)
        new = pd.DataFrame({"text": [r[0] for r in rows], "label": [labels[r[1]] for r in rows],
                            "method": [r[2] for r in rows]})
        combined = pd.concat([train, new[["text", "label"]]], ignore_index=True).drop_duplicates()
        digest = split_digest(combined["text"], [index[x] for x in combined["label"]], labels)
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
        # the "label" of each augmented row is the index of its pair, which brings back its target
        rows = augment_texts(train["source"].tolist(), list(range(len(train))), config.methods,
                             copies=config.copies, fraction=config.fraction, seed=config.seed)
        new = pd.DataFrame({"source": [r[0] for r in rows], "target": [train["target"].iloc[r[1]] for r in rows],
                            "method": [r[2] for r in rows]})
        combined = pd.concat([train, new[["source", "target"]]], ignore_index=True).drop_duplicates()
        digest = pairs_digest(list(zip(combined["source"], combined["target"])))
        path = output_dir(work_dir, "augment-pairs", digest_of(config, corpus["digests"]["train"])) / "train.parquet"
        combined.to_parquet(path, index=False)
        mlflow.log_metrics({"rows_added": len(combined) - len(train), "rows_train": len(combined)})
        log_table(new.head(50), "augmented_sample.json")
        log_dataset(combined, name="augment-train", digest=digest, source=str(path), context="train", targets="target")
        return {"train": str(path), "digest": digest, "added": len(combined) - len(train)}
