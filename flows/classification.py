"""Text classification as a Prefect DAG, tracked in MLflow.

    (translators for back-translation, resolved first)
    ingest ─> ingest-fewshot ─> tokenize ─> augment (shards) ─> train ─> adversarial
                                                          ├────> fewshot (on the second corpus)
                                                          └────> evaluate ─> register

The few-shot corpus is read and checked before anything trains: a bad one fails fast.

One flow run is one MLflow parent run; each stage logs to its own nested run.

Run it:  python -m flows.classification sample --set train.epochs=3
"""

from __future__ import annotations

import sys

from prefect import flow

from lowlm.config import PipelineConfig
from lowlm.data.corpus import corpus_fingerprint
from flows.augmenting import augment_split, classification_translators
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run, tracking_uri
from tasks.adversarial import adversarial
from tasks.evaluate import evaluate
from tasks.fewshot import fewshot
from tasks.ingest import ingest
from tasks.register import register
from tasks.summarize import summarize
from tasks.tokenize import tokenize
from tasks.train import train


@flow(name="classification")
def classification(config: PipelineConfig, resume: bool = False) -> dict:
    """Train, evaluate and register a text classifier from one pipeline config."""
    guard_api_run(config)  # a run started through the API reads and writes only where its deployment allows
    work = WorkFolder(config.work_dir)  # stage outputs and their cached results live here
    translators = classification_translators(config, work, tracking_uri())  # one version each, checked now
    with pipeline_run("classification", config) as tracking:

        corpus = work(ingest)(config.corpus, work.path, tracking, fingerprint=corpus_fingerprint(config.corpus))
        target = None
        if config.fewshot.enabled:  # read and checked now: a bad second corpus fails before any training
            target = work(ingest.with_options(name="ingest-fewshot"))(
                config.fewshot.corpus, work.path, tracking, stage="ingest-fewshot",
                fingerprint=corpus_fingerprint(config.fewshot.corpus))
        vocab = work(tokenize)(corpus, config.tokenizer, work.path, tracking)
        train_split = augment_split(corpus, config.augment, work, tracking, translators)
        trained = work(train)(corpus, train_split, vocab, config.model, config.train, work.path, tracking,
                              resume=resume, calibration=config.calibration)
        attack = work(adversarial)(corpus, trained, config.attack, tracking)
        transfer = None
        if target is not None:
            transfer = work(fewshot)(target, trained, config.fewshot, work.path, tracking)
        evaluation = work(evaluate)(corpus, trained, tracking)
        digests = {**corpus["digests"], "content": corpus["content_digest"], "train_augmented": train_split["digest"]}
        registered = register(corpus, trained, evaluation, config.task, config.registry.model_name,
                              config.registry.metric, config.digest(), digests, tracking)

        summary = {**evaluation["metrics"], "best_val": trained["best_val"]}
        if attack.get("enabled"):
            summary["attack_success_rate"] = attack["attack_success_rate"]
        if transfer:
            summary["fewshot_accuracy"] = transfer["fewshot_accuracy"]
        return summarize(summary, registered, tracking)


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.classification [PRESET] [--set k=v]``: ``lowlm run`` with ``sample`` by default."""
    from flows.cli import alias

    return alias(["run"], argv, default="sample")


if __name__ == "__main__":
    sys.exit(main())
