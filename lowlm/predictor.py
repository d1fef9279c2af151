"""A trained classifier with everything needed to use it on raw text: tokenizer, model, label names.

Saved as a folder of plain files — ``weights.pt`` (a state dict, loaded with ``weights_only=True``),
``tokenizer.json`` and ``model.json`` — so nothing of ours is ever unpickled:

>>> clf = TextClassifier.load("path/to/folder")              # doctest: +SKIP
>>> clf.predict(["my card was declined"])                    # doctest: +SKIP
[{'label': 'card_problem', 'score': 0.93, 'probabilities': {...}}]
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from lowlm.batching import Batches
from lowlm.models import classifier_from_config
from lowlm.tokenizer import Tokenizer
from lowlm.train import predict_proba

WEIGHTS, TOKENIZER, MODEL = "weights.pt", "tokenizer.json", "model.json"


class TextClassifier:
    def __init__(self, model: nn.Module, tokenizer: Tokenizer, labels: Sequence[str]):
        self.model = model
        self.tokenizer = tokenizer
        self.labels = list(labels)

    def predict_proba(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        texts = _check_texts(texts)
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

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS)
        self.tokenizer.save(folder / TOKENIZER)
        (folder / MODEL).write_text(json.dumps({"config": self.model.config, "labels": self.labels}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "TextClassifier":
        folder = Path(folder)
        for name in (WEIGHTS, TOKENIZER, MODEL):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder}: missing {name}; expected a folder written by TextClassifier.save")
        return cls.from_files(folder / WEIGHTS, folder / TOKENIZER, folder / MODEL)

    @classmethod
    def from_files(cls, weights: str | Path, tokenizer: str | Path, model: str | Path) -> "TextClassifier":
        tok = Tokenizer.load(tokenizer)
        meta = json.loads(Path(model).read_text())
        net = classifier_from_config(meta["config"], words=tok.tokens())
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        net.eval()
        return cls(net, tok, meta["labels"])

    def digest(self) -> str:
        """Content hash of the weights, vocabulary and labels: equal digests mean the same model."""
        return content_digest(self.model, self.tokenizer.to_json(), json.dumps(self.labels))


def content_digest(model: nn.Module, *texts: str) -> str:
    """Hash of a model's state dict plus any texts (tokenizer JSON, labels)."""
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for text in texts:
        h.update(text.encode())
    return h.hexdigest()[:16]


def _check_texts(texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("expected a list of strings, got one string; wrap it in a list")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"input {i}: expected a string, got {type(t).__name__} ({t!r:.40})")
    return texts
