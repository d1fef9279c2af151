"""Optimize: pruned and int8 variants of a new champion, measured and registered beside it.

Each variant of ``optimize.variants`` is built from the trained bundle (``lowlm.optimize``), measured
against the original in the same stage (size on disk; latency through the pyfunc at batch 1 and 64,
p50/p95; the test metric, the original's re-scored here by the same code), and, when it loses at most
``optimize.tolerance`` points, registered as its own version of the same registered model: tagged
``optimized`` with the variant's settings and the version it came from, under the alias
``optimized-<name>``, never through the champion gate. A variant outside the tolerance is only logged.
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow import MlflowClient
from prefect import task

from lowlm.config import Seq2SeqTrainConfig, TrainConfig
from lowlm.config.stages import OptimizeConfig
from lowlm.evaluation.metrics import accuracy, score_texts
from lowlm.inference.bundle import Bundle, load_bundle
from lowlm.optimize.variants import build_variant, folder_bytes, measure
from lowlm.text.batching import PairBatches
from lowlm.training.objectives import train_classifier, train_translator
from lowlm.training.trainer import seed_everything
from tasks._stage import Tracking, digest_of, log_table, output_dir, stage_logger, stage_run
from tasks.integrity import folder_digests, tag_digests
from tasks.model_card import with_variants
from tasks.register import _log_model
from tasks.train import labelled_batches


def test_metric(bundle: Bundle, test: pd.DataFrame, task: str, metric: str, decoding: dict | None,
                bleu_tokenize: str, max_length: int = 80) -> float:
    """The registry metric on the 0-100 scale: accuracy of a classifier, or BLEU / chrF / ROUGE-L of a
    translator's output with the decoding evaluate chose."""
    if task == "seq2seq":
        decoding = decoding or {}
        out = bundle.translate(test["source"].tolist(), beam_size=decoding.get("beam_size", 1), max_length=max_length,
                               length_penalty=decoding.get("length_penalty", 1.0))
        return score_texts(metric, out, test["target"].tolist(), bleu_tokenize)
    predicted = [r["label"] for r in bundle.predict(test["text"].tolist())]
    return 100 * accuracy([str(x) for x in test["label"]], predicted)


def _recovery(corpus: dict, task: str, train: TrainConfig, epochs: int, lr_scale: float):
    """A fine-tune of a pruned bundle on the corpus's train split (the masks keep pruned weights at zero)."""
    cfg = train.model_copy(update={"epochs": epochs, "lr": train.lr * lr_scale, "patience": 0, "warmup_ratio": 0.0,
                                   "progress": False})

    def recover(bundle: Bundle) -> None:
        seed_everything(cfg.seed)
        if task == "seq2seq":
            frame = pd.read_parquet(corpus["splits"]["train"])
            batches = PairBatches(bundle.source.encode_batch(frame["source"].tolist()),
                                  bundle.target.encode_target_batch(frame["target"].tolist()), cfg.batch_size,
                                  shuffle=True, seed=cfg.seed)
            train_translator(bundle, batches, None, [], [], cfg)
        else:
            batches = labelled_batches(corpus["splits"]["train"], bundle.tokenizer, bundle.labels, cfg.batch_size,
                                       True, cfg.seed)
            train_classifier(bundle.model, batches, None, len(bundle.labels), cfg)
    return recover


