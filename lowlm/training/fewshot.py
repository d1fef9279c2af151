"""Few-shot transfer: fine-tune a trained (or pretrained) encoder on k labelled examples per class.

Five strategies, all on the one trainer (``FineTuneConfig`` sets steps and rates):

- ``prototypes``: nearest class centroid of the frozen encoder's features. Squared distance to a
  centroid c is ``-2 x.c + |c|^2`` plus a term equal for every class, so this is exactly a linear head
  with weights ``2c`` and bias ``-|c|^2``: the result is an ordinary classifier.
- ``head``: a new linear head on the frozen encoder; features are computed once and the head trains on
  them full-batch.
- ``gradual_unfreezing`` (ULMFiT, Howard & Ruder 2018): layer groups (embedding, RNN, pooling + head)
  with discriminative rates (each group below the top gets the rate above / ``lr_decay``), slanted
  triangular schedule, and one more group trainable each epoch, from the top.
- ``full``: every weight trains from the first step, at one rate.
- ``scratch``: the same architecture from fresh weights, trained as ``full``: the baseline.

The k-shot rows are an exact seeded sample (``sample_k_per_class``); a class with fewer than k rows uses
all of them, and ``short_classes`` says which.
"""

from __future__ import annotations

import copy
import math
import random
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from lowlm.config import TrainConfig
from lowlm.config.stages import STRATEGIES, FineTuneConfig
from lowlm.evaluation.metrics import classification_report, majority_baseline
from lowlm.inference.classifier import TextClassifier
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.text.batching import Batches
from lowlm.training.objectives import ClassificationObjective, FeatureObjective
from lowlm.training.trainer import Callback, Trainer, seed_everything


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


def short_classes(labels: Sequence, k: int) -> dict:
    """Classes with fewer than ``k`` rows -> how many they have (all of which the sample uses).

    >>> short_classes(["a", "a", "b"], 2)
    {'b': 1}
    """
    counts: dict = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    return {y: n for y, n in counts.items() if n < k}


