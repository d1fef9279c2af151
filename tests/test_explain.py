"""Explanations: attributions point at the words a model relies on; integrated gradients add up; a bag's top n-grams."""

from __future__ import annotations

import random

import pytest
import torch

from lowlm.config import BagOfNgramsConfig, RNNAttentionConfig, TrainConfig
from lowlm.inference.classifier import TextClassifier
from lowlm.inference.explain import html, saliency, top_ngrams
from lowlm.models.kinds import build_model
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.objectives import train_classifier
from lowlm.training.trainer import seed_everything

FILLER = "the a movie film story was is really quite it this that plot".split()


def crafted(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Sentence label = whether it holds 'excellent' (1) or 'awful' (0); every other word is filler."""
    rng = random.Random(seed)
    texts, labels = [], []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        label = rng.randint(0, 1)
        words.insert(rng.randint(0, len(words)), "excellent" if label else "awful")
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def fit(config) -> TextClassifier:
    texts, labels = crafted(600, 1)
    tok = Tokenizer.train(texts)
    seed_everything(0)
    net = build_model(config, vocab_size=tok.vocab_size, num_labels=2, words=tok.tokens())
    batches = Batches(tok.encode_batch(texts), labels, 32, shuffle=True, seed=0)
    if config.kind == "bag_of_ngrams":
        net.index_ngrams((b.ids, b.lengths) for b in batches)
    lr = 0.5 if config.kind == "bag_of_ngrams" else 3e-3
    train_classifier(net, batches, None, 2, TrainConfig(epochs=4, lr=lr, progress=False))
    return TextClassifier(net.eval(), tok, ["negative", "positive"])


@pytest.fixture(scope="module")
def rnn():
    return fit(RNNAttentionConfig(embedding_dim=24, hidden_dim=24, attention_dim=24, char_dim=0, dropout=0.0))


@pytest.mark.parametrize("method", ["grad_input", "integrated_gradients", "occlusion"])
def test_the_deciding_word_outscores_every_filler_word(rnn, method):
    text = "the movie was really excellent and the plot"
    assert rnn.predict([text])[0]["label"] == "positive"
    got = saliency(rnn, text, method=method)
    scores = dict(zip(got["tokens"], got["scores"]))
    assert got["label"] == "positive" and got["method"] == method
    assert scores["excellent"] > max(abs(v) for k, v in scores.items() if k != "excellent")
    away = saliency(rnn, text, label="negative", method=method)  # toward the other class it counts against
    assert dict(zip(away["tokens"], away["scores"]))["excellent"] < 0


def test_integrated_gradients_add_up_to_the_logit_change_from_the_zero_embedding(rnn):
    text = "this film is awful really"
    got = saliency(rnn, text, label="negative", method="integrated_gradients", steps=128)
    ids = rnn.tokenizer.encode(text)
    with torch.no_grad():
        x = rnn.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0, 0]
        handle = rnn.model.embedding.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
        zero = rnn.model(torch.tensor([ids]), torch.tensor([len(ids)]))[0, 0]
        handle.remove()
    assert sum(got["scores"]) == pytest.approx(float(x - zero), rel=0.05, abs=0.05)


def test_a_bag_of_ngrams_explains_by_occlusion_and_lists_its_top_ngrams():
    bag = fit(BagOfNgramsConfig(embedding_dim=16, ngrams=2, buckets=10_000))
    got = saliency(bag, "the plot was excellent")
    assert got["method"] == "occlusion"
    scores = dict(zip(got["tokens"], got["scores"]))
    assert scores["excellent"] == max(scores.values())
    top = top_ngrams(bag, crafted(50, 2)[0], k=3)
    assert top["positive"][0][0] == "excellent" and top["negative"][0][0] == "awful"
    assert any(" " in ngram for label in top for ngram, _ in top_ngrams(bag, crafted(50, 2)[0], k=200)[label])


def test_the_page_highlights_each_token_and_escapes_text():
    page = html([(["<b>", "fine"], [1.0, -0.5], "caption & more")], title="saliency")
    assert "&lt;b&gt;" in page and "caption &amp; more" in page
    assert "rgba(220,40,40,1.00)" in page and "rgba(40,90,220,0.50)" in page
