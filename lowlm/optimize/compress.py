"""fastText-style compression of the bag of n-grams: fewer rows, product-quantized rows, a retrained head.

fastText's ``quantize`` (Joulin et al. 2016, "FastText.zip") keeps the embedding rows with the largest
norms, splits each remaining row into sub-vectors of ``dsub`` values and replaces each sub-vector by
the nearest of ``2**bits`` centroids learnt by k-means in its subspace (one byte per sub-vector at 8
bits), then retrains the classifier on the quantized table. Here the same steps act on
``BagOfNgrams``: n-gram rows that are dropped leave the n-gram index (those n-grams then count as
unseen, as in training), dropped word rows become zero, and ``pack_pq``/``unpack_pq`` store the kept
rows as their codes and the codebooks (float16) instead of float32 rows.

>>> x = torch.randn(500, 8)
>>> codes, books = product_quantize(x, dsub=2, bits=4, iters=10)
>>> codes.shape, codes.dtype, books.shape
(torch.Size([500, 4]), torch.uint8, torch.Size([4, 16, 2]))
>>> bool(((pq_decode(codes, books) - x) ** 2).mean() < (x ** 2).mean() / 4)
True
"""

from __future__ import annotations

import torch
from torch import nn

from lowlm.optimize.quantize import _narrowest


def kmeans(x: torch.Tensor, k: int, iters: int = 20, seed: int = 0) -> torch.Tensor:
    """``k`` centroids of the rows of ``x`` (Lloyd's algorithm from ``k`` distinct random rows; an empty
    cluster keeps its previous centroid)."""
    g = torch.Generator().manual_seed(seed)
    k = min(k, len(x))
    centroids = x[torch.randperm(len(x), generator=g)[:k]].clone()
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=1)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)
        centroids = torch.where(counts > 0, sums / counts.clamp(min=1), centroids)
    return centroids


def product_quantize(x: torch.Tensor, dsub: int = 2, bits: int = 8, iters: int = 20,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes (N, D/dsub) uint8 and codebooks (D/dsub, 2**bits, dsub) of the rows of ``x`` (N, D)."""
    n, d = x.shape
    if d % dsub:
        raise ValueError(f"product quantization: embedding_dim {d} is not a multiple of dsub {dsub}")
    if not 1 <= bits <= 8:
        raise ValueError(f"product quantization: bits {bits}, expected 1 to 8 (one byte per code)")
    subspaces = x.view(n, d // dsub, dsub).transpose(0, 1)  # (M, N, dsub)
    books = torch.zeros(d // dsub, 2 ** bits, dsub)
    codes = torch.zeros(n, d // dsub, dtype=torch.uint8)
    for m, sub in enumerate(subspaces):
        centroids = kmeans(sub.contiguous(), 2 ** bits, iters, seed + m)
        books[m, : len(centroids)] = centroids
        codes[:, m] = torch.cdist(sub, centroids).argmin(dim=1).to(torch.uint8)
    return codes, books


def pq_decode(codes: torch.Tensor, books: torch.Tensor) -> torch.Tensor:
    """The rows back from their codes: (N, M * dsub)."""
    m = torch.arange(books.shape[0]).unsqueeze(0)
    return books.float()[m, codes.long()].reshape(codes.shape[0], -1)


@torch.no_grad()
def compress_bag(model: nn.Module, keep_ngrams: float = 1.0, keep_words: float = 1.0, dsub: int = 2,
                 bits: int = 8, seed: int = 0) -> dict:
    """Prune rows by norm (``keep_*``: the share of n-gram and word rows kept) and product-quantize the
    rest, in place; records on ``model`` what ``pack_pq`` stores. Returns the counts."""
    table = model.embedding.weight.data
    vocab, norms = model.vocab_size, table.norm(dim=1)
    ngram_rows = table.shape[0] - vocab
    keep_n = int(round(keep_ngrams * ngram_rows))
    kept_ngrams = norms[vocab:].topk(keep_n).indices.sort().values if keep_n else torch.empty(0, dtype=torch.long)
    keep_w = int(round(keep_words * (vocab - 1)))
    kept_words = (norms[1:vocab].topk(keep_w).indices + 1).sort().values
    words = table[:vocab].clone()
    dropped = torch.ones(vocab, dtype=torch.bool)
    dropped[0] = False
    dropped[kept_words] = False
    words[dropped] = 0.0
    rows = torch.cat([words, table[vocab + kept_ngrams]])
    model.ngram_index = model.ngram_index[kept_ngrams]
    model.dims["ngram_rows"] = len(kept_ngrams)
    live = torch.cat([kept_words, vocab + torch.arange(len(kept_ngrams))])  # rows that get codes
    codes, books = product_quantize(rows[live], dsub, bits, seed=seed)
    rows[live] = pq_decode(codes, books)
    model.embedding.weight = nn.Parameter(rows, requires_grad=False)
    model._pq = {"rows": live, "codes": codes, "books": books.half()}
    rows[live] = pq_decode(codes, model._pq["books"])  # what loading gives back (float16 codebooks)
    return {"ngram_rows": len(kept_ngrams), "ngram_rows_before": ngram_rows, "word_rows": len(kept_words),
            "word_rows_before": vocab - 1}


def pack_pq(state: dict, pq: dict) -> dict:
    """``state`` with ``embedding.weight`` replaced by its kept rows' codes and the codebooks."""
    table = state.pop("embedding.weight")
    return {**state, "embedding.pq_rows": pq["rows"].to(_narrowest(pq["rows"])), "embedding.pq_codes": pq["codes"],
            "embedding.pq_books": pq["books"], "embedding.pq_shape": torch.tensor(table.shape)}


def unpack_pq(state: dict) -> dict:
    """The dense ``embedding.weight`` back (zeros where no row was kept)."""
    state = dict(state)
    shape = state.pop("embedding.pq_shape").tolist()
    rows, codes, books = (state.pop(f"embedding.pq_{k}") for k in ("rows", "codes", "books"))
    table = torch.zeros(shape)
    table[rows.long()] = pq_decode(codes, books)
    return {**state, "embedding.weight": table}
