"""Calibration: temperature scaling, expected calibration error, and the out-of-scope rejection threshold.

A model's softmax probabilities are often far too sure (a bag of n-grams gives 1 - 1e-16). Temperature
scaling divides the logits by one number ``T`` fitted on validation (Guo et al., 2017): the predicted
class never changes, only how sure the model says it is. A rejection threshold on the top probability
then turns "not sure" into ``out_of_scope``: it is chosen on validation to maximise the mean of
in-scope accuracy and out-of-scope recall.

>>> logits = torch.tensor([[8.0, 0.0], [8.0, 0.0], [0.0, 8.0], [8.0, 0.0]])
>>> labels = torch.tensor([0, 0, 1, 1])           # 3 of 4 right, each with probability 0.9997
>>> round(expected_calibration_error(torch.softmax(logits, 1), labels), 3)
0.25
>>> t = fit_temperature(logits, labels)
>>> round(expected_calibration_error(torch.softmax(logits / t, 1), labels), 3)
0.0

In ``labels`` here and in ``calibrate``, ``-1`` marks an out-of-scope row (an intent never trained on).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch

LOG_T_RANGE = (math.log(1e-2), math.log(1e3))  # temperatures searched: 0.01 .. 1000
DEFAULT_THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 20)]  # 0.05, 0.10, ..., 0.95


def _nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float) -> float:
    return torch.nn.functional.cross_entropy(logits / temperature, labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, iterations: int = 100) -> float:
    """The ``T > 0`` that minimises the mean negative log-likelihood of ``softmax(logits / T)``.

    The NLL is convex in ``1/T``, so it has one minimum along ``log T``: a golden-section search over
    ``log T`` in [log 0.01, log 1000] finds it, deterministically (float64). No rows: 1.0.

    >>> logits = torch.tensor([[2.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    >>> round(fit_temperature(logits, torch.tensor([0, 0, 1, 1])), 3)   # 3 of 4: sigmoid(2 / T) = 0.75, T = 2 / ln 3
    1.82
    >>> round(fit_temperature(logits, torch.tensor([0, 0, 1, 0])), 2)   # all right: as sure as allowed
    0.01
    """
    logits, labels = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        return 1.0
    lo, hi = LOG_T_RANGE
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = _nll(logits, labels, math.exp(a)), _nll(logits, labels, math.exp(b))
    for _ in range(iterations):
        if fa <= fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = _nll(logits, labels, math.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = _nll(logits, labels, math.exp(b))
    return math.exp((lo + hi) / 2)


def expected_calibration_error(probs: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error: the top probabilities fall in ``bins`` equal-width bins
    ((0, 1/bins], ..., ((bins-1)/bins, 1]); the mean over rows of |accuracy - mean confidence| of each
    row's bin. 0.0 for no rows.

    >>> probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    >>> round(expected_calibration_error(probs, torch.tensor([0, 1, 1, 1]), bins=10), 6)  # (2|.5-.9| + 2|1-.6|) / 4
    0.4
    """
    probs, labels = torch.as_tensor(probs, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.long)
    if len(labels) == 0:
        return 0.0
    confidence, predicted = probs.max(dim=1)
    correct = (predicted == labels).double()
    which = torch.clamp(torch.ceil(confidence * bins).long() - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            total += rows.sum().item() * abs(correct[rows].mean().item() - confidence[rows].mean().item())
    return total / len(labels)


def choose_threshold(top_probs: Sequence[float], is_in_scope: Sequence[bool], correct: Sequence[bool],
                     candidates: Sequence[float]) -> tuple[float, float, float | None]:
    """The candidate threshold with the best mean of in-scope accuracy and out-of-scope recall, and both.

    A row is accepted when its top probability is at least the threshold, else rejected as out of scope.
    In-scope accuracy: in-scope rows accepted and correct / in-scope rows. Out-of-scope recall:
    out-of-scope rows rejected / out-of-scope rows (None when there are none: then in-scope accuracy
    alone decides). Ties go to the smallest threshold.

    >>> top = [0.9, 0.8, 0.4, 0.3, 0.6]
    >>> choose_threshold(top, [True, True, True, False, False], [True, True, False, False, False], [0.2, 0.5, 0.7])
    (0.7, 0.6666666666666666, 1.0)
    """
    if not candidates:
        raise ValueError("choose_threshold: give at least one candidate threshold")
    top = torch.as_tensor(list(top_probs), dtype=torch.float64)
    in_scope = torch.as_tensor(list(is_in_scope), dtype=torch.bool)
    right = torch.as_tensor(list(correct), dtype=torch.bool) & in_scope
    n_in, n_out = int(in_scope.sum()), int((~in_scope).sum())
    best = None
    for threshold in sorted(candidates):
        accepted = top >= threshold
        accuracy = (accepted & right).sum().item() / n_in if n_in else 0.0
        recall = (~accepted & ~in_scope).sum().item() / n_out if n_out else None
        score = accuracy if recall is None else (accuracy + recall) / 2
        if best is None or score > best[0]:
            best = (score, float(threshold), accuracy, recall)
    return best[1], best[2], best[3]


@dataclass
class Calibration:
    """What ``calibrate`` fitted (``threshold`` None: no rejection) and the validation figures behind it."""

    temperature: float = 1.0
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def calibrate(logits: torch.Tensor, labels: Sequence[int], temperature: bool = True, reject: bool = False,
              candidates: Sequence[float] = DEFAULT_THRESHOLDS, bins: int = 15) -> Calibration:
    """Fit the temperature (when ``temperature``) on the in-scope rows of validation ``logits`` (``labels``
    are class indices, -1 for out of scope), then, when ``reject`` or any row is out of scope, the
    rejection threshold on the calibrated probabilities. ``metrics``: ``val_ece_before``,
    ``val_ece_after``, ``temperature``, and with a threshold ``threshold``, ``val_in_scope_accuracy`` and
    ``val_oos_recall`` (when validation holds out-of-scope rows)."""
    logits = torch.as_tensor(logits, dtype=torch.float64)
    labels = torch.as_tensor(list(labels), dtype=torch.long)
    in_scope = labels >= 0
    t = fit_temperature(logits[in_scope], labels[in_scope]) if temperature else 1.0
    probs = torch.softmax(logits / t, dim=1)
    metrics = {"val_ece_before": expected_calibration_error(torch.softmax(logits[in_scope], 1), labels[in_scope], bins),
               "val_ece_after": expected_calibration_error(probs[in_scope], labels[in_scope], bins),
               "temperature": t}
    threshold = None
    if reject or not in_scope.all():
        top, predicted = probs.max(dim=1)
        threshold, accuracy, recall = choose_threshold(top.tolist(), in_scope.tolist(),
                                                       (predicted == labels).tolist(), candidates)
        metrics |= {"threshold": threshold, "val_in_scope_accuracy": accuracy}
        if recall is not None:
            metrics["val_oos_recall"] = recall
    return Calibration(t, threshold, metrics)
