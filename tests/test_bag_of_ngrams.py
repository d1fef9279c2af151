"""BagOfNgrams: n-gram hashing, row indexing, pooling, sparse gradients, rebuilding, learning."""

from __future__ import annotations

import io
import random

import pytest
import torch
from torch import nn

from lowlm.text.batching import Batches, pad
from lowlm.config import TrainConfig
from lowlm.config import BagOfNgramsConfig
from lowlm.models.classifier import BagOfNgrams
from lowlm.models.kinds import model_from_meta, model_meta
from lowlm.models.classifier import HASH_PRIME, hash_ngrams
from lowlm.training.objectives import classification_metrics, train_classifier

ROWS = [[2, 3, 4], [5, 6], [2, 5, 6, 7, 3], [4]]


def indexed_model(rows=ROWS, vocab_size=10, num_labels=3, **options) -> BagOfNgrams:
    torch.manual_seed(0)
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=8, ngrams=2, buckets=1000, **options), vocab_size, num_labels)
    model.index_ngrams([pad(rows)])
    with torch.no_grad():  # n-gram rows start at zero: give them values so the checks see them
        model.embedding.weight[vocab_size:].normal_()
    return model


def test_hash_ngrams_matches_fasttexts_formula_and_marks_padding():
    ids, lengths = pad([[5, 6, 7], [8, 9]])
    bigrams = hash_ngrams(ids, lengths, 2, 100)
    assert bigrams.tolist() == [[(5 * HASH_PRIME + 6) % 100, (6 * HASH_PRIME + 7) % 100],
                                [(8 * HASH_PRIME + 9) % 100, -1]]
    up_to_trigrams = hash_ngrams(ids, lengths, 3, 1000)
    assert up_to_trigrams.shape == (2, 3)
    assert up_to_trigrams[0, 2] == ((5 * HASH_PRIME + 6) * HASH_PRIME + 7) % 1000
    assert up_to_trigrams[1, 2] == -1  # a 2-word row has no trigram
    assert hash_ngrams(*pad([[5]]), 2, 100).shape == (1, 0)  # too short for any bigram


def test_index_ngrams_gives_seen_ngrams_rows_and_unseen_ones_the_padding_row():
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=4, ngrams=2, buckets=1000), 10, 2)
    added = model.index_ngrams([pad([[2, 3, 4], [3, 4]])])  # bigrams (2,3), (3,4) -> 2 distinct buckets
    assert added == 2 and model.dims["ngram_rows"] == 2
    assert model.embedding.weight.shape == (12, 4)
    rows = model._rows(*pad([[2, 3, 9], [4]]))
    words, ngrams = rows[:, :3], rows[:, 3:]
    assert words.tolist() == [[2, 3, 9], [4, 0, 0]]
    assert ngrams[0, 0] >= 10  # (2,3) was seen: it has a row after the vocabulary
    assert ngrams[0, 1] == 0  # (3,9) was never seen: padding, left out of the mean
    assert ngrams[1, 0] == 0  # no bigram in a 1-word row


def test_features_are_the_mean_of_word_and_known_ngram_rows():
    model = indexed_model()
    ids, lengths = pad([[2, 5, 6], [9, 8]])  # (9, 8) was never indexed: it must not count
    weight = model.embedding.weight.detach()
    rows = model._rows(ids, lengths)
    features = model.features(ids, lengths).detach()
    for i in range(2):
        used = rows[i][rows[i] != 0]
        assert torch.allclose(features[i], weight[used].mean(dim=0), atol=1e-6)
    assert len(rows[1][rows[1] != 0]) == 2  # the two words only


def test_sparse_gradient_touches_only_the_rows_in_the_batch():
    model = indexed_model()
    ids, lengths = pad([[2, 5, 6]])
    nn.functional.cross_entropy(model(ids, lengths), torch.tensor([1])).backward()
    grad = model.embedding.weight.grad
    assert grad.is_sparse
    touched = set(grad.coalesce().indices()[0].tolist())
    assert touched == set(model._rows(ids, lengths)[0].tolist()) - {0}


def test_padding_does_not_change_logits():
    model = indexed_model().eval()
    alone = model(*pad([[2, 5, 6]]))
    ids, lengths = pad([[2, 5, 6], [2, 5, 6, 7, 3, 4, 4]])
    assert torch.allclose(model(ids, lengths)[:1], alone, atol=1e-6)


def test_state_dict_round_trip_through_config_gives_identical_logits():
    model = indexed_model(dropout=0.2).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    rebuilt = model_from_meta(model_meta(model))
    rebuilt.load_state_dict(torch.load(buffer, weights_only=True))
    rebuilt.eval()
    ids, lengths = pad(ROWS + [[9, 9, 8]])  # includes n-grams never indexed
    assert torch.equal(rebuilt(ids, lengths), model(ids, lengths))
    assert torch.equal(rebuilt.ngram_index, model.ngram_index)


@pytest.mark.parametrize("ngrams, expected", [(2, 0.95), (1, None)])
def test_learns_word_order_only_through_bigrams(ngrams, expected):
    # Class 0: "... 2 3 ...", class 1: "... 3 2 ...". Unigram bags are identical; bigrams differ.
    rng = random.Random(0)
    rows, labels = [], []
    for i in range(400):
        filler = [rng.randrange(4, 30) for _ in range(rng.randrange(0, 4))]
        pair = [2, 3] if i % 2 == 0 else [3, 2]
        cut = rng.randrange(0, len(filler) + 1)
        rows.append(filler[:cut] + pair + filler[cut:])
        labels.append(i % 2)
    train = Batches(rows[:300], labels[:300], batch_size=16, shuffle=True, seed=0)
    test = Batches(rows[300:], labels[300:], batch_size=64)
    torch.manual_seed(0)
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=16, ngrams=ngrams, buckets=10_000), 30, 2)
    model.index_ngrams((b.ids, b.lengths) for b in Batches(rows[:300], batch_size=64))
    cfg = TrainConfig(epochs=10, lr=0.05, batch_size=16, warmup_ratio=0.0, grad_clip=0.0, weight_decay=0.0,
                      patience=0, progress=False, seed=0)
    train_classifier(model, train, test, 2, cfg)
    accuracy = classification_metrics(model, test, 2)["accuracy"]
    if expected is None:
        assert accuracy < 0.75  # without n-grams word order is invisible
    else:
        assert accuracy >= expected
