"""The language model and what it transfers: perplexity, encoder loading, every fine-tuning strategy."""

from __future__ import annotations

import random

import pytest
import torch

from lowlm.config.models import LanguageModelConfig, RNNAttentionConfig
from lowlm.config.stages import STRATEGIES, FineTuneConfig, LanguageModelTrainConfig
from lowlm.inference.bundle import load_bundle
from lowlm.inference.classifier import TextClassifier
from lowlm.models.classifier import RNNAttentionClassifier
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.fewshot import (evaluate, fine_tune, layer_groups, sample_k_per_class,
                                    short_classes)
from lowlm.training.pretrain import pretrain
from lowlm.training.pretrained import PretrainedMismatch, load_encoder
from lowlm.training.trainer import Callback

TOPICS = {
    "weather": ["rain", "sunny", "cloudy", "storm", "snow", "windy", "forecast", "cold"],
    "food": ["pizza", "pasta", "salad", "bread", "cheese", "soup", "dinner", "spicy"],
    "sport": ["football", "tennis", "match", "goal", "team", "score", "league", "coach"],
}
FRAMES = ["i think the {a} is {b} and {c} today", "tell me about {a} , {b} and the {c}", "the {a} was {b} {c} {a}",
          "what a {a} , so {b} , {c}", "my friend likes {a} with {b} or {c}"]


def topic_texts(n: int, seed: int) -> tuple[list[str], list[int]]:
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % len(TOPICS)
        words = list(TOPICS.values())[label]
        texts.append(rng.choice(FRAMES).format(a=rng.choice(words), b=rng.choice(words), c=rng.choice(words)))
        labels.append(label)
    return texts, labels


LM_CONFIG = LanguageModelConfig(embedding_dim=24, hidden_dim=24, dropout_embedding=0.0, dropout_weight=0.1)
CLF_CONFIG = RNNAttentionConfig(embedding_dim=24, hidden_dim=24, attention_dim=16, dropout=0.1)


@pytest.fixture(scope="module")
def lm():
    texts, _ = topic_texts(600, seed=1)
    tok = Tokenizer.train(texts)
    config = LanguageModelTrainConfig(epochs=4, lr=1e-2, batch_size=32, warmup_ratio=0.0, progress=False)
    bundle, result = pretrain(LM_CONFIG, tok, texts, topic_texts(60, seed=2)[0], config)
    return bundle, result


def test_language_model_perplexity_falls_far_below_the_vocabulary(lm, tmp_path):
    bundle, result = lm
    vocab = bundle.tokenizer.vocab_size
    first, last = result.history[0]["val_perplexity"], result.history[-1]["val_perplexity"]
    assert last < first and last < vocab / 4, (first, last, vocab)
    # held-out text of the same grammar: the bundle's own perplexity agrees with training's
    held_out = topic_texts(60, seed=3)[0]
    assert bundle.perplexity(held_out) < vocab / 4
    # scrambled words are far less likely than real sentences
    scrambled = [" ".join(random.Random(i).sample(t.split(), len(t.split()))) for i, t in enumerate(held_out)]
    assert bundle.perplexity(scrambled) > 1.5 * bundle.perplexity(held_out)
    # saved and loaded as a bundle of its own kind; serves scores and continuations
    bundle.save(tmp_path / "lm")
    loaded = load_bundle(tmp_path / "lm")
    assert type(loaded).__name__ == "LanguageModelBundle"
    out = loaded.serve(["i think the"], {"max_tokens": 4})
    assert out["perplexity"][0] > 1 and out["tokens"] == [4]
    assert 1 <= len(out["continuation"][0].split()) <= 4


def test_encoder_loads_from_the_language_model_and_the_classifier_trains(lm):
    bundle, _ = lm
    torch.manual_seed(0)
    net = RNNAttentionClassifier(CLF_CONFIG, bundle.tokenizer.vocab_size, len(TOPICS))
    copied = load_encoder(net, bundle, bundle.tokenizer)
    assert "embedding.weight" in copied and "rnn.weight_hh_l0_reverse" in copied
    assert torch.equal(net.embedding.weight, bundle.model.embedding.weight)
    assert torch.equal(net.rnn.weight_ih_l0, bundle.model.rnn.weight_ih_l0)
    assert torch.equal(net.rnn.weight_hh_l0_reverse, bundle.model.rnn_reverse.weight_hh_l0)
    base = TextClassifier(net, bundle.tokenizer, list(TOPICS))
    texts, labels = topic_texts(90, seed=4)
    test_texts, test_labels = topic_texts(90, seed=5)
    tuned = fine_tune(base, "full", texts, labels, list(TOPICS), FineTuneConfig(steps=40), seed=0)
    assert evaluate(tuned.classifier, test_texts, test_labels)["accuracy"] > 0.9


