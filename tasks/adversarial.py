"""Adversarial stages: generate examples that join training, and evaluate robustness under the same attack.

``adversarial`` (before train): attacks a sample of the training rows against a target model (the
registry's champion, resolved when the flow starts, or a probe trained by the flow) and adds the
examples that fooled it, each with its source row's label, to the training split.
``robustness`` (after train): attacks the new model on validation and test rows; the numbers go to
the registry's gate (``registry.min_attacked_accuracy``, checked on validation) and to the version's tags.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.config.attack import AttackConfig
from lowlm.data.corpus import encode_labels, split_digest
from lowlm.inference.classifier import TextClassifier
from lowlm.robustness.attack import AttackRun, attack, attackable, sample_rows
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_dataset, log_table, output_dir, stage_run


def _log_attack_params(config: AttackConfig) -> None:
    recipe = config.model_dump(exclude={"generate", "refresh", "word" if config.method == "char" else "char"})
    mlflow.log_params({f"attack.{k}": v for k, v in recipe.items()})


def attack_rows(classifier: TextClassifier, frame: pd.DataFrame, config: AttackConfig, limit: int, seed: int,
                attackable_only: bool = False) -> tuple[AttackRun, list[int]]:
    """Attack a seeded sample of ``limit`` rows of ``frame`` whose label the classifier knows (with
    ``attackable_only``, of those the attack can change); the run and the rows' positions in ``frame``."""
    known = {name: i for i, name in enumerate(classifier.labels)}
    usable = [i for i, (label, text) in enumerate(zip(frame["label"].astype(str), frame["text"]))
              if label in known and (not attackable_only or attackable(text, config))]
    rows = [usable[i] for i in sample_rows(len(usable), limit, seed)]
    texts = frame["text"].iloc[rows].tolist()
    ys = [known[label] for label in frame["label"].astype(str).iloc[rows]]
    return attack(classifier, texts, ys, config), rows


def summary_metrics(run: AttackRun, prefix: str) -> dict[str, float]:
    s = run.summary()
    return {f"{prefix}_attack_clean_accuracy": s["clean_accuracy"], f"{prefix}_attacked_accuracy": s["attacked_accuracy"],
            f"{prefix}_attack_success_rate": s["success_rate"], f"{prefix}_words_perturbed": s["words_perturbed"],
            f"{prefix}_attack_queries": s["queries"], f"{prefix}_attack_examples": s["examples"],
            f"{prefix}_attack_skipped": s["skipped"], f"{prefix}_attack_examples_per_second": s["examples_per_second"]}


@task(name="adversarial", **STAGE_OPTIONS)
def adversarial(corpus: dict, train_split: dict, target: dict, config: AttackConfig, work_dir: str,
                tracking: Tracking) -> dict:
    """The training split plus the adversarial examples that fooled ``target`` (a handle with ``model_dir``,
    ``digest`` and, for a registered champion, ``name`` and ``version``)."""
    generate = config.generate
    with stage_run(tracking, "adversarial"):
        _log_attack_params(config)
        mlflow.log_params({f"generate.{k}": v for k, v in generate.model_dump().items()})
        mlflow.set_tags({"attacked_model": target.get("uri") or "probe", "attacked_digest": target["digest"],
                         **({"attacked_version": target["version"]} if target.get("version") else {})})
        classifier = TextClassifier.load(target["model_dir"])
        train = pd.read_parquet(train_split["train"])
        run, rows = attack_rows(classifier, train, config, generate.sample_rows, config.seed, attackable_only=True)
        found = run.successful()
        new = train.iloc[[rows[e.index] for e in found]].reset_index(drop=True).copy()
        new["text"] = [e.adversarial for e in found]
        combined = pd.concat([train, new], ignore_index=True)
        labels = corpus["labels"]
        digest = split_digest(combined["text"], encode_labels(combined["label"], labels), labels)
        key = digest_of(config, train_split["digest"], target["digest"])
        path = output_dir(work_dir, "adversarial", key) / "train.parquet"
        combined.to_parquet(path, index=False)
        mlflow.log_metrics({**summary_metrics(run, "train"), "rows_added": len(new), "rows_train": len(combined)})
        log_table(run.table(), "adversarial_examples.json")
        log_dataset(combined, name="adversarial-train", digest=digest, source=str(path), context="train")
        return {"train": str(path), "digest": digest, "added": train_split.get("added", 0) + len(new),
                "counts": {**train_split.get("counts", {}), "adversarial": len(new)},
                "attacked": {k: target.get(k) for k in ("name", "version", "digest")}}


@task(name="evaluate-attack", **STAGE_OPTIONS)
def robustness(corpus: dict, trained: dict, config: AttackConfig, tracking: Tracking) -> dict:
    """The new model under attack on up to ``max_examples`` validation and test rows each (in-scope rows);
    ``val_attacked_accuracy`` is what the gate checks, the ``test_*`` numbers are reported and tagged."""
    if not config.enabled:
        return {"enabled": False, "metrics": {}}
    with stage_run(tracking, "evaluate-attack"):
        _log_attack_params(config)
        classifier = TextClassifier.load(trained["model_dir"])
        metrics, test_run = {}, None
        for split, prefix in (("validation", "val"), ("test", "test")):
            frame = pd.read_parquet(corpus["splits"][split])
            run, _ = attack_rows(classifier, frame, config, config.max_examples, config.seed)
            metrics.update(summary_metrics(run, prefix))
            test_run = run
        mlflow.log_metrics(metrics)
        log_table(test_run.table(), "adversarial_test.json")
        summary = (f"{config.method} attack: accuracy under attack {metrics['test_attacked_accuracy']:.3f} "
                   f"(clean {metrics['test_attack_clean_accuracy']:.3f}), success rate "
                   f"{metrics['test_attack_success_rate']:.3f} on {metrics['test_attack_examples']} test rows")
        mlflow.set_tag("robustness", summary)
        return {"enabled": True, "metrics": metrics, "summary": summary}
