"""A trained sequence-to-sequence model with its tokenizers: raw source text in, plain text out.

Saved as plain files like ``TextClassifier``: ``weights.pt`` (state dict, loaded with
``weights_only=True``), ``source_tokenizer.json``, ``target_tokenizer.json`` and ``model.json``.

>>> tr = Translator.load("path/to/folder")                                   # doctest: +SKIP
>>> tr.translate(["ein Hund läuft im Schnee ."], beam_size=5, max_length=50)  # doctest: +SKIP
['a dog runs in the snow .']
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch

from lowlm.batching import Batches
from lowlm.models.seq2seq import Seq2Seq
from lowlm.predictor import MODEL, WEIGHTS, content_digest
from lowlm.tokenizer import EOS_ID, Tokenizer

SOURCE, TARGET = "source_tokenizer.json", "target_tokenizer.json"


def cut_at_eos(ids: Sequence[int]) -> list[int]:
    """Ids before the first ``[EOS]``.

    >>> cut_at_eos([5, 6, 3, 0, 0])
    [5, 6]
    """
    ids = list(ids)
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids


class Translator:
    def __init__(self, model: Seq2Seq, source: Tokenizer, target: Tokenizer):
        self.model = model
        self.source = source
        self.target = target

    @torch.no_grad()
    def generate(self, texts: Sequence[str], beam_size: int = 1, max_length: int = 64,
                 batch_size: int = 64, length_penalty: float = 1.0) -> list[list[int]]:
        """Target ids per text (without [BOS]/[EOS]), in input order."""
        model = self.model.eval()
        device = next(model.parameters()).device
        out: list[list[int]] = [[] for _ in texts]
        for batch in Batches(self.source.encode_batch(list(texts)), batch_size=batch_size):
            src, lengths = batch.ids.to(device), batch.lengths.to(device)
            if beam_size > 1:
                ids = model.beam_search(src, lengths, beam_size, max_length, length_penalty)
            else:
                ids, _ = model.greedy(src, lengths, max_length)
            for i, row in zip(batch.index.tolist(), ids.tolist()):
                out[i] = cut_at_eos(row)
        return out

    def translate(self, texts: Sequence[str], beam_size: int = 1, max_length: int = 64, **kwargs) -> list[str]:
        """Detokenised output text per input text."""
        if isinstance(texts, str):
            raise TypeError("expected a list of strings, got one string; wrap it in a list")
        return [self.target.decode(ids) for ids in self.generate(texts, beam_size, max_length, **kwargs)]

    @torch.no_grad()
    def attention(self, text: str, max_length: int = 64) -> tuple[list[str], list[str], torch.Tensor]:
        """Source tokens, greedy output tokens and the attention matrix (output x source) for one text."""
        model = self.model.eval()
        ids = self.source.encode(text) or [1]
        src = torch.tensor([ids], dtype=torch.long)
        out, weights = model.greedy(src, torch.tensor([len(ids)]), max_length)
        produced = out[0].tolist()
        n = len(cut_at_eos(produced)) + (1 if EOS_ID in produced else 0)
        src_tokens = [self.source.id_to_token(i) for i in ids]
        out_tokens = [self.target.id_to_token(i) for i in produced[:n]]
        return src_tokens, out_tokens, weights[0, :n, : len(ids)]

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(self.model.state_dict(), folder / WEIGHTS)
        self.source.save(folder / SOURCE)
        self.target.save(folder / TARGET)
        (folder / MODEL).write_text(json.dumps({"config": self.model.config}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Translator":
        folder = Path(folder)
        for name in (WEIGHTS, SOURCE, TARGET, MODEL):
            if not (folder / name).exists():
                raise FileNotFoundError(f"{folder}: missing {name}; expected a folder written by Translator.save")
        return cls.from_files(folder / WEIGHTS, folder / SOURCE, folder / TARGET, folder / MODEL)

    @classmethod
    def from_files(cls, weights, source, target, model) -> "Translator":
        config = dict(json.loads(Path(model).read_text())["config"])
        config.pop("kind")
        net = Seq2Seq(**config)
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return cls(net.eval(), Tokenizer.load(source), Tokenizer.load(target))

    def digest(self) -> str:
        """Content hash of the weights and both vocabularies."""
        return content_digest(self.model, self.source.to_json(), self.target.to_json())
