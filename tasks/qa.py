"""The question-answering stages: ingest SQuAD-format questions, fit the tokenizer, train a reader,
evaluate it (SQuAD's exact match and F1) next to the lexical sliding-window baseline."""

from __future__ import annotations

import hashlib

import mlflow
import pandas as pd
from prefect import task

from lowlm.config.data import QACorpusConfig
from lowlm.config.models import ReaderConfig
from lowlm.config.stages import ReaderTrainConfig, TokenizerConfig
from lowlm.data.squad import load_qa
from lowlm.evaluation.lexical import lexical_answers
from lowlm.evaluation.plots import qa_curves_figure
from lowlm.evaluation.squad import exact_match, f1, squad_scores
from lowlm.inference.reader import QAReader
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.reading import train_reader
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_dataset, log_figure, log_table, output_dir, stage_run
from tasks.tokenize import check_unknown_rate
from tasks.train import checkpointing, log_epochs, save_trained


def _texts(frame: pd.DataFrame) -> list[str]:
    """Each context once, then every question: what the tokenizer is fitted on."""
    return list(dict.fromkeys(frame["context"])) + frame["question"].tolist()


@task(name="ingest-qa", **STAGE_OPTIONS)
def ingest_qa(corpus: QACorpusConfig, work_dir: str, tracking: Tracking, fingerprint: str = "") -> dict:
    """Read, check and split (by article) the questions; count what was skipped. ``fingerprint`` (the
    files' content hash) keys the cache, so a changed or added file re-runs ingestion."""
    with stage_run(tracking, "ingest"):
        mlflow.log_params({f"corpus.{k}": v for k, v in corpus.model_dump().items()})
        data = load_qa(corpus)
        digests = {split: data.digest(split) for split in data.splits}
        paths = data.save(output_dir(work_dir, "ingest-qa", digest_of(corpus, digests)))
        for split, frame in data.splits.items():
            log_dataset(frame.drop(columns=["answers", "starts"]).assign(answer=frame["answers"].str[0]),
                        name=f"ingest-{split}", digest=digests[split], source=data.sources[0], context=split,
                        targets="answer")
            mlflow.log_metrics({f"questions_{split}": len(frame), f"articles_{split}": len(data.articles[split]),
                                f"paragraphs_{split}": frame[["article", "paragraph"]].drop_duplicates().shape[0]})
        mlflow.log_metrics({f"skipped_{reason}": n for reason, n in data.skipped.items()})
        mlflow.log_dict({split: numbers for split, numbers in data.articles.items()}, "articles.json")
        log_table(data.splits["train"].head(50), "train_sample.json")
        return {"splits": paths, "digests": digests, "content_digest": digest_of(sorted(digests.items())),
                "sources": {split: ", ".join(data.sources) for split in data.splits}, "rows": {s: len(f) for s, f in data.splits.items()},
                "skipped": dict(data.skipped)}


@task(name="tokenize-qa", **STAGE_OPTIONS)
def tokenize_qa(corpus: dict, config: TokenizerConfig, work_dir: str, tracking: Tracking) -> dict:
    with stage_run(tracking, "tokenize"):
        mlflow.log_params({f"tokenizer.{k}": v for k, v in config.model_dump().items()})
        train = pd.read_parquet(corpus["splits"]["train"])
        tok = Tokenizer.train(_texts(train), kind=config.kind, vocab_size=config.vocab_size,
                              min_frequency=config.min_frequency, lowercase=config.lowercase, nfkc=config.nfkc,
                              max_length=config.max_length)
        path = tok.save(output_dir(work_dir, "tokenize-qa", digest_of(config, corpus["digests"]["train"]))
                        / "tokenizer.json")
        mlflow.log_artifact(str(path))
        stats = tok.stats(_texts(train))
        mlflow.log_metrics({"vocab_size": stats["vocab_size"], "unk_rate_train": stats["unk_rate"]})
        validation = pd.read_parquet(corpus["splits"]["validation"])
        check_unknown_rate(tok, _texts(validation), "validation_unk_rate", "warning.unk_rate", "tokenizer.kind")
        return {"path": str(path), "digest": hashlib.sha256(path.read_bytes()).hexdigest()[:16],
                "vocab_size": tok.vocab_size}


@task(name="train-qa", **STAGE_OPTIONS)
def train_qa(corpus: dict, tokenizer: dict, model: ReaderConfig, config: ReaderTrainConfig, work_dir: str,
             tracking: Tracking, resume: bool = False) -> dict:
    with stage_run(tracking, "train") as run:
        mlflow.log_params({f"model.{k}": v for k, v in model.model_dump().items()})
        mlflow.log_params({f"train.{k}": v for k, v in config.model_dump().items()})
        tok = Tokenizer.load(tokenizer["path"])
        train = pd.read_parquet(corpus["splits"]["train"])
        validation = pd.read_parquet(corpus["splits"]["validation"])
        key = digest_of(model, config, corpus["digests"]["train"], corpus["digests"]["validation"], tokenizer["digest"])
        out = output_dir(work_dir, "train-qa", key)
        saves, start = checkpointing(out, resume)
        reader, result, counts = train_reader(model, tok, train, validation, config, callbacks=[log_epochs, *saves],
                                              resume=start)
        mlflow.log_metrics({"parameters": sum(p.numel() for p in reader.model.parameters()),
                            "best_epoch": result.best_epoch, f"best_val_{config.metric}": result.best_metric,
                            "train_seconds": result.seconds, "rows_per_second": result.throughput, **counts})
        log_figure(qa_curves_figure(result.history), "plots/training_curves.png")
        folder, digest = save_trained(reader, out, "reader")
        return {"model_dir": folder, "digest": digest, "run_id": run.info.run_id, "best_epoch": result.best_epoch,
                "best_val": result.best_metric, "rows_per_second": result.throughput}


@task(name="evaluate-qa", **STAGE_OPTIONS)
def evaluate_qa(corpus: dict, trained: dict, tracking: Tracking, baseline: bool = True) -> dict:
    """Test exact match and F1 (points) of the reader, and of the lexical baseline on the same questions;
    a per-question table (question, gold answers, prediction, score, EM, F1) in MLflow."""
    with stage_run(tracking, "evaluate"):
        reader = QAReader.load(trained["model_dir"])
        test = pd.read_parquet(corpus["splits"]["test"])
        golds = [list(a) for a in test["answers"]]
        answers = reader.answer(test["context"].tolist(), test["question"].tolist())
        predicted = [a["answer"] for a in answers]
        scores = squad_scores(predicted, golds)
        metrics = {"test_exact_match": scores["exact_match"], "test_f1": scores["f1"]}
        if baseline:
            lexical = squad_scores(lexical_answers(test["context"].tolist(), test["question"].tolist(),
                                                   reader.model.config.max_answer_tokens), golds)
            metrics.update({"test_baseline_exact_match": lexical["exact_match"], "test_baseline_f1": lexical["f1"]})
        mlflow.log_metrics(metrics)
        log_table(pd.DataFrame({
            "id": test["id"], "article": test["article"], "question": test["question"],
            "gold": [" | ".join(g) for g in golds], "predicted": predicted,
            "score": [a["score"] for a in answers],
            "exact_match": [exact_match(p, g) for p, g in zip(predicted, golds)],
            "f1": [f1(p, g) for p, g in zip(predicted, golds)]}), "predictions.json")
        return {"metrics": metrics}
