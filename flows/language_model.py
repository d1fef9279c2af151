"""Language-model pretraining as a Prefect DAG, tracked in MLflow.

    ingest (unlabelled text: sources, exclusions, held-out splits) ─> tokenize ─> train ─> evaluate ─> register

The registered pyfunc model scores texts (perplexity, log-probability) and continues them
(``max_tokens``); a classification pipeline starts its encoder from it with
``pretrained: {uri: models:/NAME@champion}``. The gate keeps the version with the lower test perplexity.

Run it:  lowlm run lm-sample
"""

from __future__ import annotations

from prefect import flow

from lowlm.config import LanguageModelPipelineConfig
from lowlm.data.unlabelled import texts_fingerprint
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run
from tasks.ingest import ingest_text
from tasks.language_model import evaluate_lm, train_lm
from tasks.register import register
from tasks.summarize import summarize
from tasks.tokenize import tokenize


@flow(name="lm")
def language_model(config: LanguageModelPipelineConfig, resume: bool = False) -> dict:
    """Pretrain, evaluate and register a GRU/LSTM language model from one pipeline config."""
    guard_api_run(config)
    work = WorkFolder(config.work_dir)
    with pipeline_run("lm", config) as tracking:
        corpus = work(ingest_text)(config.corpus, work.path, tracking, fingerprint=texts_fingerprint(config.corpus))
        vocab = work(tokenize)(corpus, config.tokenizer, work.path, tracking)
        trained = work(train_lm)(corpus, vocab, config.model, config.train, work.path, tracking, resume=resume)
        evaluation = work(evaluate_lm)(corpus, trained, tracking)
        registered = register(corpus, trained, evaluation, config.task, config.registry.model_name,
                              config.registry.metric, config.digest(),
                              {**corpus["digests"], "content": corpus["content_digest"]}, tracking,
                              config=config.model_dump(mode="json"))
        summary = {**evaluation["metrics"], "best_val_perplexity": -trained["best_val"],
                   "tokens_per_second": trained["tokens_per_second"]}
        return summarize(summary, registered, tracking)
