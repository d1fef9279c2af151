"""Evaluate: test-split metrics, per-class table, confusion matrix, attention maps and saliency pages."""

from __future__ import annotations

import mlflow
import pandas as pd
import torch
from prefect import task

from lowlm.config import DecodeConfig
from lowlm.config.attack import SourceNoiseConfig
from lowlm.config.data import OUT_OF_SCOPE
from lowlm.data.corpus import encode_labels, encode_scoped
from lowlm.evaluation.calibration import expected_calibration_error
from lowlm.evaluation.decoding import Decoding, candidates, choose_decoding
from lowlm.evaluation.metrics import (bleu, chrf, classification_report, majority_baseline, repetition, rouge,
                                      score_texts)
from lowlm.evaluation.plots import attention_figure, attention_matrix_figure, confusion_matrix_figure
from lowlm.inference.classifier import TextClassifier
from lowlm.inference.explain import html, saliency, top_ngrams
from lowlm.inference.translator import Translator
from lowlm.robustness.augment import check_wordnet
from lowlm.robustness.noise import source_noise
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, log_dataset, log_figure, log_json, log_table, stage_run


@task(name="evaluate", **STAGE_OPTIONS)
def evaluate(corpus: dict, trained: dict, tracking: Tracking, run_name: str | None = None) -> dict:
    """Test metrics of the calibrated model; ``test_ece`` on the in-scope rows. A test split with
    out-of-scope rows is scored over ``labels + [out_of_scope]``, a rejected row predicted ``out_of_scope``
    (so ``test_accuracy`` counts a rejected out-of-scope row as right), with ``test_in_scope_accuracy`` and
    ``test_oos_recall`` beside it; without such rows ``test_accuracy`` is the plain argmax accuracy."""
    with stage_run(tracking, "evaluate", run_name):
        classifier = TextClassifier.load(trained["model_dir"])
        labels = corpus["labels"]
        test = pd.read_parquet(corpus["splits"]["test"])
        train = pd.read_parquet(corpus["splits"]["train"])
        log_dataset(test, name="test", digest=corpus["digests"]["test"], source=corpus["sources"]["test"],
                    context="test")
        y_true = encode_scoped(test["label"], labels, corpus["splits"]["test"])  # -1: out of scope
        probs = classifier.predict_proba(test["text"].tolist())
        y_pred = probs.argmax(dim=1).tolist()
        in_scope = [y >= 0 for y in y_true]
        ece = expected_calibration_error(probs[in_scope], torch.tensor([y for y in y_true if y >= 0]))
        scope = {}
        if not all(in_scope):  # out-of-scope rows get index len(labels), and so do rejected predictions
            oos, top, threshold = len(labels), probs.max(dim=1).values.tolist(), classifier.threshold
            y_pred = [oos if threshold is not None and p < threshold else y for p, y in zip(top, y_pred)]
            y_true, labels = [oos if y < 0 else y for y in y_true], [*labels, OUT_OF_SCOPE]
            n_in = sum(in_scope)
            right = sum(t == p for t, p, s in zip(y_true, y_pred, in_scope) if s)
            rejected = sum(p == oos for p, s in zip(y_pred, in_scope) if not s)
            scope = {"test_in_scope_accuracy": right / max(n_in, 1), "test_oos_recall": rejected / (len(y_true) - n_in)}
        report = classification_report(y_true, y_pred, labels)
        baseline = majority_baseline(encode_labels(train["label"], corpus["labels"], corpus["splits"]["train"]),
                                     y_true)
        metrics = {"test_accuracy": report["accuracy"], "test_majority_baseline": baseline,
                   "test_macro_f1": report["macro_f1"], "test_ece": ece, **scope}
        mlflow.log_metrics(metrics)
        per_class = pd.DataFrame(report["per_class"]).T.rename_axis("label").reset_index()
        log_table(per_class, "per_class.json")
        log_json(report, "classification_report.json")
        log_figure(confusion_matrix_figure(report["confusion_matrix"], labels), "plots/confusion_matrix.png")
        predictions = test.assign(predicted=[labels[i] for i in y_pred], score=probs.max(dim=1).values.tolist())
        log_table(predictions.head(200), "test_predictions.json")
        _log_attention(classifier, test["text"].head(8).tolist(), labels, y_pred[:8])
        _log_explanations(classifier, test["text"].tolist(), labels, y_pred)
        return {"metrics": metrics, "test_digest": corpus["digests"]["test"]}


