"""Evaluate: test-split metrics, per-class table, confusion matrix and attention maps."""

from __future__ import annotations

import mlflow
import pandas as pd
from prefect import task

from lowlm.config import DecodeConfig
from lowlm.data.corpus import encode_labels
from lowlm.evaluation.metrics import bleu, chrf, classification_report, majority_baseline, rouge
from lowlm.evaluation.plots import attention_figure, attention_matrix_figure, confusion_matrix_figure
from lowlm.inference.classifier import TextClassifier
from lowlm.inference.translator import Translator
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, log_dataset, log_figure, log_json, log_table, stage_run


@task(name="evaluate", **STAGE_OPTIONS)
def evaluate(corpus: dict, trained: dict, tracking: Tracking) -> dict:
    with stage_run(tracking, "evaluate"):
        classifier = TextClassifier.load(trained["model_dir"])
        labels = corpus["labels"]
        test = pd.read_parquet(corpus["splits"]["test"])
        train = pd.read_parquet(corpus["splits"]["train"])
        log_dataset(test, name="test", digest=corpus["digests"]["test"], source=corpus["sources"]["test"],
                    context="test")
        y_true = encode_labels(test["label"], labels, corpus["splits"]["test"])
        probs = classifier.predict_proba(test["text"].tolist())
        y_pred = probs.argmax(dim=1).tolist()
        report = classification_report(y_true, y_pred, labels)
        baseline = majority_baseline(encode_labels(train["label"], labels, corpus["splits"]["train"]), y_true)
        metrics = {"test_accuracy": report["accuracy"], "test_majority_baseline": baseline,
                   "test_macro_f1": report["macro_f1"]}
        mlflow.log_metrics(metrics)
        per_class = pd.DataFrame(report["per_class"]).T.rename_axis("label").reset_index()
        log_table(per_class, "per_class.json")
        log_json(report, "classification_report.json")
        log_figure(confusion_matrix_figure(report["confusion_matrix"], labels), "plots/confusion_matrix.png")
        predictions = test.assign(predicted=[labels[i] for i in y_pred], score=probs.max(dim=1).values.tolist())
        log_table(predictions.head(200), "test_predictions.json")
        _log_attention(classifier, test["text"].head(8).tolist(), labels, y_pred[:8])
        return {"metrics": metrics, "test_digest": corpus["digests"]["test"]}


def _log_attention(classifier: TextClassifier, texts: list[str], labels: list[str], preds: list[int]) -> None:
    """Attention weights over the tokens of a few test sentences (models that pool with attention)."""
    if not classifier.has_attention or not texts:
        return
    rows = [(*classifier.attention(text), f"predicted {labels[pred]}: {text[:80]}") for text, pred in zip(texts, preds)]
    log_figure(attention_figure(rows, title="Attention over test sentences"), "plots/attention.png")


@task(name="evaluate-seq2seq", **STAGE_OPTIONS)
def evaluate_seq2seq(corpus: dict, trained: dict, decode: DecodeConfig, bleu_tokenize: str,
                     tracking: Tracking) -> dict:
    """BLEU, chrF and ROUGE of detokenised output against the raw test references; attention maps."""
    with stage_run(tracking, "evaluate"):
        mlflow.log_params({f"decode.{k}": v for k, v in decode.model_dump().items()})
        translator = Translator.load(trained["model_dir"])
        test = pd.read_parquet(corpus["splits"]["test"])
        log_dataset(test, name="test", digest=corpus["digests"]["test"], source=corpus["sources"]["test"],
                    context="test", targets="target")
        sources, references = test["source"].tolist(), test["target"].tolist()
        greedy = translator.translate(sources, beam_size=1, max_length=decode.max_length)
        beam = translator.translate(sources, beam_size=decode.beam_size, max_length=decode.max_length,
                                    length_penalty=decode.length_penalty)
        metrics = {"test_bleu_greedy": bleu(greedy, references, tokenize=bleu_tokenize),
                   "test_bleu": bleu(beam, references, tokenize=bleu_tokenize),
                   "test_chrf": chrf(beam, references),
                   **{f"test_{k}": v for k, v in rouge(beam, references).items()}}
        mlflow.log_metrics(metrics)
        log_table(test.assign(greedy=greedy, beam=beam).head(200), "test_outputs.json")
        for i, text in enumerate(sources[: decode.attention_samples]):
            src_tokens, out_tokens, weights = translator.attention(text, max_length=decode.max_length)
            log_figure(attention_matrix_figure(src_tokens, out_tokens, weights.numpy(), title=text[:80]),
                       f"plots/attention_{i}.png")
        return {"metrics": metrics, "test_digest": corpus["digests"]["test"], "bleu_tokenize": bleu_tokenize}
