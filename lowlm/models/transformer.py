"""A small Transformer encoder classifier: the "high-level" model the low-level ones are measured against.

Word embeddings (scaled by sqrt(width)) plus learned position embeddings, ``layers`` pre-norm
self-attention blocks (``nn.TransformerEncoder``, padding masked), the same additive attention pool
and linear head as the BiGRU classifier. It shares the classifiers' interface (``features``,
``feature_dim``, ``attention_weights``), so the trainer, bundle, pyfunc, attacks, saliency and the
few-shot strategies take it as they take the others.

>>> from lowlm.config.models import TransformerConfig
>>> net = TransformerClassifier(TransformerConfig(embedding_dim=16, heads=2, ff_dim=32, attention_dim=8), 50, 3)
>>> net(torch.tensor([[5, 6, 7, 0]]), torch.tensor([3])).shape
torch.Size([1, 3])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lowlm.config.models import TransformerConfig
from lowlm.models.classifier import AdditiveAttentionPool, AttentionPooledClassifier


class TransformerClassifier(AttentionPooledClassifier):
    def __init__(self, config: TransformerConfig, vocab_size: int, num_labels: int, words: list[str] | None = None):
        super().__init__()
        self.config, self.dims = config, {"vocab_size": vocab_size, "num_labels": num_labels}
        dim = config.embedding_dim
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.positions = nn.Embedding(config.max_positions, dim)
        layer = nn.TransformerEncoderLayer(dim, config.heads, config.ff_dim, config.dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, norm=nn.LayerNorm(dim),
                                             enable_nested_tensor=False)
        self.attention = AdditiveAttentionPool(dim, config.attention_dim)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(dim, num_labels)

    def _encode(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        T = ids.shape[1]
        if T > self.config.max_positions:
            ids, T = ids[:, : self.config.max_positions], self.config.max_positions
            lengths = lengths.clamp(max=T)
        mask = torch.arange(T, device=ids.device).unsqueeze(0) < lengths.clamp(min=1).unsqueeze(1)
        x = self.embedding(ids) * math.sqrt(self.config.embedding_dim)
        x = self.dropout(x + self.positions(torch.arange(T, device=ids.device)).unsqueeze(0))
        if callable(self.encoder.layers[0].linear1.weight):  # int8 layers (dynamic quantization): torch's fused
            fast = torch.backends.mha.get_fastpath_enabled()  # path reads .weight as a tensor, so it is off here
            torch.backends.mha.set_fastpath_enabled(False)
            try:
                h = self.encoder(x, src_key_padding_mask=~mask)
            finally:
                torch.backends.mha.set_fastpath_enabled(fast)
        else:
            h = self.encoder(x, src_key_padding_mask=~mask)
        return self.attention(h, mask)
