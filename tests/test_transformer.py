"""The Transformer encoder classifier takes the same trainer, bundle, explanations and int8 path as the others."""

from __future__ import annotations

import torch

from lowlm.config import TransformerConfig, load_pipeline_config
from lowlm.config.stages import OptimizeVariant
from lowlm.inference.bundle import load_bundle
from lowlm.inference.explain import saliency
from lowlm.optimize.variants import build_variant
from tests.test_explain import crafted, fit

SMALL = TransformerConfig(embedding_dim=32, heads=4, layers=2, ff_dim=64, attention_dim=16, dropout=0.0)


def test_it_learns_the_deciding_word_and_the_explanations_point_at_it(tmp_path):
    model = fit(SMALL)
    texts, labels = crafted(200, 9)
    predicted = [r["label"] for r in model.predict(texts)]
    assert sum(p == ["negative", "positive"][y] for p, y in zip(predicted, labels)) / len(texts) >= 0.95
    got = saliency(model, "the film was really excellent and the plot", method="integrated_gradients")
    scores = dict(zip(got["tokens"], got["scores"]))
    assert scores["excellent"] == max(scores.values())
    tokens, weights = model.attention("the plot was awful")
    assert len(tokens) == 4 and abs(sum(weights) - 1) < 1e-5
    model.save(tmp_path / "float")
    again = load_bundle(tmp_path / "float")
    assert torch.equal(again.logits(texts[:20]), model.logits(texts[:20]))
    build_variant(tmp_path / "float", OptimizeVariant(name="int8", quantize=True), tmp_path / "int8")
    quantized = [r["label"] for r in load_bundle(tmp_path / "int8").predict(texts)]
    assert sum(a == b for a, b in zip(predicted, quantized)) / len(texts) >= 0.95


def test_a_pipeline_takes_it_by_kind():
    config = load_pipeline_config("sample", {"model.kind": "transformer", "model.layers": 1})
    assert isinstance(config.model, TransformerConfig) and config.model.layers == 1
