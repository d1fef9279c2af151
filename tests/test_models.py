"""Classifier shapes, masking and rebuilding from config."""

from __future__ import annotations

import torch

from lowlm.batching import pad
from lowlm.models import RNNAttentionClassifier, build_classifier, classifier_from_config

WORDS = ["[PAD]", "[UNK]", "the", "cat", "sat", "dog", "ran", "fast"]


def batch():
    return pad([[2, 3, 4], [5, 6], [2, 5, 6, 7, 3]])


def test_rnn_attention_shapes_and_attention_mask():
    ids, lengths = batch()
    for cell in ("gru", "lstm"):
        model = build_classifier("rnn_attention", len(WORDS), 4, words=WORDS, embedding_dim=16, hidden_dim=8,
                                 attention_dim=8, char_dim=6, cell=cell, layers=2).eval()
        logits = model(ids, lengths)
        assert logits.shape == (3, 4)
        weights = model.last_attention
        assert weights.shape == ids.shape
        assert torch.allclose(weights.sum(dim=1), torch.ones(3))
        assert weights[1, 2:].abs().sum() == 0  # no attention on padding
        assert model.features(ids, lengths).shape == (3, 16)


def test_padding_does_not_change_predictions():
    model = build_classifier("rnn_attention", len(WORDS), 3, words=WORDS, embedding_dim=8, hidden_dim=8,
                             char_dim=4).eval()
    short = model(*pad([[2, 3, 4]]))
    padded_ids, _ = pad([[2, 3, 4], [2, 3, 4, 5, 6, 7]])
    longer = model(padded_ids[:1], torch.tensor([3]))
    assert torch.allclose(short, longer, atol=1e-6)


def test_char_features_give_vocabulary_words_their_characters():
    model = RNNAttentionClassifier(len(WORDS), 2, char_dim=4, words=WORDS)
    table = model.chars.word_chars
    assert (table[0] == 0).all() and (table[1] == 0).all()  # specials have no characters
    assert (table[3, :3] > 0).all() and (table[3, 3:] == 0).all()  # "cat"
    assert table[3, 1] == table[4, 1]  # the 'a' of "cat" and of "sat"
    assert table[4, 0] == table[7, 2]  # the 's' of "sat" and of "fast"
    assert table[3, 0] != table[4, 0]


def test_rebuild_from_config_reproduces_logits():
    ids, lengths = batch()
    model = build_classifier("rnn_attention", len(WORDS), 3, words=WORDS, char_dim=5, cell="lstm").eval()
    clone = classifier_from_config(model.config, words=WORDS).eval()
    clone.load_state_dict(model.state_dict())
    assert torch.equal(model(ids, lengths), clone(ids, lengths))