@task(name="optimize")
def optimize(corpus: dict, trained: dict, evaluation: dict, registered: dict, config: OptimizeConfig, task: str,
             metric: str, train: TrainConfig | Seq2SeqTrainConfig, work_dir: str, tracking: Tracking,
             max_length: int = 80) -> dict:
    """Variants of the version ``registered`` when it is a new champion; returns ``{"variants": {name: row},
    "original": ...}``. ``max_length``: a translator's decoding limit."""
    with stage_run(tracking, "optimize"):
        if not (registered.get("new") and registered.get("alias") == "champion"):
            reason = "not a new champion: variants are made of champions only"
            mlflow.set_tag("skipped", reason)
            return {"variants": {}, "skipped": reason}
        test = pd.read_parquet(corpus["splits"]["test"])
        texts = test["source" if task == "seq2seq" else "text"].astype(str).tolist()[: config.latency_rows]
        decoding, tokenize = evaluation.get("decoding"), evaluation.get("bleu_tokenize", "13a")
        params = {"beam_size": (decoding or {}).get("beam_size", 1), "max_length": max_length} \
            if task == "seq2seq" else None
        base = measure(trained["model_dir"], texts, config.repeats, params)
        base_metric = test_metric(load_bundle(trained["model_dir"]), test, task, metric, decoding, tokenize,
                                  max_length)
        mlflow.log_metrics({"original_bytes": base["bytes"], "original_metric": base_metric,
                            "original_batch1_p50_ms": base["batch1_p50_ms"]})
        rows, client = {}, MlflowClient(tracking.uri)
        for variant in config.variants:
            out = output_dir(work_dir, "optimize", digest_of(trained["digest"], variant, train))
            recover = _recovery(corpus, task, train, variant.recovery_epochs, variant.recovery_lr_scale) \
                if variant.prune and variant.recovery_epochs else None
            record = build_variant(trained["model_dir"], variant, out, recover)
            got = measure(out, texts, config.repeats, params)
            value = test_metric(load_bundle(out), test, task, metric, decoding, tokenize, max_length)
            row = {**record, **got, "metric": value, "metric_drop": base_metric - value,
                   "size_ratio": base["bytes"] / got["bytes"],
                   "batch1_speedup": base["batch1_p50_ms"] / got["batch1_p50_ms"],
                   "batch64_speedup": base["batch64_p50_ms"] / got["batch64_p50_ms"]}
            row["registered"] = None
            if row["metric_drop"] <= config.tolerance:
                row["registered"] = _register_variant(client, registered, out, row, texts[:3], decoding)
            else:
                stage_logger("lowlm.optimize").info(f"variant {variant.name}: {row['metric_drop']:.2f} points lost, "
                                                    f"over optimize.tolerance {config.tolerance}; not registered")
            mlflow.log_metrics({f"{variant.name}.{k}": float(row[k]) for k in
                                ("size_ratio", "batch1_speedup", "batch64_speedup", "metric_drop", "bytes",
                                 "batch1_p50_ms", "batch1_p95_ms", "batch64_p50_ms", "batch64_p95_ms")})
            rows[variant.name] = row
        base_version = client.get_model_version(registered["name"], registered["version"])
        card = with_variants(base_version.description or "", rows)
        client.update_model_version(registered["name"], registered["version"], description=card)
        mlflow.log_text(card, "model_card_with_variants.md")
        table = pd.DataFrame([{"variant": "original", **base, "metric": base_metric}] +
                             [{"variant": k, **{c: v for c, v in r.items() if c != "variant"}} for k, r in rows.items()])
        log_table(table, "optimize.json")
        return {"variants": rows, "original": {**base, "metric": base_metric}}


def _register_variant(client: MlflowClient, registered: dict, folder, row: dict, sample: list[str],
                      decoding: dict | None) -> dict:
    """A version of the registered model holding the variant, tagged and aliased ``optimized-<name>``;
    deleted again if anything after its creation fails."""
    name, alias = registered["name"], f"optimized-{row['variant']}"
    info = _log_model(str(folder), sample, decoding)
    version = None
    try:
        version = mlflow.register_model(info.model_uri, name)
        tags = {"optimized": "true", "optimized_from_version": registered["version"],
                "model_digest": digest_of(folder_digests(folder)), "bytes": str(folder_bytes(folder)),
                **{f"optimization.{k}": str(v) for k, v in row.items()
                   if k in ("variant", "weights", "runtime", "prune", "prune_scope", "sparsity", "recovery_epochs")},
                **{k: f"{row[k]:.6f}" for k in ("metric", "metric_drop", "size_ratio", "batch1_speedup",
                                                "batch1_p50_ms", "batch64_p50_ms")}}
        for key, value in tags.items():
            client.set_model_version_tag(name, version.version, key, value)
        tag_digests(client, name, str(version.version), info.model_uri)
        settings = "\n".join(f"- {k}: {v}" for k, v in tags.items() if k.startswith("optimization."))
        client.update_model_version(name, version.version, description=(
            f"# {name} version {version.version}: `{alias}`\n\nAn optimized variant of version "
            f"{registered['version']} (whose card holds its data, metrics and limitations), never champion.\n\n"
            f"{settings}\n- test metric: {row['metric']:.2f} ({row['metric_drop']:+.2f} points against the original)\n"
            f"- {row['size_ratio']:.2f}x smaller on disk, batch-1 latency {row['batch1_speedup']:.2f}x faster\n"))
        client.set_registered_model_alias(name, alias, version.version)
    except BaseException:
        if version is not None:
            client.delete_model_version(name, version.version)
        raise
    return {"version": str(version.version), "alias": alias}
