"""A trained extractive reader with its tokenizer: (context, question) pairs in, answer spans out.

Saved as a bundle of kind ``reader`` (``weights.pt``, ``tokenizer.json``, ``bundle.json``). Served
through the pyfunc with two string columns, ``context`` and ``question``; each row gets its ``answer``
(the context's own text), its character offsets ``start`` and ``end`` (``context[start:end] ==
answer``) and a ``score`` (the span's probability in the window it was read from).
``max_answer_tokens`` is an inference parameter (default: the model config's).

>>> reader = QAReader.load("path/to/folder")                                        # doctest: +SKIP
>>> reader.answer(["Denver beat Carolina 24-10."], ["Who won?"])[0]["answer"]       # doctest: +SKIP
'Denver'
"""

from __future__ import annotations

from typing import Sequence

import torch

from lowlm.inference.bundle import Bundle, BundleError, check_size, check_texts, load_weights
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.models.reader import Reader, best_spans
from lowlm.text.qa import QABatches, QAEncoded, QAEncoder, reading_items
from lowlm.text.tokenizer import Tokenizer


class QAReader(Bundle):
    kind = "reader"
    tokenizer_files = {"tokenizer.json": "tokenizer"}
    input_columns = ("context", "question")
    serve_params = {"max_answer_tokens": 0}  # 0: the model config's max_answer_tokens

    def __init__(self, model: Reader, tokenizer: Tokenizer):
        self.model, self.tokenizer = model, tokenizer
        cfg = model.config
        self.encoder = QAEncoder(tokenizer, cfg.window, cfg.stride, cfg.max_question_tokens)

    def meta(self) -> dict:
        return model_meta(self.model)

    @classmethod
    def from_parts(cls, meta: dict, tokenizers: dict, weights: dict) -> "QAReader":
        tok = tokenizers["tokenizer"]
        kind = meta.get("model", {}).get("kind")
        if kind != "reader":
            raise BundleError(f"a 'reader' bundle holds a 'reader' model, not {kind!r}")
        try:
            net = model_from_meta(meta, words=tok.tokens())
        except ValueError as exc:
            raise BundleError(str(exc)) from None
        check_size("tokens in tokenizer.json", tok.vocab_size, net.dims["vocab_size"],
                   "rows in the model's embedding (weights.pt)")
        return cls(load_weights(net, weights).eval(), tok)

    @torch.no_grad()
    def read(self, encoded: Sequence[QAEncoded], contexts: Sequence[str], max_answer_tokens: int | None = None,
             batch_size: int = 64) -> list[dict]:
        """Answers for questions already encoded (``QAEncoder.encode_many``) against their ``contexts``:
        the best span of any window, by its start and end logits."""
        limit = max_answer_tokens or self.model.config.max_answer_tokens
        self.model.eval()
        items, where = reading_items(encoded)
        best: list[tuple] = [(float("-inf"), 0, 0, 0.0)] * len(encoded)
        for batch in QABatches(items, batch_size=batch_size):
            start, end = self.model(batch.context, batch.context_lengths, batch.features, batch.question,
                                    batch.question_lengths)
            i, j, logit, probability = best_spans(start, end, limit)
            for row, item in enumerate(batch.index.tolist()):
                q, k = where[item]
                first = encoded[q].windows[k].first
                if logit[row].item() > best[q][0]:
                    best[q] = (logit[row].item(), first + i[row].item(), first + j[row].item(),
                               probability[row].item())
        out = []
        for e, context, (_, i, j, probability) in zip(encoded, contexts, best):
            if not e.offsets:  # a context with no tokens has no span to give
                out.append({"answer": "", "start": 0, "end": 0, "score": 0.0})
                continue
            start, end = e.offsets[i][0], e.offsets[j][1]
            out.append({"answer": context[start:end], "start": start, "end": end, "score": probability})
        return out

    def answer(self, contexts: Sequence[str], questions: Sequence[str], max_answer_tokens: int | None = None,
               batch_size: int = 64) -> list[dict]:
        contexts, questions = check_texts(contexts), check_texts(questions)
        if len(contexts) != len(questions):
            raise ValueError(f"{len(contexts)} contexts but {len(questions)} questions")
        return self.read(self.encoder.encode_many(contexts, questions), contexts, max_answer_tokens, batch_size)

    def serve(self, columns: dict[str, list[str]], params: dict) -> dict[str, list]:
        params = {**self.serve_params, **(params or {})}
        answers = self.answer(columns["context"], columns["question"], int(params["max_answer_tokens"]) or None)
        return {key: [a[key] for a in answers] for key in ("answer", "start", "end", "score")}