def _log_attention(classifier: TextClassifier, texts: list[str], labels: list[str], preds: list[int]) -> None:
    """Attention weights over the tokens of a few test sentences (models that pool with attention): a PNG
    and a page of highlighted text."""
    if not classifier.has_attention or not texts:
        return
    rows = [(*classifier.attention(text), f"predicted {labels[pred]}: {text[:80]}") for text, pred in zip(texts, preds)]
    log_figure(attention_figure(rows, title="Attention over test sentences"), "plots/attention.png")
    mlflow.log_text(html(rows, title="Attention over test sentences"), "explanations/attention.html")


def _log_explanations(classifier: TextClassifier, texts: list[str], labels: list[str], preds: list[int],
                      shown: int = 8) -> None:
    """Saliency of the predicted class over the first test sentences (integrated gradients, or occlusion
    for the bag of n-grams) as a page and a PNG; for the bag, its top words and n-grams per class."""
    rows = []
    for text, pred in zip(texts[:shown], preds[:shown]):
        got = saliency(classifier, text, label=pred if pred < len(classifier.labels) else None)
        rows.append((got["tokens"], got["scores"], f"{got['method']} toward {got['label']}: {text[:80]}"))
    if not rows:
        return
    mlflow.log_text(html(rows, title="Saliency over test sentences (red: toward the class)"),
                    "explanations/saliency.html")
    scaled = [(t, [abs(v) / (max(map(abs, s)) or 1.0) for v in s], c) for t, s, c in rows]
    log_figure(attention_figure(scaled, title="Saliency (|attribution|) over test sentences"), "plots/saliency.png")
    if classifier.model.config.kind == "bag_of_ngrams":
        top = top_ngrams(classifier, texts[:2000], k=20)
        log_table(pd.DataFrame([{"label": label, "rank": i + 1, "ngram": g, "weight": w}
                                for label, items in top.items() for i, (g, w) in enumerate(items)]),
                  "explanations/top_ngrams.json")


