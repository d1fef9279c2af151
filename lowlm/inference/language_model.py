"""A trained language model with its tokenizer: scores texts (perplexity) and continues them.

Saved as a bundle of kind ``language_model`` (``weights.pt``, ``tokenizer.json``, ``bundle.json``).
Served through the pyfunc: each text gets its ``perplexity`` under the forward model, its total
``log_prob`` and ``tokens`` (words plus the end marker); with ``max_tokens`` > 0 also a
``continuation`` (greedy, or sampled at ``temperature`` > 0 with ``seed``).

>>> lm = LanguageModelBundle.load("path/to/folder")                      # doctest: +SKIP
>>> lm.score(["the film was good"])[0]["perplexity"]                      # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from lowlm.inference.bundle import Bundle, check_size, check_texts, load_weights
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.models.language_model import LanguageModel
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer


class LanguageModelBundle(Bundle):
    kind = "language_model"
    tokenizer_files = {"tokenizer.json": "tokenizer"}
    serve_params = {"max_tokens": 0, "temperature": 0.0, "seed": 0}

    def __init__(self, model: LanguageModel, tokenizer: Tokenizer):
        self.model, self.tokenizer = model, tokenizer

    def meta(self) -> dict:
        return model_meta(self.model)

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict, weights: dict) -> "LanguageModelBundle":
        net = load_weights(model_from_meta(meta), weights)
        check_size("tokens in tokenizer.json", tokenizers["tokenizer"].vocab_size, net.dims["vocab_size"],
                   "rows in the model's embedding (weights.pt)")
        return cls(net.eval(), tokenizers["tokenizer"])

    @torch.no_grad()
    def score(self, texts: Sequence[str], batch_size: int = 128) -> list[dict]:
        """Per text: ``log_prob`` (natural log, summed), ``tokens`` predicted (with ``[EOS]``), ``perplexity``."""
        texts = check_texts(texts)
        self.model.eval()
        batches = Batches(self.tokenizer.encode_batch(texts), batch_size=batch_size)
        out: list[dict] = [{} for _ in texts]
        for batch in batches:
            logp = self.model.token_log_probs(batch.ids, batch.lengths).sum(dim=1)
            for i, total, n in zip(batch.index.tolist(), logp.tolist(), (batch.lengths + 1).tolist()):
                out[i] = {"log_prob": total, "tokens": n, "perplexity": math.exp(-total / n)}
        return out

    def perplexity(self, texts: Sequence[str]) -> float:
        """Corpus perplexity: exp of the mean negative log-probability per predicted token."""
        scored = self.score(texts)
        return math.exp(-sum(s["log_prob"] for s in scored) / max(1, sum(s["tokens"] for s in scored)))

    def continue_text(self, texts: Sequence[str], max_tokens: int = 20, temperature: float = 0.0,
                      seed: int = 0) -> list[str]:
        generator = torch.Generator().manual_seed(seed)
        self.model.eval()
        return [self.tokenizer.decode(self.model.continue_ids(self.tokenizer.encode(t), max_tokens, temperature,
                                                              generator)) for t in check_texts(texts)]

    def serve(self, texts: list[str], params: dict) -> dict[str, list]:
        params = {**self.serve_params, **(params or {})}
        scored = self.score(texts)
        out = {"perplexity": [s["perplexity"] for s in scored], "log_prob": [s["log_prob"] for s in scored],
               "tokens": [s["tokens"] for s in scored]}
        n = int(params["max_tokens"])
        out["continuation"] = (self.continue_text(texts, n, float(params["temperature"]), int(params["seed"]))
                               if n > 0 else [""] * len(texts))
        return out
