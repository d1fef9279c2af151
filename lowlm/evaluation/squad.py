"""The official SQuAD v1.1 metric: exact match and token F1 after the same answer normalisation,
each the maximum over a question's gold answers, averaged over questions, in points (0-100).

The normalisation is the evaluation script's (``evaluate-v1.1.py``): lower case, punctuation removed,
the articles "a", "an" and "the" removed, whitespace collapsed.

>>> normalize_answer("The  Denver Broncos!")
'denver broncos'
>>> exact_match("the Broncos", ["Denver Broncos", "Broncos"]), round(f1("Denver", ["Denver Broncos"]), 4)
(1.0, 0.6667)
>>> squad_scores(["Denver Broncos", "Carolina"], [["Denver Broncos"], ["Carolina Panthers", "the Panthers"]])
{'exact_match': 50.0, 'f1': 83.33333333333333}
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (in the script's order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(predicted) & Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    return float(max((normalize_answer(prediction) == normalize_answer(g) for g in golds), default=False))


def f1(prediction: str, golds: Sequence[str]) -> float:
    """The best token-overlap F1 of the prediction against any gold answer (0 to 1)."""
    return max((_f1(prediction, g) for g in golds), default=0.0)


def squad_scores(predictions: Sequence[str], golds: Sequence[Sequence[str]]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` in points over aligned predictions and gold-answer lists."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    n = max(1, len(golds))
    return {"exact_match": 100.0 * sum(exact_match(p, g) for p, g in zip(predictions, golds)) / n,
            "f1": 100.0 * sum(f1(p, g) for p, g in zip(predictions, golds)) / n}