@task(name="evaluate-seq2seq", **STAGE_OPTIONS)
def evaluate_seq2seq(corpus: dict, trained: dict, decode: DecodeConfig, bleu_tokenize: str,
                     tracking: Tracking, metric: str = "bleu", noise: SourceNoiseConfig | None = None) -> dict:
    """BLEU, chrF and ROUGE of detokenised output against the raw test references; attention maps; with
    ``noise``, the metric of greedy output on noisy test sources beside the clean one (``test_<metric>_drop_<kind>``)."""
    with stage_run(tracking, "evaluate"):
        mlflow.log_params({f"decode.{k}": v for k, v in decode.model_dump().items()})
        translator = Translator.load(trained["model_dir"])
        test = pd.read_parquet(corpus["splits"]["test"])
        log_dataset(test, name="test", digest=corpus["digests"]["test"], source=corpus["sources"]["test"],
                    context="test", targets="target")
        sources, references = test["source"].tolist(), test["target"].tolist()
        chosen = _chosen_decoding(translator, corpus, decode, metric, bleu_tokenize)
        greedy = translator.translate(sources, beam_size=1, max_length=decode.max_length)
        beam = translator.translate(sources, beam_size=decode.beam_size, max_length=decode.max_length,
                                    length_penalty=decode.length_penalty)
        best = greedy if chosen.beam_size == 1 else beam if chosen == Decoding(decode.beam_size, decode.length_penalty) \
            else translator.translate(sources, beam_size=chosen.beam_size, max_length=decode.max_length,
                                      length_penalty=chosen.length_penalty)
        # test_bleu (the headline and the gate's metric) is the chosen decoding's; greedy and the configured
        # beam are logged beside it
        metrics = {"test_bleu": bleu(best, references, tokenize=bleu_tokenize),
                   "test_bleu_greedy": bleu(greedy, references, tokenize=bleu_tokenize),
                   "test_bleu_beam": bleu(beam, references, tokenize=bleu_tokenize),
                   "test_chrf": chrf(best, references),
                   **{f"test_{k}": v for k, v in rouge(best, references).items()},
                   "test_repeated_trigrams": repetition(best), "reference_repeated_trigrams": repetition(references)}
        mlflow.log_params({"decode.chosen_beam_size": chosen.beam_size,
                           "decode.chosen_length_penalty": chosen.length_penalty})
        mlflow.set_tag("decoding", chosen.name)
        mlflow.log_metrics(metrics)
        log_table(test.assign(greedy=greedy, beam=beam, chosen=best).head(200), "test_outputs.json")
        if noise is not None and noise.enabled:
            metrics.update(_source_noise(translator, test, noise, metric, bleu_tokenize, decode.max_length))
        for i, text in enumerate(sources[: decode.attention_samples]):
            src_tokens, out_tokens, weights = translator.attention(text, max_length=decode.max_length)
            log_figure(attention_matrix_figure(src_tokens, out_tokens, weights.numpy(), title=text[:80]),
                       f"plots/attention_{i}.png")
        return {"metrics": metrics, "test_digest": corpus["digests"]["test"], "bleu_tokenize": bleu_tokenize,
                "decoding": {"beam_size": chosen.beam_size, "length_penalty": chosen.length_penalty}}


def _source_noise(translator: Translator, test: pd.DataFrame, noise: SourceNoiseConfig, metric: str,
                  bleu_tokenize: str, max_length: int) -> dict:
    """The metric's drop when a share of the test sources' words carry noise (greedy decoding, first pairs)."""
    if "word" in noise.kinds:
        check_wordnet()
    mlflow.log_params({f"noise.{k}": v for k, v in noise.model_dump().items()})
    head = test.head(noise.max_pairs)
    found, rows = source_noise(lambda texts: translator.translate(texts, beam_size=1, max_length=max_length),
                               head["source"].tolist(), head["target"].tolist(), noise.kinds, noise.fraction,
                               noise.seed, lambda out, refs: score_texts(metric, out, refs, bleu_tokenize))
    metrics = {f"test_{metric}_noise_clean": found["clean"]}
    for kind in noise.kinds:
        metrics.update({f"test_{metric}_noise_{kind}": found[kind], f"test_{metric}_drop_{kind}": found[f"drop_{kind}"],
                        f"test_noise_words_changed_{kind}": found[f"words_changed_{kind}"]})
    mlflow.log_metrics(metrics)
    log_table(pd.DataFrame(rows), "test_source_noise.json")
    return metrics


def _chosen_decoding(translator: Translator, corpus: dict, decode: DecodeConfig, metric: str,
                     bleu_tokenize: str) -> Decoding:
    """The decoding chosen on the validation split (``decode.select``), or the configured one; the
    candidates' validation scores are logged as a table and as ``val_<metric>_<candidate>`` metrics."""
    configured = Decoding(decode.beam_size, decode.length_penalty)
    if not decode.select:
        return configured
    validation = pd.read_parquet(corpus["splits"]["validation"]).head(decode.selection_max_pairs)
    chosen, rows = choose_decoding(translator.translate, validation["source"].tolist(),
                                   validation["target"].tolist(), candidates(decode.beam_size, decode.length_penalties),
                                   metric, bleu_tokenize, decode.max_length)
    log_table(pd.DataFrame(rows), "decoding_selection.json")
    for row in rows:
        key = "greedy" if row["beam_size"] == 1 else f"beam{row['beam_size']}_lp{row['length_penalty']:g}"
        mlflow.log_metric(f"val_{metric}_{key.replace('.', '_')}", row[metric])
    return chosen
