"""A trained sequence-to-sequence model with its tokenizers: raw source text in, plain text out.

Saved as a bundle (``lowlm.inference.bundle``) of kind ``translator``: ``weights.pt``,
``source_tokenizer.json``, ``target_tokenizer.json`` and ``bundle.json``.

>>> tr = Translator.load("path/to/folder")                                   # doctest: +SKIP
>>> tr.translate(["ein Hund läuft im Schnee ."], beam_size=5, max_length=50)  # doctest: +SKIP
['a dog runs in the snow .']
"""

from __future__ import annotations

from typing import Sequence

import torch

from lowlm.inference.bundle import Bundle, check_size, check_texts, load_weights
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.models.seq2seq import Seq2Seq
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import EOS_ID, Tokenizer


def cut_at_eos(ids: Sequence[int]) -> list[int]:
    """Ids before the first ``[EOS]``.

    >>> cut_at_eos([5, 6, 3, 0, 0])
    [5, 6]
    """
    ids = list(ids)
    return ids[: ids.index(EOS_ID)] if EOS_ID in ids else ids


class Translator(Bundle):
    kind = "translator"
    tokenizer_files = {"source_tokenizer.json": "source", "target_tokenizer.json": "target"}
    serve_params = {"beam_size": 5, "max_length": 80, "length_penalty": 1.0}

    def __init__(self, model: Seq2Seq, source: Tokenizer, target: Tokenizer,
                 languages: tuple[str | None, str | None] = (None, None)):
        self.model = model
        self.source = source
        self.target = target
        self.languages = tuple(languages)  # (source, target) language codes, as the training corpus declared them

    @torch.no_grad()
    def generate(self, texts: Sequence[str], beam_size: int = 1, max_length: int = 64,
                 batch_size: int = 64, length_penalty: float = 1.0, sample: bool = False, top_k: int = 0,
                 temperature: float = 1.0, seed: int = 0) -> list[list[int]]:
        """Target ids per text (without [BOS]/[EOS]), in input order: beam search when ``beam_size`` > 1,
        else greedy; or, with ``sample``, drawn (``top_k``, ``temperature``) from a generator seeded by ``seed``."""
        model = self.model.eval()
        device = next(model.parameters()).device
        generator = torch.Generator().manual_seed(seed) if sample else None
        out: list[list[int]] = [[] for _ in texts]
        for batch in Batches(self.source.encode_batch(list(texts)), batch_size=batch_size):
            src, lengths = batch.ids.to(device), batch.lengths.to(device)
            if sample:
                ids = model.sample(src, lengths, max_length, top_k, temperature, generator)
            elif beam_size > 1:
                ids = model.beam_search(src, lengths, beam_size, max_length, length_penalty)
            else:
                ids, _ = model.greedy(src, lengths, max_length)
            for i, row in zip(batch.index.tolist(), ids.tolist()):
                out[i] = cut_at_eos(row)
        return out

    def translate(self, texts: Sequence[str], beam_size: int = 1, max_length: int = 64, **kwargs) -> list[str]:
        """Detokenised output text per input text."""
        texts = check_texts(texts)
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

    # -- bundle ------------------------------------------------------------------------------------
    def meta(self) -> dict:
        source, target = self.languages
        return {**model_meta(self.model), "languages": {"source": source, "target": target}}

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict, weights: dict) -> "Translator":
        net = load_weights(model_from_meta(meta), weights)
        # the weights fit the sizes in bundle.json (load_weights); each tokenizer must fit its embedding
        check_size("tokens in source_tokenizer.json", tokenizers["source"].vocab_size, net.dims["src_vocab"],
                   "rows in the model's source embedding (weights.pt)")
        check_size("tokens in target_tokenizer.json", tokenizers["target"].vocab_size, net.dims["tgt_vocab"],
                   "rows in the model's target embedding (weights.pt)")
        languages = meta.get("languages") or {}  # bundles written before languages were recorded: unknown
        return cls(net.eval(), tokenizers["source"], tokenizers["target"],
                   (languages.get("source"), languages.get("target")))

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        params = {**self.serve_params, **(params or {})}
        return {"generated": self.translate(texts, beam_size=int(params["beam_size"]),
                                            max_length=int(params["max_length"]),
                                            length_penalty=float(params["length_penalty"]))}
