"""A trained classifier with everything needed to use it on raw text: tokenizer, model, label names.

Saved as a bundle (``lowlm.inference.bundle``): ``weights.pt``, ``tokenizer.json`` and
``bundle.json`` (kind ``classifier``, the model's config and sizes, the labels, and once calibrated
(``lowlm.evaluation.calibration``) the ``temperature`` the logits are divided by and the ``threshold``
on the top probability below which ``predict`` answers ``out_of_scope``; a bundle without them loads
with 1.0 and no threshold):

>>> clf = TextClassifier.load("path/to/folder")              # doctest: +SKIP
>>> clf.predict(["my card was declined"])                    # doctest: +SKIP
[{'label': 'card_problem', 'score': 0.93, 'probabilities': {...}}]
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lowlm.config.data import OUT_OF_SCOPE
from lowlm.inference.bundle import Bundle, BundleError, check_size, check_texts, load_weights
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer


@torch.no_grad()
def predict_logits(model: nn.Module, batches: Batches) -> torch.Tensor:
    """The model's logits for every row, in the rows' original order (on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for batch in batches:
        logits = model(batch.ids.to(device), batch.lengths.to(device)).float().cpu()
        if out is None:
            out = torch.empty(len(batches.ids), logits.shape[1])
        out[batch.index] = logits
    return out if out is not None else torch.empty(0, 0)


def predict_proba(model: nn.Module, batches: Batches, temperature: float = 1.0) -> torch.Tensor:
    """Class probabilities ``softmax(logits / temperature)`` for every row, in the rows' original order."""
    logits = predict_logits(model, batches)
    return torch.softmax(logits if temperature == 1.0 else logits / temperature, dim=-1)


class TextClassifier(Bundle):
    kind = "classifier"
    tokenizer_files = {"tokenizer.json": "tokenizer"}

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, labels: Sequence[str], temperature: float = 1.0,
                 threshold: float | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = list(labels)
        if not temperature > 0:
            raise BundleError(f"temperature must be above 0, got {temperature}")
        if threshold is not None and not 0 <= threshold <= 1:
            raise BundleError(f"threshold must be a probability (0 to 1) or None, got {threshold}")
        self.temperature = float(temperature)
        self.threshold = None if threshold is None else float(threshold)

    def _batches(self, texts: list[str], batch_size: int) -> Batches:
        return Batches(self.tokenizer.encode_batch(texts), batch_size=batch_size)

    def logits(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Raw logits (before the temperature), one row per text."""
        texts = check_texts(texts)
        if not texts:
            return torch.empty(0, len(self.labels))
        return predict_logits(self.model, self._batches(texts, batch_size))

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        """Calibrated class probabilities (the logits divided by ``temperature``), one row per text."""
        texts = check_texts(texts)
        if not texts:
            return torch.empty(0, len(self.labels))
        return predict_proba(self.model, self._batches(texts, batch_size), self.temperature)

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """label, its probability (``score``) and every class's probability, per text. With a ``threshold``,
        a text whose top probability is below it gets the label ``out_of_scope`` (``score`` is still the top
        probability; ``probabilities`` still lists the trained labels)."""
        probs = self.predict_proba(texts)
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            rejected = self.threshold is not None and row[best] < self.threshold
            out.append({"label": OUT_OF_SCOPE if rejected else self.labels[best], "score": row[best],
                        "probabilities": dict(zip(self.labels, row))})
        return out

    @property
    def has_attention(self) -> bool:
        """Whether the model pools with attention weights over tokens (declared by the model class)."""
        return bool(getattr(type(self.model), "pools_with_attention", False))

    @torch.no_grad()
    def attention(self, text: str) -> tuple[list[str], list[float]]:
        """The tokens of ``text`` (as the model saw them, truncated) and the attention weight of each."""
        if not self.has_attention:
            raise TypeError(f"a {self.model.config.kind} model has no attention over tokens")
        model = self.model.eval()
        ids = self.tokenizer.encode(text) or [1]
        weights = model.attention_weights(torch.tensor([ids]), torch.tensor([len(ids)]))[0]
        tokens = [self.tokenizer.id_to_token(i) for i in ids]
        return tokens, weights[: len(ids)].tolist()

    # -- bundle ------------------------------------------------------------------------------------
    def meta(self) -> dict:
        """Temperature and threshold only when set, so an uncalibrated bundle's description (and digest) is as
        before they existed."""
        calibration = {"temperature": self.temperature} if self.temperature != 1.0 else {}
        if self.threshold is not None:
            calibration["threshold"] = self.threshold
        return {**model_meta(self.model), "labels": self.labels, **calibration}

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict, weights: dict) -> "TextClassifier":
        tok = tokenizers["tokenizer"]
        net = load_weights(model_from_meta(meta, words=tok.tokens()), weights)
        # the weights fit the sizes in bundle.json (load_weights); the labels and tokenizer must fit them too
        check_size("labels in bundle.json", len(meta["labels"]), net.dims["num_labels"],
                   "outputs in the model's head (weights.pt)")
        check_size("tokens in tokenizer.json", tok.vocab_size, net.dims["vocab_size"],
                   "rows in the model's word embedding (weights.pt)")
        return cls(net.eval(), tok, meta["labels"], temperature=meta.get("temperature", 1.0),
                   threshold=meta.get("threshold"))

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        rows = self.predict(texts)
        return {"label": [r["label"] for r in rows], "score": [r["score"] for r in rows],
                "probabilities": [r["probabilities"] for r in rows]}