def test_a_language_model_that_does_not_fit_says_which_and_why(lm):
    bundle, _ = lm
    wide = RNNAttentionClassifier(CLF_CONFIG.model_copy(update={"hidden_dim": 32}), bundle.tokenizer.vocab_size, 3)
    with pytest.raises(PretrainedMismatch, match=r"hidden_dim 24.*hidden_dim 32"):
        load_encoder(wide, bundle, bundle.tokenizer)
    other = Tokenizer.train(["a completely different vocabulary"])
    net = RNNAttentionClassifier(CLF_CONFIG, other.vocab_size, 3)
    with pytest.raises(PretrainedMismatch, match="another tokenizer"):
        load_encoder(net, bundle, other)
    # character features widen the RNN input: the word columns come from the LM
    chars = RNNAttentionClassifier(CLF_CONFIG.model_copy(update={"char_dim": 8}), bundle.tokenizer.vocab_size, 3,
                                   words=bundle.tokenizer.tokens())
    load_encoder(chars, bundle, bundle.tokenizer)
    assert torch.equal(chars.rnn.weight_ih_l0[:, :24], bundle.model.rnn.weight_ih_l0)


def test_k_shot_samples_are_exact_reproducible_and_short_classes_are_named():
    labels = [0] * 10 + [1] * 3 + [2] * 20
    first, again = sample_k_per_class(labels, 5, seed=7), sample_k_per_class(labels, 5, seed=7)
    assert first == again and sample_k_per_class(labels, 5, seed=8) != first
    assert sorted(labels[i] for i in first) == [0] * 5 + [1] * 3 + [2] * 5
    assert short_classes(labels, 5) == {1: 3}


@pytest.fixture(scope="module")
def base(lm):
    bundle, _ = lm
    torch.manual_seed(0)
    net = RNNAttentionClassifier(CLF_CONFIG, bundle.tokenizer.vocab_size, 2)
    load_encoder(net, bundle, bundle.tokenizer)
    return TextClassifier(net, bundle.tokenizer, ["a", "b"])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_trains_and_beats_the_majority(base, strategy):
    texts, labels = topic_texts(300, seed=6)
    shots = sample_k_per_class(labels, 8, seed=0)
    test_texts, test_labels = topic_texts(150, seed=7)
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    result = fine_tune(base, strategy, [texts[i] for i in shots], [labels[i] for i in shots], list(TOPICS),
                       FineTuneConfig(steps=60), seed=0, validation=topic_texts(60, seed=8))
    accuracy = evaluate(result.classifier, test_texts, test_labels)["accuracy"]
    # majority: one third; the centroids of a frozen LM's features are the weakest (about 0.45 here)
    assert accuracy > (1 / 3 + 0.08 if strategy == "prototypes" else 0.75), (strategy, accuracy)
    assert result.classifier.labels == list(TOPICS) and result.shots == 24
    assert all(torch.equal(v, base.model.state_dict()[k]) for k, v in before.items())  # base untouched


def test_gradual_unfreezing_keeps_the_frozen_groups_in_its_first_epoch(base):
    groups = layer_groups(base.model)
    assert len(groups) == 3 and sum(len(g) for g in groups) == len(list(base.model.parameters()))
    snapshots = []

    class Snapshot(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            snapshots.append([[p.detach().clone() for p in g] for g in layer_groups(trainer.model)])

    texts, labels = topic_texts(48, seed=9)
    result = fine_tune(base, "gradual_unfreezing", texts, labels, list(TOPICS), FineTuneConfig(steps=6, batch_size=16),
                       seed=0, callbacks=[Snapshot()])
    start = layer_groups(base.model)
    first = snapshots[0]
    # epoch 1: embedding and RNN exactly as the base had them; the top group moved
    for g in (0, 1):
        assert all(torch.equal(a, b) for a, b in zip(first[g], start[g]))
    # epoch 2 trains the RNN too; epoch 3 the embedding
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[1][1], start[1]))
    assert all(torch.equal(a, b) for a, b in zip(snapshots[1][0], start[0]))
    assert not all(torch.equal(a, b) for a, b in zip(snapshots[2][0], start[0]))
    assert all(p.requires_grad for p in result.classifier.model.parameters())


def test_the_seq2seq_encoder_starts_from_the_language_model_too(lm):
    from lowlm.config.models import Seq2SeqModelConfig
    from lowlm.models.seq2seq import Seq2Seq

    bundle, _ = lm
    vocab = bundle.tokenizer.vocab_size
    net = Seq2Seq(Seq2SeqModelConfig(embedding_dim=24, hidden_dim=24, attention_dim=16), vocab, vocab)
    copied = load_encoder(net, bundle, bundle.tokenizer)
    assert "src_embedding.weight" in copied and "encoder.weight_ih_l0_reverse" in copied
    assert torch.equal(net.src_embedding.weight, bundle.model.embedding.weight)
    assert torch.equal(net.encoder.weight_hh_l0_reverse, bundle.model.rnn_reverse.weight_hh_l0)
