"""Tokenize: fit the vocabulary on the training split and save it as JSON."""

from __future__ import annotations

import hashlib

import mlflow
import pandas as pd
from prefect import task

from lowlm.config import PairTokenizerConfig, TokenizerConfig
from lowlm.text.tokenizer import UNK_WARNING_RATE, Tokenizer, unknown_rate_warning
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_table, output_dir, stage_logger, stage_run


@task(name="tokenize", **STAGE_OPTIONS)
def tokenize(corpus: dict, config: TokenizerConfig, work_dir: str, tracking: Tracking) -> dict:
    with stage_run(tracking, "tokenize"):
        mlflow.log_params({f"tokenizer.{k}": v for k, v in config.model_dump().items()})
        train = pd.read_parquet(corpus["splits"]["train"])
        tok = _train_tokenizer(train["text"].tolist(), config)
        path = tok.save(output_dir(work_dir, "tokenize", digest_of(config, corpus["digests"]["train"])) / "tokenizer.json")
        mlflow.log_artifact(str(path))
        stats = tok.stats(train["text"].tolist())
        stats["unk_rate_train"] = stats.pop("unk_rate")
        mlflow.log_metrics(stats)
        validation = pd.read_parquet(corpus["splits"]["validation"])["text"].tolist()
        check_unknown_rate(tok, validation, "validation_unk_rate", "warning.unk_rate", "tokenizer.kind")
        sample = train.head(20).assign(tokens=[" ".join(tok.backend.encode(t).tokens) for t in train["text"].head(20)])
        log_table(sample, "tokenized_sample.json")
        return {"path": str(path), "digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "vocab_size": tok.vocab_size}


@task(name="tokenize", **STAGE_OPTIONS)
def pretrained_tokenizer(corpus: dict, pretrained: dict, tracking: Tracking) -> dict:
    """The tokenizer of the language model the encoder starts from (``pretrained``: its handle), instead
    of one fitted here: the LM's embedding rows are its ids. Logs how well it fits this corpus."""
    with stage_run(tracking, "tokenize"):
        mlflow.log_params({"tokenizer.from": pretrained["uri"], "tokenizer.pretrained_digest": pretrained["digest"]})
        tok = Tokenizer.load(pretrained["tokenizer"])
        train = pd.read_parquet(corpus["splits"]["train"])["text"].tolist()
        stats = tok.stats(train)
        stats["unk_rate_train"] = stats.pop("unk_rate")
        mlflow.log_metrics(stats)
        validation = pd.read_parquet(corpus["splits"]["validation"])["text"].tolist()
        rate = tok.stats(validation)["unk_rate"]
        mlflow.log_metric("validation_unk_rate", rate)
        if rate > UNK_WARNING_RATE:
            message = (f"{rate:.1%} of validation tokens are unknown to the language model's vocabulary: pretrain it "
                       f"on text that includes this corpus's training texts (unlabelled)")
            stage_logger("lowlm.tokenize").warning(message)
            mlflow.set_tag("warning.unk_rate", message)
        path = pretrained["tokenizer"]
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()[:16]
        return {"path": path, "digest": digest, "vocab_size": tok.vocab_size}


def check_unknown_rate(tok: Tokenizer, texts: list[str], metric: str, tag: str, setting: str) -> str | None:
    """Log the share of ``[UNK]`` among the tokens of ``texts`` as ``metric``; when it is high, warn
    (Prefect log and the MLflow tag ``tag``) with what to change. Returns the warning, if any."""
    rate = tok.stats(texts)["unk_rate"]
    mlflow.log_metric(metric, rate)
    message = unknown_rate_warning(rate, tok.kind, setting)
    if message:
        stage_logger("lowlm.tokenize").warning(message)
        mlflow.set_tag(tag, message)
    return message


def _train_tokenizer(texts, config: TokenizerConfig, reserved=()) -> Tokenizer:
    return Tokenizer.train(texts, kind=config.kind, vocab_size=config.vocab_size, min_frequency=config.min_frequency,
                           lowercase=config.lowercase, nfkc=config.nfkc, max_length=config.max_length,
                           reserved=reserved)


@task(name="tokenize-pairs", **STAGE_OPTIONS)
def tokenize_pairs(corpus: dict, config: PairTokenizerConfig, work_dir: str, tracking: Tracking,
                   reserved: list[str] | None = None, pretrained: dict | None = None) -> dict:
    """Source and target vocabularies, separate or joint, fitted on the training pairs; ``reserved``
    tokens (the back-translation tag) get their own source ids. ``pretrained`` (a language model's handle):
    the source side reads with the LM's tokenizer (its embedding rows are the ids), and so does the target
    side when the tokenizer is joint; only ``max_length`` comes from ``config``."""
    reserved = list(reserved or [])
    if pretrained is not None and reserved:
        raise ValueError("a pretrained encoder reads with its language model's vocabulary, which has no place for "
                         f"the reserved tokens {reserved}")
    with stage_run(tracking, "tokenize"):
        mlflow.log_params({"tokenizer.joint": config.joint,
                           **{f"tokenizer.source.{k}": v for k, v in config.source.model_dump().items()},
                           **{f"tokenizer.target.{k}": v for k, v in config.target.model_dump().items()}})
        train = pd.read_parquet(corpus["splits"]["train"])
        sources, targets = train["source"].tolist(), train["target"].tolist()
        validation = pd.read_parquet(corpus["splits"]["validation"])
        folder = output_dir(work_dir, "tokenize-pairs", digest_of(config, corpus["digests"]["train"], reserved,
                                                                  pretrained["digest"] if pretrained else None))
        if reserved:
            mlflow.log_param("tokenizer.source.reserved", reserved)
        if pretrained is not None:
            mlflow.log_params({"tokenizer.from": pretrained["uri"], "tokenizer.pretrained_digest": pretrained["digest"]})
            source = Tokenizer.load(pretrained["tokenizer"])
            source.max_length = config.source.max_length
            target = Tokenizer.from_json(source.to_json()) if config.joint else _train_tokenizer(targets, config.target)
            target.max_length = config.target.max_length
        elif config.joint:
            source = _train_tokenizer(sources + targets, config.source, reserved)
            target = Tokenizer.from_json(source.to_json())
            target.max_length = config.target.max_length
        else:
            source, target = _train_tokenizer(sources, config.source, reserved), _train_tokenizer(targets, config.target)
        paths = {"source": source.save(folder / "source_tokenizer.json"),
                 "target": target.save(folder / "target_tokenizer.json")}
        for side, tok in (("source", source), ("target", target)):
            mlflow.log_artifact(str(paths[side]))
            stats = tok.stats(sources if side == "source" else targets)
            mlflow.log_metrics({f"{side}_{k}": v for k, v in stats.items()})
            setting = "tokenizer.source.kind" if config.joint else f"tokenizer.{side}.kind"
            check_unknown_rate(tok, validation[side].tolist(), f"{side}_validation_unk_rate",
                               f"warning.{side}_unk_rate", setting)
        digest = hashlib.sha256(paths["source"].read_bytes() + paths["target"].read_bytes()).hexdigest()[:16]
        return {"source": str(paths["source"]), "target": str(paths["target"]), "digest": digest,
                "joint": config.joint}
