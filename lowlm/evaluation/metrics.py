"""Classification metrics on integer labels, computed from the confusion matrix.

>>> m = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
>>> m["accuracy"], round(m["macro_f1"], 3)
(0.75, 0.778)
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable, Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> np.ndarray:
    """Rows are true labels, columns predicted labels."""
    cm = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support per class; 0 where undefined (no predictions or no support)."""
    tp = np.diag(cm).astype(float)
    predicted = cm.sum(axis=0).astype(float)
    support = cm.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def accuracy(y_true: Sequence[int], y_pred: Sequence[int]) -> float:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float((y_true == y_pred).mean()) if len(y_true) else 0.0


def macro_f1(y_true: Sequence[int], y_pred: Sequence[int], num_labels: int) -> float:
    """Mean F1 over the classes present in ``y_true`` or ``y_pred``."""
    cm = confusion_matrix(y_true, y_pred, num_labels)
    _, _, f1, support = per_class(cm)
    present = (support > 0) | (cm.sum(axis=0) > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict:
    """accuracy, macro_f1, and per-class precision/recall/f1/support, plus the confusion matrix."""
    cm = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1, support = per_class(cm)
    return {
        "accuracy": accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, len(labels)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": cm.tolist(),
    }


def majority_baseline(train_labels: Sequence[Hashable], test_labels: Sequence[Hashable]) -> float:
    """Accuracy on ``test_labels`` of always predicting the most frequent label of ``train_labels``.

    The one rule every stage reports beside its accuracy. A tie for most frequent goes to the
    smallest label (label order: ``sorted``), so a balanced training set gives its first label.
    0.0 for an empty test set, as ``accuracy`` gives.

    >>> majority_baseline([0, 1, 1, 2], [1, 1, 0, 2])  # predicts 1 everywhere
    0.5
    >>> majority_baseline([2, 0, 2, 0], [0, 2, 2, 2])  # a tie: 0 and 2 twice each, so 0
    0.25
    """
    counts = Counter(train_labels)
    if not counts:
        raise ValueError("majority_baseline needs at least one training label")
    top = max(counts.values())
    majority = min(label for label, n in counts.items() if n == top)
    hits = sum(bool(label == majority) for label in test_labels)
    return hits / len(test_labels) if len(test_labels) else 0.0


# ----------------------------------------------------------------------------- generated text


def bleu(hypotheses: Sequence[str], references: Sequence[str], tokenize: str = "13a") -> float:
    """Corpus BLEU (sacreBLEU) of detokenised hypotheses against raw references; ``tokenize="zh"`` for Chinese.

    >>> round(bleu(["the cat sat on the mat"], ["the cat sat on the mat"]), 1)
    100.0
    """
    import sacrebleu

    _same_length(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (sacreBLEU), character n-grams: meaningful for Chinese and morphology alike."""
    import sacrebleu

    _same_length(hypotheses, references)
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (rouge-score, with stemming), as percentages."""
    from rouge_score import rouge_scorer

    _same_length(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for hyp, ref in zip(hypotheses, references):
        for key, score in scorer.score(ref, hyp).items():
            totals[key] += score.fmeasure
    n = max(1, len(hypotheses))
    return {key: 100 * value / n for key, value in totals.items()}


def repetition(hypotheses: Sequence[str], n: int = 3) -> float:
    """Share (in percent) of each output's word n-grams that already occurred earlier in that same output,
    averaged over the outputs that have any n-gram: the repeated phrases coverage is meant to stop.

    >>> repetition(["the cat sat the cat sat", "a b c d"])  # 1 of 4 trigrams repeats, then 0 of 2
    12.5
    """
    shares = []
    for text in hypotheses:
        words = text.lower().split()
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            shares.append(1 - len(set(grams)) / len(grams))
    return 100 * sum(shares) / len(shares) if shares else 0.0


def _same_length(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")


def score_texts(metric: str, hypotheses: list[str], references: list[str], bleu_tokenize: str = "13a") -> float:
    if metric == "bleu":
        return bleu(hypotheses, references, tokenize=bleu_tokenize)
    if metric == "chrf":
        return chrf(hypotheses, references)
    return rouge(hypotheses, references)["rougeL"]
