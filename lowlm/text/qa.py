"""Extractive QA inputs: contexts cut into token windows, answers mapped to token spans, DrQA's features.

A context longer than ``window`` tokens is read as overlapping windows (``stride`` tokens apart, the last
one ending at the context's end); a question keeps its first ``max_question`` tokens. Each context token
carries three features (Chen et al. 2017, which help most on small data): whether it occurs in the
question as written, whether it does lower-cased, and its frequency in the paragraph.

Answers map from characters to tokens through the tokenizer's offsets: the first token that ends after
the answer's start to the last token that starts before its end. An answer no token overlaps is
``unmappable``; one whose token span reads differently once normalised (the answer starts or ends inside
a token) is ``inexact`` but kept. A training question whose answer lies in no single window is
``answer_outside_window``.

>>> from lowlm.text.tokenizer import Tokenizer
>>> tok = Tokenizer.train(["Denver won the game in Santa Clara ."], kind="word")
>>> enc = QAEncoder(tok, window=4, stride=2)
>>> ex = enc.encode("Denver won the game in Santa Clara .", "Who won?", answers=[("Santa Clara", 23)])
>>> [(w.first, w.start, w.end) for w in ex.windows], ex.span
([(0, -1, -1), (2, -1, -1), (4, 1, 2)], (5, 6))
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch

from lowlm.evaluation.squad import normalize_answer
from lowlm.text.batching import pad
from lowlm.text.tokenizer import Tokenizer

FEATURES = 3  # exact match (as written), exact match (lower case), paragraph frequency


@dataclass
class Window:
    first: int  # index of the window's first token in the whole context
    ids: list[int]
    features: list[list[float]]
    start: int = -1  # the gold span in window positions (-1: not in this window, or no gold)
    end: int = -1


@dataclass
class QAEncoded:
    """One question against one context: its windows and where the context's tokens are."""

    question_ids: list[int]
    windows: list[Window]
    offsets: list[tuple[int, int]]  # character span of every context token
    span: tuple[int, int] | None = None  # gold span in context tokens (training)
    problems: Counter = field(default_factory=Counter)


def token_span(offsets: Sequence[tuple[int, int]], start: int, end: int) -> tuple[int, int] | None:
    """Token indices (first, last) covering characters [start, end), or None when no token does.

    >>> token_span([(0, 3), (4, 7), (8, 11)], 4, 11), token_span([(0, 3)], 5, 6)
    ((1, 2), None)
    """
    first = next((i for i, (_, e) in enumerate(offsets) if e > start), None)
    last = next((i for i in range(len(offsets) - 1, -1, -1) if offsets[i][0] < end), None)
    if first is None or last is None or last < first:
        return None
    return first, last


