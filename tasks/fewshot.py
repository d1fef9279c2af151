"""Few-shot: a grid of (strategy, k, seed) cells fine-tuned on a second corpus, then the summary and the choice.

Each cell (``fewshot-cell``, one nested MLflow run, cached on its inputs) samples k examples per class
of the second corpus's train split with its seed, fine-tunes the base model's encoder by its strategy,
selects on the corpus's validation split and reports test. The ``fewshot`` stage logs every cell as a
table, the learning curve (test accuracy against k, mean and spread over seeds, one line per
strategy), and picks the strategy with the best mean validation accuracy at the largest k; that
strategy's model of the first seed is what the flow registers.
"""

from __future__ import annotations

import statistics

import mlflow
import pandas as pd
from prefect import task

from lowlm.config import FewShotConfig
from lowlm.config.stages import FineTuneConfig
from lowlm.data.corpus import encode_labels
from lowlm.evaluation.metrics import majority_baseline
from lowlm.evaluation.plots import learning_curve_figure
from lowlm.inference.classifier import TextClassifier
from lowlm.training.fewshot import evaluate, fine_tune, sample_k_per_class, short_classes
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_figure, log_table, output_dir, stage_logger, stage_run


def _split(target: dict, name: str) -> tuple[list[str], list[int]]:
    frame = pd.read_parquet(target["splits"][name])
    return frame["text"].tolist(), encode_labels(frame["label"], target["labels"], target["splits"][name])


@task(name="fewshot-cell", **STAGE_OPTIONS)
def fewshot_cell(target: dict, base: dict, strategy: str, k: int, seed: int, finetune: FineTuneConfig,
                 work_dir: str, tracking: Tracking) -> dict:
    """One cell of the grid: ``base`` is a trained handle (``model_dir``, ``digest``)."""
    with stage_run(tracking, "fewshot-cell", f"fewshot {strategy} k={k} seed={seed}") as run:
        mlflow.log_params({"strategy": strategy, "k": k, "seed": seed,
                           **{f"finetune.{n}": v for n, v in finetune.model_dump().items()}})
        labels = target["labels"]
        texts, y = _split(target, "train")
        shots = sample_k_per_class(y, k, seed)
        short = {labels[c]: n for c, n in short_classes(y, k).items()}
        if short:  # k is more than some classes have: they give all their rows
            message = f"k={k} but {len(short)} classes have fewer rows; all of theirs are used: {short}"
            mlflow.set_tag("warning.short_classes", message[:5000])
            stage_logger("lowlm.fewshot").warning(message)
        result = fine_tune(TextClassifier.load(base["model_dir"]), strategy, [texts[i] for i in shots],
                           [y[i] for i in shots], labels, finetune, seed, validation=_split(target, "validation"))
        validation, test = evaluate(result.classifier, *_split(target, "validation")), \
            evaluate(result.classifier, *_split(target, "test"))
        metrics = {"shots": len(shots), "val_accuracy": validation["accuracy"], "test_accuracy": test["accuracy"],
                   "test_macro_f1": test["macro_f1"], "seconds": result.seconds}
        mlflow.log_metrics(metrics)
        key = digest_of(finetune, base["digest"], target["digests"], strategy, k, seed)
        folder = result.classifier.save(output_dir(work_dir, "fewshot-cell", key) / "classifier")
        digest = result.classifier.digest()
        mlflow.set_tag("lowlm.model_digest", digest)
        return {"strategy": strategy, "k": k, "seed": seed, "model_dir": str(folder), "digest": digest,
                "run_id": run.info.run_id, "short_classes": short, **metrics}


@task(name="fewshot", **STAGE_OPTIONS)
def fewshot(target: dict, cells: list[dict], config: FewShotConfig, tracking: Tracking) -> dict:
    """The grid's table and learning curve; the chosen cell as a trained handle plus its test metrics."""
    with stage_run(tracking, "fewshot"):
        mlflow.log_params({"fewshot.shots": config.shots, "fewshot.seeds": config.seeds,
                           "fewshot.strategies": config.strategies,
                           **{f"fewshot.finetune.{n}": v for n, v in config.finetune.model_dump().items()}})
        table = pd.DataFrame([{k: c[k] for k in ("strategy", "k", "seed", "shots", "val_accuracy", "test_accuracy",
                                                  "test_macro_f1", "seconds", "run_id")} for c in cells])
        log_table(table, "fewshot_grid.json")
        mlflow.log_text(table.to_csv(index=False), "fewshot_grid.csv")
        log_figure(learning_curve_figure(cells), "plots/fewshot_learning_curve.png")
        largest = max(config.shots)
        at_largest = [c for c in cells if c["k"] == largest]
        mean_val = {s: statistics.mean(c["val_accuracy"] for c in at_largest if c["strategy"] == s)
                    for s in config.strategies}
        best = max(config.strategies, key=lambda s: mean_val[s])  # ties: the first listed
        chosen = next(c for c in at_largest if c["strategy"] == best and c["seed"] == config.seeds[0])
        for s in config.strategies:
            values = [c["test_accuracy"] for c in at_largest if c["strategy"] == s]
            mlflow.log_metrics({f"{s}_val_accuracy": mean_val[s], f"{s}_test_accuracy": statistics.mean(values)})
        _, train_y = _split(target, "train")
        _, test_y = _split(target, "test")
        metrics = {"fewshot_accuracy": chosen["test_accuracy"], "fewshot_macro_f1": chosen["test_macro_f1"],
                   "fewshot_majority_baseline": majority_baseline(train_y, test_y), "shots": chosen["shots"]}
        mlflow.log_metrics(metrics)
        mlflow.set_tags({"fewshot.chosen_strategy": best, "fewshot.chosen_k": largest,
                         "fewshot.chosen_run_id": chosen["run_id"]})
        return {"model_dir": chosen["model_dir"], "digest": chosen["digest"], "run_id": chosen["run_id"],
                "strategy": best, "k": largest, **metrics,
                "metrics": {"test_accuracy": chosen["test_accuracy"], "test_macro_f1": chosen["test_macro_f1"],
                            "val_accuracy": chosen["val_accuracy"]}}
