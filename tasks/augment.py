"""Augment: new training rows from a chain of augmenters, computed in shards, merged into one split.

``augment-shard`` runs the chain on one shard of rows (``flows.augmenting`` maps the shards over
the configured task runner); ``augment`` (labelled rows) and ``augment-pairs`` (pairs: source noise
and back-translated pairs) merge the shards, drop what adds nothing (``keep_new``), and log the
counts per augmenter, a table of original/augmented samples and the augmented split as a dataset
input. Every step is cached on its inputs: a shard's rows and config, the seed, and the handles of
the translators it uses (their registered version and digest), so an unchanged re-run is a cache
hit and a new reverse model is a miss.
"""

from __future__ import annotations

from functools import lru_cache

import mlflow
import pandas as pd
from prefect import task

from lowlm.config.augment import AugmentConfig, BackTranslationAugmenter, MonolingualConfig, PairAugmentConfig
from lowlm.data.corpus import encode_labels, split_digest
from lowlm.data.monolingual import load_monolingual
from lowlm.data.pairs import pairs_digest
from lowlm.inference.translator import Translator
from lowlm.robustness.augment import NewRow, augment_shard as run_shard, augmenter_names, keep_new
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_dataset, log_table, output_dir, stage_run

BT = "backtranslation"


@lru_cache(maxsize=8)
def _translator(path: str, digest: str) -> Translator:
    return Translator.load(path)  # one copy per process and version, shared by its shards


@task(name="augment-shard", **STAGE_OPTIONS)
def augment_shard(split: str, split_digest: str, column: str, start: int, stop: int, augmenters: list,
                  seed: int, shard: int, translators: dict, work_dir: str) -> dict:
    """New rows for rows ``start:stop`` of the split file: a parquet of (row, augmenter, text)."""
    texts = pd.read_parquet(split, columns=[column])[column].iloc[start:stop].tolist()

    def models(name: str, cfg: BackTranslationAugmenter) -> list[Translator]:
        return [_translator(h["path"], h["digest"]) for h in translators[name]]

    rows = run_shard(texts, list(range(start, stop)), augmenters, seed, shard, models)
    key = digest_of(split_digest, column, start, stop, [[n, c] for n, c in augmenters], seed, shard, translators)
    path = output_dir(work_dir, "augment-shards", key) / "rows.parquet"
    pd.DataFrame({"row": [r.row for r in rows], "augmenter": [r.augmenter for r in rows],
                  "text": [r.text for r in rows]}).to_parquet(path, index=False)
    return {"path": str(path), "shard": shard, "rows": len(rows)}


def _new_rows(parts: list[dict]) -> list[NewRow]:
    frames = [pd.read_parquet(p["path"]) for p in sorted(parts, key=lambda p: p["shard"])]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["row", "augmenter", "text"])
    return [NewRow(int(r), a, t) for r, a, t in zip(frame["row"], frame["augmenter"], frame["text"])]


def _log_counts(names: list[str], made: list[NewRow], kept: list[NewRow], dropped, train_rows: int,
                total_rows: int) -> dict[str, int]:
    """Log the row counts (made and kept per augmenter, dropped per reason); returns the kept counts."""
    counts = {name: sum(r.augmenter == name for r in kept) for name in names}
    metrics = {"rows_train": total_rows, "rows_original": train_rows, "rows_added": total_rows - train_rows}
    for name in names:
        metrics[f"rows_made_{name}"] = sum(r.augmenter == name for r in made)
        metrics[f"rows_{name}"] = counts[name]
    metrics.update({f"dropped_{reason}": n for reason, n in dropped.items()})
    mlflow.log_metrics(metrics)
    return counts


def _log_translators(translators: dict) -> None:
    tags = {}
    for name, handles in translators.items():
        for i, h in enumerate(handles):
            tags[f"translator.{name}.{i}"] = f"{h['uri']} ({h['ref']})"
            tags[f"translator.{name}.{i}.digest"] = h["digest"]
    if tags:
        mlflow.set_tags(tags)


def _unchanged(train_path: str, digest: str) -> dict:
    return {"train": train_path, "digest": digest, "added": 0, "counts": {}}


@task(name="augment", **STAGE_OPTIONS)
def augment(corpus: dict, config: AugmentConfig, parts: list[dict], work_dir: str, tracking: Tracking,
            translators: dict | None = None) -> dict:
    """The training split to use: the original when disabled, else the original + the kept new rows."""
    if not config.enabled:
        return _unchanged(corpus["splits"]["train"], corpus["digests"]["train"])
    translators = translators or {}
    with stage_run(tracking, "augment"):
        mlflow.log_params({"augment.augmenters": [c.model_dump(mode="json") for c in config.augmenters],
                           "augment.seed": config.seed, "augment.shard_rows": config.shard_rows,
                           "augment.runner": config.runner, "augment.shards": len(parts)})
        _log_translators(translators)
        train = pd.read_parquet(corpus["splits"]["train"])
        made = _new_rows(parts)
        kept, dropped = keep_new(train["text"].tolist(), made)
        new = train.iloc[[r.row for r in kept]].reset_index(drop=True).copy()
        new["text"] = [r.text for r in kept]
        combined = pd.concat([train, new], ignore_index=True)
        labels = corpus["labels"]
        digest = split_digest(combined["text"], encode_labels(combined["label"], labels), labels)
        key = digest_of(config, corpus["digests"]["train"], translators)
        path = output_dir(work_dir, "augment", key) / "train.parquet"
        combined.to_parquet(path, index=False)
        names = augmenter_names(config.augmenters)
        counts = _log_counts(names, made, kept, dropped, len(train), len(combined))
        sample = pd.DataFrame({"augmenter": [r.augmenter for r in kept], "original": train["text"].iloc[[r.row for r in kept]].tolist(),
                               "augmented": new["text"].tolist(), "label": new["label"].astype(str).tolist()})
        log_table(_spread(sample, config.sample_rows), "augmented_sample.json")
        log_dataset(combined, name="augment-train", digest=digest, source=str(path), context="train")
        return {"train": str(path), "digest": digest, "added": len(combined) - len(train), "counts": counts}


