"""Training an extractive reader on the one trainer: questions -> windows -> ``ReaderObjective``.

The loss is the mean of the start and end positions' cross-entropies over the windows that hold the
gold span (the first gold answer that maps to tokens); epochs are selected on validation F1, read with
the same span decoding that serving uses (the official SQuAD metric, max over the gold answers).

>>> import pandas as pd
>>> from lowlm.config.models import ReaderConfig
>>> from lowlm.config.stages import ReaderTrainConfig
>>> rows = pd.DataFrame({"context": ["red fox . blue sky ."] * 8, "question": ["what is blue ?"] * 8,
...                      "answers": [["sky"]] * 8, "starts": [[14]] * 8})
>>> tok = Tokenizer.train(list(rows["context"]) + list(rows["question"]))
>>> cfg = ReaderTrainConfig(epochs=12, lr=1e-2, batch_size=4, progress=False, warmup_ratio=0)
>>> reader, result, counts = train_reader(ReaderConfig(embedding_dim=8, hidden_dim=8), tok, rows, rows, cfg)
>>> result.history[-1]["val_f1"]
100.0
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import pandas as pd
import torch
import torch.nn.functional as F

from lowlm.config.models import ReaderConfig
from lowlm.config.stages import ReaderTrainConfig
from lowlm.evaluation.squad import squad_scores
from lowlm.inference.reader import QAReader
from lowlm.models.kinds import build_model
from lowlm.text.qa import QABatches, QAEncoded, QAEncoder, training_items
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.trainer import Loss, Trainer, TrainResult, seed_everything


def gold_pairs(frame: pd.DataFrame) -> list[list[tuple[str, int]]]:
    return [list(zip(answers, [int(s) for s in starts])) for answers, starts in zip(frame["answers"], frame["starts"])]


def encode_frame(encoder: QAEncoder, frame: pd.DataFrame, with_answers: bool = True) -> tuple[list[QAEncoded], Counter]:
    """Encode a split's questions (``with_answers``: map the gold spans too) and total the problems."""
    encoded = encoder.encode_many(frame["context"].tolist(), frame["question"].tolist(),
                                  gold_pairs(frame) if with_answers else None)
    counts = Counter()
    for e in encoded:
        counts.update(e.problems)
    return encoded, counts


class ReaderObjective:
    unit = "rows"

    def __init__(self, reader: QAReader, contexts: Sequence[str], golds: Sequence[Sequence[str]],
                 metric: str = "f1"):
        self.reader, self.contexts, self.golds, self.metric = reader, list(contexts), list(golds), metric

    def loss(self, model, batch, device) -> Loss:
        start, end = model(batch.context.to(device), batch.context_lengths.to(device), batch.features.to(device),
                           batch.question.to(device), batch.question_lengths.to(device))
        value = (F.cross_entropy(start, batch.start.to(device)) + F.cross_entropy(end, batch.end.to(device))) / 2
        return Loss(value, len(batch.index))

    @torch.no_grad()
    def evaluate(self, model, validation, device) -> dict:
        """``validation``: the validation questions, encoded with their gold spans (``encode_frame``): the
        span loss over the windows that hold one, and the answers read as served."""
        model.eval()
        total, count = 0.0, 0
        for batch in QABatches(training_items(validation), batch_size=64):
            out = self.loss(model, batch, device)
            total, count = total + out.value.item() * out.count, count + out.count
        model.to("cpu")  # the reader answers on the CPU, as served
        answers = [a["answer"] for a in self.reader.read(validation, self.contexts)]
        model.to(device)
        scores = squad_scores(answers, self.golds)
        return {"val_loss": total / max(1, count), "val_exact_match": scores["exact_match"], "val_f1": scores["f1"]}

    def score(self, metrics: dict) -> float:
        return metrics[f"val_{self.metric}"]


def train_reader(model_config: ReaderConfig, tokenizer: Tokenizer, train: pd.DataFrame, validation: pd.DataFrame,
                 config: ReaderTrainConfig, callbacks=(), resume=None) -> tuple[QAReader, TrainResult, dict]:
    """A new reader (seeded) trained on ``train``'s questions, epochs chosen on ``validation``'s F1.
    Returns the reader, the trainer's history and the counts of what the encoding met (per split:
    ``windowed``, ``unmappable``, ``inexact``, ``answer_outside_window``; ``train_windows``)."""
    seed_everything(config.seed)
    model = build_model(model_config, vocab_size=tokenizer.vocab_size, words=tokenizer.tokens())
    reader = QAReader(model, tokenizer)
    train_encoded, train_counts = encode_frame(reader.encoder, train)
    items = training_items(train_encoded)
    if not items:
        raise ValueError(f"none of the {len(train)} training questions has an answer inside a window "
                         f"({dict(train_counts)}); raise model.window")
    val_encoded, val_counts = encode_frame(reader.encoder, validation)
    objective = ReaderObjective(reader, validation["context"].tolist(), [list(a) for a in validation["answers"]],
                                config.metric)
    batches = QABatches(items, batch_size=config.batch_size, shuffle=True, seed=config.seed)
    result = Trainer(model, objective, config, callbacks).fit(batches, val_encoded, resume=resume)
    counts = {**{f"train_{k}": v for k, v in train_counts.items()},
              **{f"validation_{k}": v for k, v in val_counts.items()}, "train_windows": len(items)}
    return reader, result, counts
