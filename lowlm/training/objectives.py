"""Per-task objectives for the trainer: the loss of a batch, validation metrics, the selecting score."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from lowlm.evaluation.metrics import accuracy, macro_f1, score_texts
from lowlm.inference.classifier import predict_proba
from lowlm.models.seq2seq import sequence_loss
from lowlm.text.tokenizer import PAD_ID
from lowlm.training.trainer import Loss, Trainer


def classification_metrics(model: nn.Module, batches, num_labels: int) -> dict:
    """loss, accuracy and macro-F1 of a classifier on labelled batches."""
    probs = predict_proba(model, batches)
    labels = batches.labels
    loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    pred = probs.argmax(dim=1).tolist()
    return {"loss": loss, "accuracy": accuracy(labels.tolist(), pred),
            "macro_f1": macro_f1(labels.tolist(), pred, num_labels)}


class ClassificationObjective:
    """Cross-entropy on ``Batch(ids, lengths, labels)``; selects on validation accuracy or macro-F1."""

    unit = "rows"

    def __init__(self, num_labels: int, metric: str = "accuracy"):
        self.num_labels, self.metric = num_labels, metric

    def loss(self, model, batch, device) -> Loss:
        labels = batch.labels.to(device)
        logits = model(batch.ids.to(device), batch.lengths.to(device))
        return Loss(nn.functional.cross_entropy(logits, labels), len(labels))

    def evaluate(self, model, validation, device) -> dict:
        return {f"val_{k}": v for k, v in classification_metrics(model, validation, self.num_labels).items()}

    def score(self, metrics: dict) -> float:
        return metrics[f"val_{self.metric}"]


class FeatureObjective:
    """Cross-entropy of a head on precomputed features: batches are ``(features, labels)`` pairs."""

    unit = "rows"

    def loss(self, model, batch, device) -> Loss:
        x, y = batch
        return Loss(nn.functional.cross_entropy(model(x.to(device)), y.to(device)), len(y))

    def evaluate(self, model, validation, device) -> dict:
        model.eval()
        with torch.no_grad():
            correct = total = 0
            for x, y in validation:
                correct += int((model(x.to(device)).argmax(dim=1).cpu() == y).sum())
                total += len(y)
        return {"val_accuracy": correct / max(1, total)}

    def score(self, metrics: dict) -> float:
        return metrics["val_accuracy"]


@torch.no_grad()
def teacher_forced_loss(model, batches, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        tgt = b.tgt.to(device)
        n = int((tgt[:, 1:] != 0).sum())
        total += sequence_loss(model(b.src.to(device), b.src_lengths.to(device), tgt), tgt[:, 1:]).item() * n
        count += n
    return total / max(1, count)


class Seq2SeqObjective:
    """Teacher-forced, label-smoothed loss on ``PairBatch``; validation adds a metric on greedy decodes
    of ``sources`` against ``references`` (BLEU, chrF or ROUGE-L), or selects on the loss alone."""

    unit = "tokens"

    def __init__(self, translator=None, sources: Sequence[str] = (), references: Sequence[str] = (),
                 metric: str = "loss", label_smoothing: float = 0.0, max_length: int = 80,
                 bleu_tokenize: str = "13a"):
        self.translator, self.sources, self.references = translator, list(sources), list(references)
        self.metric, self.label_smoothing = metric, label_smoothing
        self.max_length, self.bleu_tokenize = max_length, bleu_tokenize

    def loss(self, model, batch, device) -> Loss:
        tgt = batch.tgt.to(device)
        logp, penalty = model.teacher_forced(batch.src.to(device), batch.src_lengths.to(device), tgt)
        loss = sequence_loss(logp, tgt[:, 1:], self.label_smoothing)
        if model.config.coverage and model.config.coverage_loss:  # See et al.'s loss + lambda * covloss, per token
            mask = tgt[:, 1:] != PAD_ID
            loss = loss + model.config.coverage_loss * (penalty * mask).sum() / mask.sum().clamp(min=1)
        return Loss(loss, int((tgt[:, 1:] != PAD_ID).sum()))

    def evaluate(self, model, validation, device) -> dict:
        metrics = {"val_loss": teacher_forced_loss(model, validation, device)}
        if self.metric != "loss":
            hypotheses = self.translator.translate(self.sources, beam_size=1, max_length=self.max_length)
            metrics[f"val_{self.metric}"] = score_texts(self.metric, hypotheses, self.references, self.bleu_tokenize)
        return metrics

    def score(self, metrics: dict) -> float:
        return -metrics["val_loss"] if self.metric == "loss" else metrics[f"val_{self.metric}"]


class LanguageModelObjective:
    """Next-token cross-entropy of a ``LanguageModel`` (both directions) on unlabelled ``Batches``;
    validation reports the loss per token and its perplexity, and selects on the loss."""

    unit = "tokens"

    def __init__(self, samples: int = 0):
        self.samples = samples  # sampled softmax in training (``LanguageModel.loss``); 0: the full softmax

    def loss(self, model, batch, device) -> Loss:
        total, count = model.loss(batch.ids.to(device), batch.lengths.to(device), self.samples)
        return Loss(total / max(1, count), count)

    @torch.no_grad()
    def evaluate(self, model, validation, device) -> dict:
        model.eval()
        total, count = 0.0, 0
        for b in validation:
            t, n = model.loss(b.ids.to(device), b.lengths.to(device))
            total, count = total + t.item(), count + n
        loss = total / max(1, count)
        return {"val_loss": loss, "val_perplexity": math.exp(min(loss, 50.0))}

    def score(self, metrics: dict) -> float:
        return -metrics["val_loss"]


def train_classifier(model: nn.Module, train, validation, num_labels: int, config, callbacks=(),
                     trainable=None, resume=None, param_groups=None, words=None):
    """The trainer with the classification objective: ``model`` ends with its best validation epoch;
    ``config.perturbation`` adds embedding-space adversarial training (ASCC needs ``words``, the
    vocabulary by id).

    >>> train_classifier(net, train_batches, val_batches, 4, TrainConfig(epochs=3))   # doctest: +SKIP
    """
    objective = ClassificationObjective(num_labels, config.metric)
    if config.perturbation.method != "none":  # FGM, PGD or FreeLB at every step
        from lowlm.training.adversarial import EmbeddingPerturbation

        callbacks = [*callbacks, EmbeddingPerturbation(config.perturbation, words)]
    return Trainer(model, objective, config, callbacks, param_groups=param_groups,
                   trainable=trainable).fit(train, validation, resume=resume)


def train_translator(translator, train, validation, sources: Sequence[str], references: Sequence[str], config,
                     callbacks=(), resume=None):
    """The trainer with the seq2seq objective (``config``: a ``Seq2SeqTrainConfig``), selecting on
    ``config.metric`` over the first ``config.validation_max_pairs`` validation sources."""
    n = config.validation_max_pairs
    objective = Seq2SeqObjective(translator, list(sources)[:n], list(references)[:n], config.metric,
                                 config.label_smoothing, config.max_length, config.bleu_tokenize)
    return Trainer(translator.model, objective, config, callbacks).fit(train, validation, resume=resume)
