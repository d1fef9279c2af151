"""Text classifiers: a fastText-style bag of n-grams, and a BiGRU/BiLSTM with attention pooling.

Both take ``(ids, lengths)`` — right-padded token ids (pad id 0) and true lengths — and return
logits. Both expose ``features(ids, lengths)`` and a linear ``head``, so few-shot fine-tuning can
swap the head and keep the encoder. Both are built from their config (``lowlm.config.models``) plus
``dims`` (vocabulary and label counts), which together rebuild them (``lowlm.models.kinds``) before
``load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lowlm.config.models import BagOfNgramsConfig, RNNAttentionConfig

HASH_PRIME = 116049371  # fastText's n-gram hashing multiplier


def hash_ngrams(ids: torch.Tensor, lengths: torch.Tensor, n_max: int, buckets: int) -> torch.Tensor:
    """Hashed bucket ids (>= 0) of every word n-gram, 2 <= n <= n_max, in padded rows; -1 marks padding.

    >>> ids = torch.tensor([[5, 6, 7]]); hash_ngrams(ids, torch.tensor([3]), 2, 100).shape
    torch.Size([1, 2])
    """
    outs = []
    T = ids.shape[1]
    positions = torch.arange(T, device=ids.device)
    for n in range(2, n_max + 1):
        if T < n:
            break
        h = ids[:, : T - n + 1]
        for k in range(1, n):
            h = h * HASH_PRIME + ids[:, k : T - n + 1 + k]
        h = torch.remainder(h, buckets)
        valid = positions[: T - n + 1].unsqueeze(0) + n <= lengths.unsqueeze(1)
        outs.append(torch.where(valid, h, -1))
    if not outs:
        return torch.full((ids.shape[0], 0), -1, dtype=torch.long, device=ids.device)
    return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)


class BagOfNgrams(nn.Module):
    """fastText's supervised model: mean of word and hashed word-n-gram embeddings -> linear layer.

    Speed comes from three choices (see docs/benchmarks.md): n-gram hashes are computed on the
    tensor, not per string; only the buckets seen in training get an embedding row (``index_ngrams``
    maps hashes to rows with ``searchsorted``), so the table is small and allocated at once; and the
    embedding bag has sparse gradients, so each step updates only the rows it touched.
    """

    def __init__(self, config: BagOfNgramsConfig, vocab_size: int, num_labels: int, ngram_rows: int = 0,
                 words: list[str] | None = None):  # words: the classifiers' shared signature; hashing needs none
        super().__init__()
        self.config = config
        self.dims = {"vocab_size": vocab_size, "num_labels": num_labels, "ngram_rows": ngram_rows}
        embedding_dim = config.embedding_dim
        self.vocab_size = vocab_size
        # Row 0 is padding (word pad id 0, and dropped/unseen n-grams map there too).
        self.embedding = nn.EmbeddingBag(vocab_size + ngram_rows, embedding_dim, mode="mean",
                                         sparse=True, padding_idx=0)
        with torch.no_grad():
            self.embedding.weight.uniform_(-1.0 / embedding_dim, 1.0 / embedding_dim)
            self.embedding.weight[0].zero_()
        self.register_buffer("ngram_index", torch.zeros(ngram_rows, dtype=torch.long))
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(embedding_dim, num_labels)

    @property
    def feature_dim(self) -> int:
        return self.embedding.embedding_dim

    @torch.no_grad()
    def index_ngrams(self, batches) -> int:
        """Give an embedding row to every n-gram bucket seen in ``batches`` of ``(ids, lengths)``.

        Call once on the training data before training; returns the number of rows added.
        """
        cfg = self.config
        if cfg.ngrams < 2 or cfg.buckets == 0:
            return 0
        seen = [hash_ngrams(ids, lengths, cfg.ngrams, cfg.buckets).flatten() for ids, lengths in batches]
        index = torch.unique(torch.cat(seen)) if seen else torch.empty(0, dtype=torch.long)
        index = index[index >= 0]
        dim = cfg.embedding_dim
        # n-gram rows start at zero (fastText draws them from +-1/dim); the OS allocates zeros lazily.
        extra = torch.zeros(len(index), dim)
        self.embedding.weight = nn.Parameter(torch.cat([self.embedding.weight.data[: self.vocab_size], extra]))
        self.ngram_index = index
        self.dims["ngram_rows"] = len(index)
        return len(index)

    def _rows(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if len(self.ngram_index) == 0:
            return ids
        hashed = hash_ngrams(ids, lengths, cfg.ngrams, cfg.buckets)
        pos = torch.searchsorted(self.ngram_index, hashed.clamp(min=0))
        pos = pos.clamp(max=len(self.ngram_index) - 1)
        known = (self.ngram_index[pos] == hashed) & (hashed >= 0)
        rows = torch.where(known, pos + self.vocab_size, 0)
        return torch.cat([ids, rows], dim=1)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.embedding(self._rows(ids, lengths)))

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids, lengths))


class CharWordEncoder(nn.Module):
    """Encodes each vocabulary word from its characters (embedding -> 1-D conv -> max over time).

    The character ids of every word are computed once from the vocabulary and kept as a buffer,
    so this adds no input pipeline: a word id indexes its characters.
    """

    def __init__(self, words: list[str], char_dim: int, max_chars: int = 16, char_emb: int = 24):
        super().__init__()
        alphabet = sorted({c for w in words for c in w})
        self.alphabet = alphabet
        char_id = {c: i + 1 for i, c in enumerate(alphabet)}
        table = torch.zeros(len(words), max_chars, dtype=torch.long)
        for i, word in enumerate(words):
            if word.startswith("[") and word.endswith("]"):
                continue  # special tokens have no characters
            chars = [char_id[c] for c in word[:max_chars]]
            table[i, : len(chars)] = torch.tensor(chars, dtype=torch.long)
        self.register_buffer("word_chars", table)
        self.embedding = nn.Embedding(len(alphabet) + 1, char_emb, padding_idx=0)
        self.conv = nn.Conv1d(char_emb, char_dim, kernel_size=3, padding=1)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        chars = self.word_chars[ids]  # (B, T, C)
        B, T, C = chars.shape
        x = self.embedding(chars.view(B * T, C)).transpose(1, 2)  # (B*T, E, C)
        x = torch.relu(self.conv(x)).max(dim=2).values
        return x.view(B, T, -1)


class AdditiveAttentionPool(nn.Module):
    """score_t = v . tanh(W h_t); softmax over the real (unpadded) steps; weighted sum of h."""

    def __init__(self, dim: int, attention_dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, attention_dim)
        self.v = nn.Linear(attention_dim, 1, bias=False)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.v(torch.tanh(self.proj(h))).squeeze(-1)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.bmm(weights.unsqueeze(1), h).squeeze(1), weights


class AttentionPooledClassifier(nn.Module):
    """What the encoders that end in an attention pool share: a subclass's ``_encode(ids, lengths)`` gives
    the pooled vector and the pooling weights; ``dropout`` and ``head`` finish it."""

    pools_with_attention = True

    @property
    def feature_dim(self) -> int:
        return self.head.in_features

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.dropout(self._encode(ids, lengths)[0])

    def attention_weights(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T) attention of the pooling over each row's tokens (zero on padding)."""
        return self._encode(ids, lengths)[1]

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(ids, lengths))


