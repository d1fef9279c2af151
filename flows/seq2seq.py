"""Translation and summarization as a Prefect DAG, tracked in MLflow.

    (reverse model for back-translation and the language model that starts the encoder, resolved first)
    ingest ─> tokenize ─> augment (source noise, back-translated pairs; shards) ─> train ─> evaluate ─> register
        ─> optimize (int8 / pruned variants of a new champion, registered under optimized-<name>)

One flow run is one MLflow parent run; each stage logs to its own nested run. The registered pyfunc
model takes raw source strings and returns generated strings (``beam_size`` and ``max_length`` are
inference parameters).

Run it:  python -m flows.seq2seq translate-sample --set train.epochs=5
"""

from __future__ import annotations

import sys

from prefect import flow

from lowlm.config import Seq2SeqPipelineConfig
from lowlm.data.pairs import pairs_fingerprint
from lowlm.text.tokenizer import BT_TAG
from flows.augmenting import augment_pair_split, seq2seq_translators
from flows.runners import check_runners
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run, tracking_uri
from tasks.evaluate import evaluate_seq2seq
from tasks.ingest import ingest_pairs
from tasks.optimize import optimize
from tasks.register import register
from tasks.registered import fetch_language_model
from tasks.summarize import summarize
from tasks.tokenize import tokenize_pairs
from tasks.train import train_seq2seq


@flow(name="seq2seq")
def seq2seq(config: Seq2SeqPipelineConfig, resume: bool = False) -> dict:
    """Train, evaluate and register an attention encoder-decoder from one pipeline config."""
    guard_api_run(config)  # a run started through the API reads and writes only where its deployment allows
    check_runners(config.augment if config.augment.enabled else None)  # a named Dask scheduler answers, now
    work = WorkFolder(config.work_dir)  # stage outputs and their cached results live here
    translators = seq2seq_translators(config, work, tracking_uri())  # the reverse model: one version, checked now
    lm = None  # the language model the encoder starts from: one version, checked against the model config now
    if config.pretrained is not None:
        lm = fetch_language_model(config.pretrained.uri, work.path, tracking_uri(), config.model)
    with pipeline_run("seq2seq", config) as tracking:

        corpus = work(ingest_pairs)(config.corpus, work.path, tracking, fingerprint=pairs_fingerprint(config.corpus))
        bt = config.augment.backtranslation if config.augment.enabled else None
        reserved = [BT_TAG] if bt is not None and bt.tag else []  # tagged back-translation: the tag is one token
        vocab = work(tokenize_pairs)(corpus, config.tokenizer, work.path, tracking, reserved=reserved, pretrained=lm)
        train_split = augment_pair_split(corpus, config.augment, work, tracking, translators)
        trained = work(train_seq2seq)(corpus, train_split, vocab, config.model, config.train, work.path, tracking,
                                      resume=resume, pretrained=lm)
        evaluation = work(evaluate_seq2seq)(corpus, trained, config.decode, config.train.bleu_tokenize, tracking,
                                            metric=config.registry.metric,  # decoding chosen on validation
                                            noise=config.robustness)
        digests = {**corpus["digests"], "content": corpus["content_digest"], "train_augmented": train_split["digest"]}
        registered = register(corpus, trained, evaluation, config.task, config.registry.model_name,
                              config.registry.metric, config.digest(), digests, tracking,
                              config=config.model_dump(mode="json"))

        if config.optimize.enabled:  # int8 and pruned variants of a new champion, registered beside it
            optimize(corpus, trained, evaluation, registered, config.optimize, config.task, config.registry.metric,
                     config.train, work.path, tracking, max_length=config.decode.max_length)
        summary = {**evaluation["metrics"], "best_val": trained["best_val"],
                   "target_tokens_per_second": trained["tokens_per_second"]}
        return summarize(summary, registered, tracking)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.seq2seq [PRESET] [--set k=v]``: ``lowlm run`` with ``translate-sample`` by default."""
    from flows.cli import alias

    return alias(["run"], argv, default="translate-sample")


if __name__ == "__main__":
    sys.exit(main())
