"""Tokenize: fit the vocabulary on the training split and save it as JSON."""

from __future__ import annotations

import hashlib

import mlflow
import pandas as pd
from prefect import task

from lowlm.config import TokenizerConfig
from lowlm.tokenizer import Tokenizer
from tasks._stage import STAGE_OPTIONS, Tracking, digest_of, log_table, output_dir, stage_run


@task(name="tokenize", **STAGE_OPTIONS)
def tokenize(corpus: dict, config: TokenizerConfig, work_dir: str, tracking: Tracking) -> dict:
    with stage_run(tracking, "tokenize"):
        mlflow.log_params({f"tokenizer.{k}": v for k, v in config.model_dump().items()})
        train = pd.read_parquet(corpus["splits"]["train"])
        tok = Tokenizer.train(train["text"], kind=config.kind, vocab_size=config.vocab_size,
                              min_frequency=config.min_frequency, lowercase=config.lowercase, nfkc=config.nfkc,
                              max_length=config.max_length)
        path = tok.save(output_dir(work_dir, "tokenize", digest_of(config, corpus["digests"]["train"])) / "tokenizer.json")
        mlflow.log_artifact(str(path))
        encoded = tok.encode_batch(train["text"].tolist())
        lengths = pd.Series([len(e) for e in encoded])
        unk = sum(e.count(1) for e in encoded) / max(1, int(lengths.sum()))
        mlflow.log_metrics({"vocab_size": tok.vocab_size, "mean_tokens": float(lengths.mean()),
                            "max_tokens": int(lengths.max()), "unk_rate_train": unk})
        sample = train.head(20).assign(tokens=[" ".join(tok.backend.encode(t).tokens) for t in train["text"].head(20)])
        log_table(sample, "tokenized_sample.json")
        return {"path": str(path), "digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "vocab_size": tok.vocab_size}
