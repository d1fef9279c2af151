"""The registry of model kinds: ``kind`` -> model class, the one place a new kind of model is added
(with its config class in ``lowlm.config.models``).

>>> from lowlm.config import BagOfNgramsConfig
>>> net = build_model(BagOfNgramsConfig(embedding_dim=8), vocab_size=20, num_labels=3)
>>> rebuilt = model_from_meta(model_meta(net)); type(rebuilt).__name__, rebuilt.dims
('BagOfNgrams', {'vocab_size': 20, 'num_labels': 3, 'ngram_rows': 0})
"""

from __future__ import annotations

import importlib

from pydantic import TypeAdapter
from torch import nn

from lowlm.config.models import ModelConfig

MODEL_KINDS = {
    "bag_of_ngrams": "lowlm.models.classifier:BagOfNgrams",
    "rnn_attention": "lowlm.models.classifier:RNNAttentionClassifier",
    "transformer": "lowlm.models.transformer:TransformerClassifier",
    "seq2seq": "lowlm.models.seq2seq:Seq2Seq",
    "language_model": "lowlm.models.language_model:LanguageModel",
    "reader": "lowlm.models.reader:Reader",
}
_CONFIG = TypeAdapter(ModelConfig)


def model_class(kind: str) -> type[nn.Module]:
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    module, _, name = MODEL_KINDS[kind].partition(":")
    return getattr(importlib.import_module(module), name)


def build_model(config, **dims) -> nn.Module:
    """An untrained model of ``config.kind``, built from ``config`` and its sizes (``dims``)."""
    return model_class(config.kind)(config, **dims)


def model_meta(model: nn.Module) -> dict:
    """What rebuilds ``model``'s shape: its config (with ``kind``) and sizes."""
    return {"model": model.config.model_dump(mode="json"), "dims": dict(model.dims)}


def model_from_meta(meta: dict, **extra) -> nn.Module:
    """Rebuild an untrained model from ``model_meta`` output (``extra``: e.g. the vocabulary ``words``)."""
    config = _CONFIG.validate_python(meta["model"])
    return build_model(config, **meta["dims"], **extra)