class RNNAttentionClassifier(AttentionPooledClassifier):
    """Word embeddings (optionally + character encoding of each word) -> BiGRU/BiLSTM -> attention pool -> linear."""

    def __init__(self, config: RNNAttentionConfig, vocab_size: int, num_labels: int, words: list[str] | None = None):
        super().__init__()
        self.config, self.dims = config, {"vocab_size": vocab_size, "num_labels": num_labels}
        embedding_dim, hidden_dim, char_dim = config.embedding_dim, config.hidden_dim, config.char_dim
        dropout, layers = config.dropout, config.layers
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.chars = None
        if char_dim:
            if words is None or len(words) != vocab_size:
                raise ValueError("char_dim > 0 needs `words`: the vocabulary ordered by id")
            self.chars = CharWordEncoder(words, char_dim)
        rnn_cls = {"gru": nn.GRU, "lstm": nn.LSTM}[config.cell]
        self.rnn = rnn_cls(embedding_dim + char_dim, hidden_dim, num_layers=layers, batch_first=True,
                           bidirectional=True, dropout=dropout if layers > 1 else 0.0)
        self.attention = AdditiveAttentionPool(2 * hidden_dim, config.attention_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_dim, num_labels)

    def _encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding(ids)
        if self.chars is not None:
            x = torch.cat([x, self.chars(ids)], dim=-1)
        x = self.dropout(x)
        packed = pack_padded_sequence(x, lengths.cpu().clamp(min=1), batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1], device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        return self.attention(h, mask)
