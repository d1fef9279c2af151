"""Extractive question answering as a Prefect DAG, tracked in MLflow.

    ingest (SQuAD-format JSON, split by article) ─> tokenize ─> train (reader) ─> evaluate ─> register

One flow run is one MLflow parent run; each stage logs to its own nested run. The registered pyfunc
model takes ``context`` and ``question`` columns and answers with the span's text, its character offsets
and a score (``max_answer_tokens`` is an inference parameter). The gate keeps the version with the
higher test F1 (``registry.metric``); evaluate also scores the lexical sliding-window baseline.

Run it:  lowlm run qa-sample
"""

from __future__ import annotations

from prefect import flow

from lowlm.config import QAPipelineConfig
from lowlm.data.squad import qa_fingerprint
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run
from tasks.qa import evaluate_qa, ingest_qa, tokenize_qa, train_qa
from tasks.register import register
from tasks.summarize import summarize


@flow(name="qa")
def qa(config: QAPipelineConfig, resume: bool = False) -> dict:
    """Train, evaluate and register an extractive reader from one pipeline config."""
    guard_api_run(config)
    work = WorkFolder(config.work_dir)
    with pipeline_run("qa", config) as tracking:
        corpus = work(ingest_qa)(config.corpus, work.path, tracking, fingerprint=qa_fingerprint(config.corpus))
        vocab = work(tokenize_qa)(corpus, config.tokenizer, work.path, tracking)
        trained = work(train_qa)(corpus, vocab, config.model, config.train, work.path, tracking, resume=resume)
        evaluation = work(evaluate_qa)(corpus, trained, tracking)
        registered = register(corpus, trained, evaluation, config.task, config.registry.model_name,
                              config.registry.metric, config.digest(),
                              {**corpus["digests"], "content": corpus["content_digest"]}, tracking,
                              config=config.model_dump(mode="json"))
        summary = {**evaluation["metrics"], "best_val_f1": trained["best_val"],
                   "rows_per_second": trained["rows_per_second"]}
        return summarize(summary, registered, tracking)