class QAEncoder:
    """Turns (context, question[, answers]) into windows of ids and features for the reader."""

    def __init__(self, tokenizer: Tokenizer, window: int = 400, stride: int = 128, max_question: int = 64):
        if not 0 < stride <= window:
            raise ValueError(f"stride must be in (0, window], got stride {stride} with window {window}")
        self.tokenizer, self.window, self.stride, self.max_question = tokenizer, window, stride, max_question

    def window_starts(self, n: int) -> list[int]:
        """First token of every window over ``n`` context tokens.

        >>> QAEncoder(None, window=4, stride=3).window_starts(10)
        [0, 3, 6]
        """
        if n <= self.window:
            return [0]
        starts = list(range(0, n - self.window, self.stride))
        return starts + [n - self.window]

    def encode(self, context: str, question: str, answers: Sequence[tuple[str, int]] = ()) -> QAEncoded:
        return self.encode_many([context], [question], [answers])[0]

    def encode_many(self, contexts: Sequence[str], questions: Sequence[str],
                    answers: Sequence[Sequence[tuple[str, int]]] | None = None) -> list[QAEncoded]:
        """``answers``: per question, (text, character start) pairs; the first one that maps is the
        training span. Contexts repeated across questions are tokenized once."""
        unique = list(dict.fromkeys(contexts))
        spans = dict(zip(unique, self.tokenizer.encode_spans(unique)))
        asked = self.tokenizer.encode_spans(list(questions))
        out = []
        for i, (context, (q_ids, _, q_offsets)) in enumerate(zip(contexts, asked)):
            ids, _, offsets = spans[context]
            surface = [context[s:e] for s, e in offsets]
            q_surface = {questions[i][s:e] for s, e in q_offsets}
            q_lower = {w.lower() for w in q_surface}
            counts = Counter(w.lower() for w in surface)
            n = max(1, len(surface))
            features = [[float(w in q_surface), float(w.lower() in q_lower),
                         math.log1p(counts[w.lower()]) / math.log1p(n)] for w in surface]
            encoded = QAEncoded(question_ids=q_ids[: self.max_question], windows=[], offsets=list(offsets))
            if answers is not None and answers[i]:
                encoded.span = self._gold(context, offsets, answers[i], encoded.problems)
            for first in self.window_starts(len(ids)):
                last = first + self.window
                window = Window(first, ids[first:last], features[first:last])
                if encoded.span is not None and first <= encoded.span[0] and encoded.span[1] < last:
                    window.start, window.end = encoded.span[0] - first, encoded.span[1] - first
                encoded.windows.append(window)
            if len(encoded.windows) > 1:
                encoded.problems["windowed"] += 1
            if encoded.span is not None and not any(w.start >= 0 for w in encoded.windows):
                encoded.problems["answer_outside_window"] += 1
            out.append(encoded)
        return out

    @staticmethod
    def _gold(context: str, offsets, answers, problems: Counter) -> tuple[int, int] | None:
        for text, start in answers:
            span = token_span(offsets, start, start + len(text))
            if span is None:
                continue
            read = context[offsets[span[0]][0]:offsets[span[1]][1]]
            if normalize_answer(read) != normalize_answer(text):
                problems["inexact"] += 1
            return span
        problems["unmappable"] += 1
        return None


@dataclass
class QABatch:
    context: torch.Tensor  # (B, T) ids, right-padded
    context_lengths: torch.Tensor
    features: torch.Tensor  # (B, T, FEATURES)
    question: torch.Tensor  # (B, Q)
    question_lengths: torch.Tensor
    start: torch.Tensor  # (B,) gold positions (-1: none)
    end: torch.Tensor
    index: torch.Tensor  # (B,) which item of the list each row is


def collate(items: Sequence[tuple[list[int], list[list[float]], list[int], int, int]], index: Sequence[int]) -> QABatch:
    context, lengths = pad([it[0] for it in items])
    question, q_lengths = pad([it[2] for it in items])
    features = torch.zeros(len(items), context.shape[1], FEATURES)
    for row, it in enumerate(items):
        if it[1]:
            features[row, : len(it[1])] = torch.tensor(it[1])
    return QABatch(context, lengths, features, question, q_lengths,
                   torch.tensor([it[3] for it in items], dtype=torch.long),
                   torch.tensor([it[4] for it in items], dtype=torch.long),
                   torch.as_tensor(list(index), dtype=torch.long))


class QABatches:
    """Re-iterable, length-grouped batches of (window, question) items; with ``shuffle``, a new seeded
    order every pass (the trainer saves and restores ``generator`` when it resumes)."""

    def __init__(self, items: Sequence[tuple], batch_size: int = 32, shuffle: bool = False, seed: int = 0):
        self.items = list(items)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.lengths = torch.tensor([len(it[0]) for it in self.items], dtype=torch.long)

    def __len__(self) -> int:
        return (len(self.items) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[QABatch]:
        n = len(self.items)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        batches = []
        for chunk in order.split(self.batch_size * 50 if self.shuffle else max(1, n)):
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        for index in batches:
            rows = index.tolist()
            yield collate([self.items[i] for i in rows], rows)


def training_items(encoded: Sequence[QAEncoded]) -> list[tuple]:
    """One item per window that holds its question's gold span."""
    return [(w.ids, w.features, e.question_ids, w.start, w.end) for e in encoded for w in e.windows if w.start >= 0]


def reading_items(encoded: Sequence[QAEncoded]) -> tuple[list[tuple], list[tuple[int, int]]]:
    """Every window of every question, and for each item (question number, window number)."""
    items, where = [], []
    for q, e in enumerate(encoded):
        for k, w in enumerate(e.windows):
            items.append((w.ids, w.features, e.question_ids, w.start, w.end))
            where.append((q, k))
    return items, where