def _spread(sample: pd.DataFrame, n: int) -> pd.DataFrame:
    """Up to ``n`` rows, taken in turn from each augmenter so every one shows."""
    if sample.empty or n == 0:
        return sample.head(0)
    groups = [g.head(n) for _, g in sample.groupby("augmenter", sort=False)]
    picked = pd.concat(groups).assign(_k=lambda f: f.groupby("augmenter").cumcount()).sort_values("_k", kind="stable")
    return picked.drop(columns="_k").head(n).reset_index(drop=True)


@task(name="ingest-monolingual", **STAGE_OPTIONS)
def ingest_monolingual(corpus: dict, config: MonolingualConfig, work_dir: str, fingerprint: str = "") -> dict:
    """The monolingual target text back-translation reads, less what the corpus already has as targets."""
    targets = set()
    for split in corpus["splits"].values():
        targets.update(pd.read_parquet(split, columns=["target"])["target"].tolist())
    text = load_monolingual(config, exclude=targets)
    digest = digest_of(text.sentences)
    path = output_dir(work_dir, "monolingual", digest_of(digest, corpus["content_digest"])) / "target.parquet"
    pd.DataFrame({"target": text.sentences}).to_parquet(path, index=False)
    return {"path": str(path), "digest": digest, "rows": len(text.sentences), "dropped": text.dropped,
            "source": text.source}


@task(name="augment-pairs", **STAGE_OPTIONS)
def augment_pairs(corpus: dict, config: PairAugmentConfig, parts: list[dict], work_dir: str, tracking: Tracking,
                  monolingual: dict | None = None, bt_parts: list[dict] | None = None,
                  translators: dict | None = None) -> dict:
    """Training pairs to use: the originals, noisy copies of some sources (each with its clean target),
    and back-translated pairs (synthetic source, monolingual target)."""
    if not config.enabled:
        return _unchanged(corpus["splits"]["train"], corpus["digests"]["train"])
    translators = translators or {}
    with stage_run(tracking, "augment"):
        mlflow.log_params({"augment.augmenters": [c.model_dump(mode="json") for c in config.augmenters],
                           "augment.backtranslation": config.backtranslation.model_dump(mode="json")
                           if config.backtranslation else None,
                           "augment.seed": config.seed, "augment.shard_rows": config.shard_rows,
                           "augment.runner": config.runner})
        _log_translators(translators)
        train = pd.read_parquet(corpus["splits"]["train"])
        made = _new_rows(parts)
        kept, dropped = keep_new(train["source"].tolist(), made)
        noisy = pd.DataFrame({"source": [r.text for r in kept], "target": train["target"].iloc[[r.row for r in kept]].tolist()})
        frames, names = [train, noisy], augmenter_names(config.augmenters)
        sample = pd.DataFrame({"augmenter": [r.augmenter for r in kept],
                               "original": train["source"].iloc[[r.row for r in kept]].tolist(),
                               "augmented": noisy["source"].tolist(), "target": noisy["target"].tolist()})
        if monolingual is not None:
            targets = pd.read_parquet(monolingual["path"])["target"].tolist()
            synthetic = _new_rows(bt_parts or [])
            made += synthetic
            good = [r for r in synthetic if r.text.replace("[BT]", "").strip()]
            dropped["empty"] = dropped.get("empty", 0) + len(synthetic) - len(good)
            kept += good
            bt = pd.DataFrame({"source": [r.text for r in good], "target": [targets[r.row] for r in good]})
            frames.append(bt)
            names.append(BT)
            sample = pd.concat([sample, pd.DataFrame({"augmenter": BT, "original": bt["target"],
                                                      "augmented": bt["source"], "target": bt["target"]})])
            mlflow.log_metrics({"monolingual_rows": monolingual["rows"],
                                **{f"monolingual_dropped_{k}": v for k, v in monolingual["dropped"].items()}})
        before = sum(len(f) for f in frames)
        combined = pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)
        dropped["repeat_pair"] = before - len(combined)
        digest = pairs_digest(list(zip(combined["source"], combined["target"])))
        key = digest_of(config, corpus["digests"]["train"], monolingual and monolingual["digest"], translators)
        path = output_dir(work_dir, "augment-pairs", key) / "train.parquet"
        combined.to_parquet(path, index=False)
        counts = _log_counts(names, made, kept, dropped, len(train), len(combined))
        log_table(_spread(sample.reset_index(drop=True), config.sample_rows), "augmented_sample.json")
        log_dataset(combined, name="augment-train", digest=digest, source=str(path), context="train", targets="target")
        return {"train": str(path), "digest": digest, "added": len(combined) - len(train), "counts": counts}
