"""Adversarial stages: generate examples that join training, and evaluate robustness under the same attack.

Both attack their rows in shards (``attack-shard``, mapped over ``attack.runner`` by ``flows.attacking``):
the rows are a seeded sample (``attack_plan``), cut in pieces of ``attack.shard_rows``; shard i starts at
example ``i * shard_rows`` of the sample, whose number seeds that example's edits, so the examples are
the same on any runner and any number of workers. The stages below merge the shards' examples.

``adversarial`` (before train): attacks a sample of the training rows against a target model (the
registry's champion, resolved when the flow starts, or a probe trained by the flow) and adds the
examples that fooled it, each with its source row's label, to the training split.
``robustness`` (after train): attacks the new model on validation and test rows; the numbers go to
the registry's gate (``registry.min_attacked_accuracy``, checked on validation) and to the version's tags.
"""

from __future__ import annotations

import json

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


def attack_plan(labels: list[str], frame: pd.DataFrame, config: AttackConfig, limit: int, seed: int,
                attackable_only: bool = False) -> list[int]:
    """The positions in ``frame`` of a seeded sample of ``limit`` rows whose label the classifier knows
    (``labels``: its label names; with ``attackable_only``, of those the attack can change), in order."""
    known = set(labels)
    usable = [i for i, (label, text) in enumerate(zip(frame["label"].astype(str), frame["text"]))
              if label in known and (not attackable_only or attackable(text, config))]
    return [usable[i] for i in sample_rows(len(usable), limit, seed)]


@task(name="attack-shard", **STAGE_OPTIONS)
def attack_shard(model: dict, split: str, split_digest: str, rows: list[int], first: int, config: AttackConfig,
                 shard: int, work_dir: str) -> dict:
    """Attack rows ``rows`` of the split file (examples numbered from ``first``) against ``model`` (``model_dir``
    and ``digest``); the examples go to a JSON file. ``config``: the attack without its runner settings."""
    classifier = TextClassifier.load(model["model_dir"])  # a copy per shard: a gradient ranking hooks the model
    frame = pd.read_parquet(split, columns=["text", "label"]).iloc[rows]
    index = {name: i for i, name in enumerate(classifier.labels)}
    run = attack(classifier, frame["text"].tolist(), [index[y] for y in frame["label"].astype(str)], config,
                 first=first)
    key = digest_of(model["digest"], split_digest, rows, first, config)
    path = output_dir(work_dir, "attack-shards", key) / "examples.json"
    path.write_text(json.dumps(run.to_json()))
    return {"path": str(path), "shard": shard, "rows": rows, "first": first, "examples": len(run.examples)}


def merged(parts: list[dict]) -> tuple[AttackRun, list[int]]:
    """The shards' examples as one run, and the row position of each (``rows[example.index]``)."""
    parts = sorted(parts, key=lambda p: p["shard"])
    run = AttackRun.merge([AttackRun.from_json(json.loads(open(p["path"]).read())) for p in parts])
    return run, [r for p in parts for r in p["rows"]]


def summary_metrics(run: AttackRun, prefix: str) -> dict[str, float]:
    s = run.summary()
    return {f"{prefix}_attack_clean_accuracy": s["clean_accuracy"], f"{prefix}_attacked_accuracy": s["attacked_accuracy"],
            f"{prefix}_attack_success_rate": s["success_rate"], f"{prefix}_words_perturbed": s["words_perturbed"],
            f"{prefix}_attack_queries": s["queries"], f"{prefix}_attack_examples": s["examples"],
            f"{prefix}_attack_skipped": s["skipped"], f"{prefix}_attack_examples_per_second": s["examples_per_second"]}


@task(name="adversarial", **STAGE_OPTIONS)
def adversarial(corpus: dict, train_split: dict, target: dict, config: AttackConfig, parts: list[dict], work_dir: str,
                tracking: Tracking) -> dict:
    """The training split plus the adversarial examples that fooled ``target`` (a handle with ``model_dir``,
    ``digest`` and, for a registered champion, ``name`` and ``version``), found by the attack shards ``parts``."""
    generate = config.generate
    with stage_run(tracking, "adversarial"):
        _log_attack_params(config)
        mlflow.log_params({f"generate.{k}": v for k, v in generate.model_dump().items()})
        mlflow.set_tags({"attacked_model": target.get("uri") or "probe", "attacked_digest": target["digest"],
                         **({"attacked_version": target["version"]} if target.get("version") else {})})
        mlflow.log_param("attack.shards", len(parts))
        train = pd.read_parquet(train_split["train"])
        run, rows = merged(parts)
        found = run.successful()
        new = train.iloc[[rows[e.index] for e in found]].reset_index(drop=True).copy()
        new["text"] = [e.adversarial for e in found]
        combined = pd.concat([train, new], ignore_index=True)
        labels = corpus["labels"]
        digest = split_digest(combined["text"], encode_labels(combined["label"], labels), labels)
        key = digest_of(config.placeless(), train_split["digest"], target["digest"])
        path = output_dir(work_dir, "adversarial", key) / "train.parquet"
        combined.to_parquet(path, index=False)
        mlflow.log_metrics({**summary_metrics(run, "train"), "rows_added": len(new), "rows_train": len(combined)})
        log_table(run.table(), "adversarial_examples.json")
        log_dataset(combined, name="adversarial-train", digest=digest, source=str(path), context="train")
        return {"train": str(path), "digest": digest, "added": train_split.get("added", 0) + len(new),
                "counts": {**train_split.get("counts", {}), "adversarial": len(new)},
                "attacked": {k: target.get(k) for k in ("name", "version", "digest")}}


@task(name="evaluate-attack", **STAGE_OPTIONS)
def robustness(corpus: dict, trained: dict, config: AttackConfig, parts: dict[str, list[dict]],
               tracking: Tracking, run_name: str | None = None) -> dict:
    """The new model under attack on up to ``max_examples`` validation and test rows each (in-scope rows;
    ``parts``: the attack shards of each split); ``val_attacked_accuracy`` is what the gate checks, the
    ``test_*`` numbers are reported and tagged."""
    if not config.enabled:
        return {"enabled": False, "metrics": {}}
    with stage_run(tracking, "evaluate-attack", run_name):
        _log_attack_params(config)
        mlflow.log_param("attack.shards", len(parts["validation"]) + len(parts["test"]))
        metrics, test_run = {}, None
        for split, prefix in (("validation", "val"), ("test", "test")):
            run, _ = merged(parts[split])
            metrics.update(summary_metrics(run, prefix))
            test_run = run
        mlflow.log_metrics(metrics)
        log_table(test_run.table(), "adversarial_test.json")
        summary = (f"{config.method} attack: accuracy under attack {metrics['test_attacked_accuracy']:.3f} "
                   f"(clean {metrics['test_attack_clean_accuracy']:.3f}), success rate "
                   f"{metrics['test_attack_success_rate']:.3f} on {metrics['test_attack_examples']} test rows")
        mlflow.set_tag("robustness", summary)
        return {"enabled": True, "metrics": metrics, "summary": summary}