@torch.no_grad()
def encode_features(classifier: TextClassifier, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    model = classifier.model
    model.eval()
    batches = Batches(classifier.tokenizer.encode_batch(list(texts)), batch_size=batch_size)
    out = torch.empty(len(texts), model.feature_dim)
    for batch in batches:
        out[batch.index] = model.features(batch.ids, batch.lengths)
    return out


def layer_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """The model's parameters in layer groups, bottom (embedding) to top (head), for discriminative rates
    and gradual unfreezing. Every parameter is in exactly one group."""
    modules = dict(model.named_children())
    order = [["embedding", "chars", "src_embedding", "positions"], ["rnn", "encoder"]]
    groups, taken = [], set()
    for names in order:
        params = [p for n in names if n in modules for p in modules[n].parameters()]
        if params:
            groups.append(params)
            taken |= {id(p) for p in params}
    groups.append([p for p in model.parameters() if id(p) not in taken])  # pooling / attention + head
    return groups


class GradualUnfreezing(Callback):
    """In epoch e, only the top e layer groups train (ULMFiT); the rest keep their weights exactly."""

    def __init__(self, groups: list[list[nn.Parameter]]):
        self.groups = groups

    def on_epoch_begin(self, trainer, epoch):
        for depth, group in enumerate(reversed(self.groups)):
            for p in group:
                p.requires_grad_(depth < epoch)

    def on_train_end(self, trainer, result):
        for group in self.groups:
            for p in group:
                p.requires_grad_(True)


@dataclass
class FineTuneResult:
    classifier: TextClassifier
    strategy: str
    shots: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def _fresh_head(model: nn.Module, num_labels: int) -> nn.Linear:
    return nn.Linear(model.feature_dim, num_labels)


def _with_head(model: nn.Module, head: nn.Module, num_labels: int) -> nn.Module:
    model.head = head
    model.dims = {**model.dims, "num_labels": num_labels}
    return model


def fine_tune(base: TextClassifier, strategy: str, texts: Sequence[str], labels: Sequence[int],
              label_names: Sequence[str], config: FineTuneConfig | None = None, seed: int = 13,
              validation: tuple[Sequence[str], Sequence[int]] | None = None, callbacks=()) -> FineTuneResult:
    """A new classifier for ``label_names`` from ``base``'s encoder by ``strategy``, trained on all of
    ``texts``/``labels`` (sample them first with ``sample_k_per_class``). ``validation`` selects the best
    epoch (or step, for the head); without it the last is kept. ``callbacks``: more trainer callbacks
    (the strategies that run the encoder). ``base`` is never changed."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown fine-tuning strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
    config = config or FineTuneConfig()
    n = len(label_names)
    start = time.perf_counter()
    seed_everything(seed)  # before any weight is made: a fresh head (or model) is part of the result
    y = torch.tensor(list(labels), dtype=torch.long)
    history: list[dict] = []
    if strategy in ("prototypes", "head"):
        x = encode_features(base, texts)
        head = _fresh_head(base.model, n)
        if strategy == "prototypes":
            with torch.no_grad():
                centroids = torch.zeros(n, x.shape[1]).index_add_(0, y, x)
                centroids /= torch.bincount(y, minlength=n).clamp(min=1).unsqueeze(1)
                head.weight.copy_(2 * centroids)
                head.bias.copy_(-(centroids ** 2).sum(dim=1))
        else:
            val = None
            if validation is not None:
                val = [(encode_features(base, validation[0]), torch.tensor(list(validation[1]), dtype=torch.long))]
            train_cfg = TrainConfig(epochs=config.steps, lr=config.head_lr, weight_decay=config.weight_decay,
                                    warmup_ratio=0.0, schedule="constant", grad_clip=0.0, patience=0, seed=seed,
                                    progress=False)
            history = Trainer(head, FeatureObjective(), train_cfg).fit([(x, y)], val).history
        model = _with_head(copy.deepcopy(base.model), head, n)
    else:
        if strategy == "scratch":
            model = _with_head(model_from_meta(model_meta(base.model), words=base.tokenizer.tokens()),
                               _fresh_head(base.model, n), n)
        else:
            model = _with_head(copy.deepcopy(base.model), _fresh_head(base.model, n), n)
        batches = Batches(base.tokenizer.encode_batch(list(texts)), y.tolist(), batch_size=config.batch_size,
                          shuffle=True, seed=seed)
        val = None
        if validation is not None:
            val = Batches(base.tokenizer.encode_batch(list(validation[0])), list(validation[1]), batch_size=256)
        epochs = max(1, math.ceil(config.steps / len(batches)))
        callbacks, param_groups = list(callbacks), None
        schedule = "linear"
        if strategy == "gradual_unfreezing":
            groups = layer_groups(model)
            callbacks = [GradualUnfreezing(groups), *callbacks]
            top = len(groups) - 1
            param_groups = [{"params": g, "lr": config.lr / config.lr_decay ** (top - i),
                             "weight_decay": config.weight_decay} for i, g in enumerate(groups)]
            schedule = "slanted_triangular"
            epochs = max(epochs, len(groups))  # every group trains at least one epoch
        train_cfg = TrainConfig(epochs=epochs, batch_size=config.batch_size, lr=config.lr,
                                weight_decay=config.weight_decay, warmup_ratio=config.warmup_ratio,
                                schedule=schedule, patience=0, seed=seed, progress=False)
        objective = ClassificationObjective(n)
        trainer = Trainer(model, objective, train_cfg, callbacks, param_groups=param_groups)
        history = trainer.fit(batches, val).history
    tuned = TextClassifier(model.eval(), base.tokenizer, label_names)
    return FineTuneResult(tuned, strategy, len(texts), time.perf_counter() - start, history)


def evaluate(classifier: TextClassifier, texts: Sequence[str], labels: Sequence[int]) -> dict:
    """``classification_report`` of ``classifier`` on ``texts``."""
    pred = classifier.predict_proba(list(texts)).argmax(dim=1).tolist()
    return classification_report(list(labels), pred, classifier.labels)


@dataclass
class FewShotResult:
    classifier: TextClassifier
    report: dict  # classification_report on the evaluation texts
    majority_baseline: float  # accuracy on the evaluation texts of always predicting train_labels' commonest label
    shots: int


def fit_head(base: TextClassifier, train_texts: Sequence[str], train_labels: Sequence[int],
             eval_texts: Sequence[str], eval_labels: Sequence[int], label_names: Sequence[str], k: int = 8,
             epochs: int = 300, lr: float = 0.1, seed: int = 13, strategy: str = "head") -> FewShotResult:
    """Sample ``k`` examples per class of ``train_*``, fine-tune by ``strategy`` (a new head by default:
    ``epochs`` full-batch steps at ``lr``), evaluate on ``eval_*``.

    The majority baseline takes the most frequent label of all of ``train_labels``, not of the k-shot
    sample: the sample is balanced by construction, so its "most frequent" label would be the
    tie-break's pick (the smallest label) and the baseline the share of label 0 in the evaluation
    texts. The full training split is the label distribution a user of this corpus knows.
    """
    shots = sample_k_per_class(train_labels, k, seed)
    config = FineTuneConfig(steps=epochs, head_lr=lr)
    result = fine_tune(base, strategy, [train_texts[i] for i in shots], [train_labels[i] for i in shots],
                       label_names, config, seed)
    report = evaluate(result.classifier, eval_texts, eval_labels)
    return FewShotResult(result.classifier, report, majority_baseline(train_labels, eval_labels), len(shots))
