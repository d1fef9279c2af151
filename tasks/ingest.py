"""Ingest: read, validate and split a labelled corpus; write the splits as Parquet; log them as inputs."""

from __future__ import annotations

import mlflow
from prefect import task

import pandas as pd

from lowlm.config import CorpusConfig, PairCorpusConfig
from lowlm.config.data import TextCorpusConfig
from lowlm.data.corpus import load_corpus
from lowlm.data.incoming_pairs import pairs_content_digest
from lowlm.data.pairs import load_pairs
from lowlm.data.unlabelled import load_texts
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_dataset, log_table, output_dir, stage_run


@task(name="ingest", **STAGE_OPTIONS)
def ingest(corpus: CorpusConfig, work_dir: str, tracking: Tracking, stage: str = "ingest",
           fingerprint: str = "") -> dict:
    """``fingerprint`` (the files' content hash) keys the cache, so changed files re-run ingestion."""
    with stage_run(tracking, stage):
        mlflow.log_params({f"corpus.{k}": v for k, v in corpus.model_dump().items()})
        data = load_corpus(corpus)
        folder = output_dir(work_dir, stage, digest_of(corpus, data.digests))
        paths = data.save(folder)
        for split, path in paths.items():
            log_dataset(data.frame(split), name=f"{stage}-{split}", digest=data.digests[split],
                        source=data.sources[split], context=split)
            mlflow.log_metric(f"rows_{split}", len(data.splits[split]))
        mlflow.log_metric("num_labels", len(data.labels))
        counts = data.frame("train")["label"].value_counts().rename_axis("label").reset_index(name="train_rows")
        log_table(counts, "label_counts.json")
        log_table(data.frame("train").head(50), "train_sample.json")
        return {"splits": paths, "digests": data.digests, "content_digest": data.content_digest(),
                "labels": data.labels, "sources": data.sources,
                "rows": {s: len(d) for s, d in data.splits.items()}}


@task(name="ingest-pairs", **STAGE_OPTIONS)
def ingest_pairs(corpus: PairCorpusConfig, work_dir: str, tracking: Tracking, fingerprint: str = "") -> dict:
    """Parallel corpus: read, filter (counts logged), split and save source/target pairs."""
    with stage_run(tracking, "ingest"):
        mlflow.log_params({f"corpus.{k}": v for k, v in corpus.model_dump().items()})
        data = load_pairs(corpus)
        folder = output_dir(work_dir, "ingest-pairs", digest_of(corpus, data.digests))
        paths = data.save(folder)
        for split, path in paths.items():
            log_dataset(data.frame(split), name=f"ingest-{split}", digest=data.digests[split],
                        source=data.sources[split], context=split, targets="target")
            mlflow.log_metric(f"rows_{split}", len(data.splits[split]))
            for reason, count in data.filtered.get(split, {}).items():
                mlflow.log_metric(f"filtered_{reason}_{split}", count)
        log_table(data.frame("train").head(50), "train_sample.json")
        return {"splits": paths, "digests": data.digests, "content_digest": pairs_content_digest(data.splits),
                "sources": data.sources, "rows": {s: len(p) for s, p in data.splits.items()},
                "filtered": data.filtered, "languages": [corpus.source_language, corpus.target_language]}


@task(name="ingest-text", **STAGE_OPTIONS)
def ingest_text(corpus: TextCorpusConfig, work_dir: str, tracking: Tracking, fingerprint: str = "") -> dict:
    """Unlabelled text: read every source, drop (and count) empty, short, repeated and excluded texts, split."""
    with stage_run(tracking, "ingest"):
        mlflow.log_dict(corpus.model_dump(mode="json"), "corpus.json")
        mlflow.log_params({"corpus.sources": len(corpus.sources), "corpus.exclude": len(corpus.exclude),
                           "corpus.seed": corpus.seed})
        data = load_texts(corpus)
        digests = {split: data.digest(split) for split in data.splits}
        folder = output_dir(work_dir, "ingest-text", digest_of(corpus, digests))
        paths = {}
        for split, texts in data.splits.items():
            frame = pd.DataFrame({"text": texts})
            paths[split] = str(folder / f"{split}.parquet")
            frame.to_parquet(paths[split], index=False)
            log_dataset(frame, name=f"ingest-{split}", digest=digests[split], source=work_dir, context=split,
                        targets=None)
            mlflow.log_metrics({f"rows_{split}": len(texts), f"words_{split}": sum(len(t.split()) for t in texts)})
        mlflow.log_metrics({f"dropped_{reason}": n for reason, n in data.dropped.items()})
        log_table(pd.DataFrame({"source": list(data.counts), "texts": list(data.counts.values())}), "sources.json")
        return {"splits": paths, "digests": digests, "content_digest": digest_of(sorted(digests.items())),
                "rows": {s: len(t) for s, t in data.splits.items()}}
