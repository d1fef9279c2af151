"""Classifier shapes, masking and rebuilding from config."""

from __future__ import annotations

import json

import torch

from lowlm.text.batching import pad
from lowlm.config import RNNAttentionConfig
from lowlm.models.classifier import RNNAttentionClassifier
from lowlm.models.kinds import build_model, model_from_meta, model_meta

WORDS = ["[PAD]", "[UNK]", "the", "cat", "sat", "dog", "ran", "fast"]


def batch():
    return pad([[2, 3, 4], [5, 6], [2, 5, 6, 7, 3]])


def test_rnn_attention_shapes_and_attention_mask():
    ids, lengths = batch()
    for cell in ("gru", "lstm"):
        config = RNNAttentionConfig(embedding_dim=16, hidden_dim=8, attention_dim=8, char_dim=6, cell=cell, layers=2)
        model = build_model(config, vocab_size=len(WORDS), num_labels=4, words=WORDS).eval()
        logits = model(ids, lengths)
        assert logits.shape == (3, 4)
        weights = model.attention_weights(ids, lengths)
        assert weights.shape == ids.shape
        assert torch.allclose(weights.sum(dim=1), torch.ones(3))
        assert weights[1, 2:].abs().sum() == 0  # no attention on padding
        assert model.features(ids, lengths).shape == (3, 16)


def test_padding_does_not_change_predictions():
    model = build_model(RNNAttentionConfig(embedding_dim=8, hidden_dim=8, char_dim=4), vocab_size=len(WORDS),
                        num_labels=3, words=WORDS).eval()
    short = model(*pad([[2, 3, 4]]))
    padded_ids, _ = pad([[2, 3, 4], [2, 3, 4, 5, 6, 7]])
    longer = model(padded_ids[:1], torch.tensor([3]))
    assert torch.allclose(short, longer, atol=1e-6)


def test_char_features_give_vocabulary_words_their_characters():
    model = RNNAttentionClassifier(RNNAttentionConfig(char_dim=4), len(WORDS), 2, words=WORDS)
    table = model.chars.word_chars
    assert (table[0] == 0).all() and (table[1] == 0).all()  # specials have no characters
    assert (table[3, :3] > 0).all() and (table[3, 3:] == 0).all()  # "cat"
    assert table[3, 1] == table[4, 1]  # the 'a' of "cat" and of "sat"
    assert table[4, 0] == table[7, 2]  # the 's' of "sat" and of "fast"
    assert table[3, 0] != table[4, 0]


def test_rebuild_from_config_reproduces_logits():
    ids, lengths = batch()
    model = build_model(RNNAttentionConfig(char_dim=5, cell="lstm"), vocab_size=len(WORDS), num_labels=3,
                        words=WORDS).eval()
    clone = model_from_meta(json.loads(json.dumps(model_meta(model))), words=WORDS).eval()  # through JSON
    clone.load_state_dict(model.state_dict())
    assert torch.equal(model(ids, lengths), clone(ids, lengths))
