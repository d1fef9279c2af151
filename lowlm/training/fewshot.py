"""Few-shot transfer: keep a trained encoder, fit a new linear head on k labelled examples per class.

The encoder is frozen, so its features for the k-shot set are computed once and the head trains on
them full-batch, on the one trainer (``FeatureObjective``), in milliseconds. The result is a new
``TextClassifier`` for the new label set.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from lowlm.text.batching import Batches
from lowlm.evaluation.metrics import classification_report, majority_baseline
from lowlm.config import TrainConfig
from lowlm.inference.classifier import TextClassifier
from lowlm.training.objectives import FeatureObjective
from lowlm.training.trainer import Trainer, seed_everything


def sample_k_per_class(labels: Sequence[int], k: int, seed: int = 13) -> list[int]:
    """Indices of up to ``k`` seeded examples of each class, in a shuffled order.

    >>> sorted(sample_k_per_class([0, 0, 0, 1, 1], k=2, seed=1))[:1]
    [0]
    """
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    chosen = [i for members in by_class.values() for i in rng.sample(members, min(k, len(members)))]
    rng.shuffle(chosen)
    return chosen


@torch.no_grad()
def encode_features(classifier: TextClassifier, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    model = classifier.model
    model.eval()
    batches = Batches(classifier.tokenizer.encode_batch(list(texts)), batch_size=batch_size)
    out = torch.empty(len(texts), model.feature_dim)
    for batch in batches:
        out[batch.index] = model.features(batch.ids, batch.lengths)
    return out


@dataclass
class FewShotResult:
    classifier: TextClassifier
    report: dict  # classification_report on the evaluation texts
    majority_baseline: float  # accuracy on the evaluation texts of always predicting train_labels' commonest label
    shots: int


def fit_head(base: TextClassifier, train_texts: Sequence[str], train_labels: Sequence[int],
             eval_texts: Sequence[str], eval_labels: Sequence[int], label_names: Sequence[str], k: int = 8,
             epochs: int = 30, lr: float = 1e-2, seed: int = 13) -> FewShotResult:
    """Fine-tune a new head on ``k`` examples per class of ``train_*``; evaluate on ``eval_*``.

    Full-batch AdamW steps (one epoch = one step on the k-shot set), constant rate, no clipping.

    The majority baseline takes the most frequent label of all of ``train_labels``, not of the k-shot
    sample: the sample is balanced by construction, so its "most frequent" label would be the
    tie-break's pick (the smallest label) and the baseline the share of label 0 in the evaluation
    texts. The full training split is the label distribution a user of this corpus knows.
    """
    shots = sample_k_per_class(train_labels, k, seed)
    x = encode_features(base, [train_texts[i] for i in shots])
    y = torch.tensor([train_labels[i] for i in shots], dtype=torch.long)
    seed_everything(seed)
    head = nn.Linear(x.shape[1], len(label_names))
    config = TrainConfig(epochs=epochs, lr=lr, weight_decay=0.01, warmup_ratio=0.0, schedule="constant",
                         grad_clip=0.0, patience=0, seed=seed, progress=False)
    Trainer(head, FeatureObjective(), config).fit([(x, y)])
    model = copy.deepcopy(base.model)
    model.head = head
    model.dims = {**model.dims, "num_labels": len(label_names)}
    tuned = TextClassifier(model.eval(), base.tokenizer, label_names)
    pred = tuned.predict_proba(list(eval_texts)).argmax(dim=1).tolist()
    report = classification_report(list(eval_labels), pred, label_names)
    return FewShotResult(tuned, report, majority_baseline(train_labels, eval_labels), len(shots))
