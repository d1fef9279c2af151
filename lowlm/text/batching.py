"""Encoded examples -> padded mini-batches, grouped by length so padding (and RNN time) stays small."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain
from typing import Iterator, Sequence

import torch

from lowlm.text.tokenizer import PAD_ID, UNK_ID


@dataclass
class Batch:
    ids: torch.Tensor  # (B, T) right-padded
    lengths: torch.Tensor  # (B,)
    labels: torch.Tensor | None  # (B,)
    index: torch.Tensor  # (B,) positions in the source list, to restore order


def pad(rows: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists; an empty row becomes one ``[UNK]`` so nothing is all padding.

    >>> ids, lengths = pad([[5, 6], [7]]); ids.tolist(), lengths.tolist()
    ([[5, 6], [7, 0]], [2, 1])
    """
    rows = [r if len(r) else [UNK_ID] for r in rows]
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    width = int(lengths.max()) if len(rows) else 0
    out = torch.full((len(rows), width), PAD_ID, dtype=torch.long)
    # one flat copy through a mask: 3-4x faster than a row-by-row loop
    out[torch.arange(width) < lengths.unsqueeze(1)] = torch.tensor(list(chain.from_iterable(rows)), dtype=torch.long)
    return out, lengths


class Batches:
    """Re-iterable batches over encoded rows.

    With ``shuffle``, each pass draws a new seeded order, cuts it into chunks of ``50 * batch_size``,
    sorts each chunk by length and shuffles the resulting batches: random, yet little padding.
    Without it, rows are sorted by length and ``Batch.index`` restores the original order.
    """

    def __init__(self, ids: Sequence[Sequence[int]], labels: Sequence[int] | None = None, batch_size: int = 32,
                 shuffle: bool = False, seed: int = 0):
        self.base_ids = list(ids)
        self.base_labels = None if labels is None else torch.as_tensor(list(labels), dtype=torch.long)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.set_extra([], [])

    def set_extra(self, ids: Sequence[Sequence[int]], labels: Sequence[int]) -> None:
        """Rows iterated after the given ones until replaced (adversarial training's refreshed examples)."""
        self.extra_ids = [list(r) for r in ids]
        self.extra_labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.ids = self.base_ids + self.extra_ids
        self.labels = None if self.base_labels is None else torch.cat([self.base_labels, self.extra_labels])
        self.lengths = torch.tensor([len(r) for r in self.ids], dtype=torch.long)

    def __len__(self) -> int:
        return (len(self.ids) + self.batch_size - 1) // self.batch_size

    def _order(self) -> list[torch.Tensor]:
        n = len(self.ids)
        if not self.shuffle:
            order = torch.argsort(self.lengths, stable=True)
            return list(order.split(self.batch_size))
        perm = torch.randperm(n, generator=self.generator)
        chunks = []
        for chunk in perm.split(self.batch_size * 50):
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            chunks.extend(chunk.split(self.batch_size))
        return [chunks[i] for i in torch.randperm(len(chunks), generator=self.generator).tolist()]

    def __iter__(self) -> Iterator[Batch]:
        for index in self._order():
            ids, lengths = pad([self.ids[i] for i in index.tolist()])
            labels = None if self.labels is None else self.labels[index]
            yield Batch(ids, lengths, labels, index)


@dataclass
class PairBatch:
    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt: torch.Tensor  # [BOS] ... [EOS], right-padded
    index: torch.Tensor


class PairBatches:
    """Length-grouped, seeded batches of (source ids, target ids) pairs; re-iterable."""

    def __init__(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0, group_by_length: bool = True):
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
        self.src, self.tgt = list(src), list(tgt)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.group_by_length = group_by_length  # False: plain random batches (every length mixed)
        self.generator = torch.Generator().manual_seed(seed)
        self.lengths = torch.tensor([len(s) + len(t) for s, t in zip(self.src, self.tgt)])

    def __len__(self) -> int:
        return (len(self.src) + self.batch_size - 1) // self.batch_size

    @property
    def target_tokens(self) -> int:
        return sum(len(t) - 1 for t in self.tgt)  # predicted positions: all but [BOS]

    def __iter__(self) -> Iterator[PairBatch]:
        n = len(self.src)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        batches = []
        for chunk in order.split(self.batch_size * 50 if self.group_by_length else n or 1):
            if self.group_by_length:
                chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        for index in batches:
            rows = index.tolist()
            src, lengths = pad([self.src[i] for i in rows])
            tgt, _ = pad([self.tgt[i] for i in rows])
            yield PairBatch(src, lengths, tgt, index)
