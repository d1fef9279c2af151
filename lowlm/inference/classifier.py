"""A trained classifier with everything needed to use it on raw text: tokenizer, model, label names.

Saved as a bundle (``lowlm.inference.bundle``): ``weights.pt``, ``tokenizer.json`` and
``bundle.json`` (kind ``classifier``, the model's config and sizes, the labels):

>>> clf = TextClassifier.load("path/to/folder")              # doctest: +SKIP
>>> clf.predict(["my card was declined"])                    # doctest: +SKIP
[{'label': 'card_problem', 'score': 0.93, 'probabilities': {...}}]
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from lowlm.inference.bundle import Bundle, check_size, check_texts, load_weights
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer


@torch.no_grad()
def predict_proba(model: nn.Module, batches: Batches) -> torch.Tensor:
    """Class probabilities for every row, in the rows' original order (on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for batch in batches:
        probs = torch.softmax(model(batch.ids.to(device), batch.lengths.to(device)), dim=-1).cpu()
        if out is None:
            out = torch.empty(len(batches.ids), probs.shape[1])
        out[batch.index] = probs
    return out if out is not None else torch.empty(0, 0)


class TextClassifier(Bundle):
    kind = "classifier"
    tokenizer_files = {"tokenizer.json": "tokenizer"}

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, labels: Sequence[str]):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = list(labels)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        texts = check_texts(texts)
        if not texts:
            return torch.empty(0, len(self.labels))
        return predict_proba(self.model, Batches(self.tokenizer.encode_batch(texts), batch_size=batch_size))

    def predict(self, texts: Sequence[str]) -> list[dict]:
        """label, its probability (``score``) and every class's probability, per text."""
        probs = self.predict_proba(texts)
        out = []
        for row in probs.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            out.append({"label": self.labels[best], "score": row[best],
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
        return {**model_meta(self.model), "labels": self.labels}

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict, weights: dict) -> "TextClassifier":
        tok = tokenizers["tokenizer"]
        net = load_weights(model_from_meta(meta, words=tok.tokens()), weights)
        # the weights fit the sizes in bundle.json (load_weights); the labels and tokenizer must fit them too
        check_size("labels in bundle.json", len(meta["labels"]), net.dims["num_labels"],
                   "outputs in the model's head (weights.pt)")
        check_size("tokens in tokenizer.json", tok.vocab_size, net.dims["vocab_size"],
                   "rows in the model's word embedding (weights.pt)")
        return cls(net.eval(), tok, meta["labels"])

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        rows = self.predict(texts)
        return {"label": [r["label"] for r in rows], "score": [r["score"] for r in rows],
                "probabilities": [r["probabilities"] for r in rows]}
