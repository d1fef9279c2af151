"""Tokenizers: round trips per kind, normalisation, vocabulary limits, JSON persistence, batch encoding."""

from __future__ import annotations

import pytest

from lowlm.text.tokenizer import PAD_ID, UNK_ID, Tokenizer

TEXTS = ["The cat sat on the mat.", "A dog sat on a log!", "the cat and the dog are friends",
         "Cats like mats; dogs like logs."]


@pytest.mark.parametrize("kind", ["word", "bpe", "char"])
def test_round_trip_through_json(kind, tmp_path):
    tok = Tokenizer.train(TEXTS, kind=kind, vocab_size=200)
    loaded = Tokenizer.load(tok.save(tmp_path / f"{kind}.json"))
    for text in TEXTS:
        assert loaded.encode(text) == tok.encode(text)
        assert UNK_ID not in tok.encode(text)
    assert loaded.tokens() == tok.tokens()
    assert tok.tokens()[:4] == ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


@pytest.mark.parametrize("kind,expected", [
    ("word", "the cat sat on the mat."),  # lowercased; punctuation split off, then rejoined
    ("bpe", "the cat sat on the mat."),
    ("char", "the cat sat on the mat."),
])
def test_decode_gives_normalised_text(kind, expected):
    tok = Tokenizer.train(TEXTS, kind=kind, vocab_size=300)
    assert tok.decode(tok.encode("The cat sat on the mat.")) == expected


def test_char_level_chinese():
    texts = ["我爱你", "你好吗", "我很好，谢谢"]
    tok = Tokenizer.train(texts, kind="char")
    ids = tok.encode("我爱你")
    assert len(ids) == 3 and UNK_ID not in ids
    assert tok.decode(ids) == "我爱你"
    assert tok.encode("猫") == [UNK_ID]


def test_nfkc_and_case_options():
    fullwidth = "ＣＡＴ"  # full-width letters: NFKC folds them to ASCII
    tok = Tokenizer.train(["cat dog"], kind="word", lowercase=True, nfkc=True)
    assert tok.encode(fullwidth) == tok.encode("cat")
    raw = Tokenizer.train(["cat dog"], kind="word", lowercase=False, nfkc=False)
    assert raw.encode("CAT") == [UNK_ID]


def test_vocab_size_and_min_frequency():
    texts = ["a a a b b c"] * 2
    assert set(Tokenizer.train(texts, min_frequency=3).tokens()) == {"[PAD]", "[UNK]", "[BOS]", "[EOS]", "a", "b"}
    assert Tokenizer.train(texts, vocab_size=5).vocab_size == 5


def test_batch_encoding_matches_single_and_truncates():
    tok = Tokenizer.train(TEXTS, max_length=4)
    batch = tok.encode_batch(TEXTS)
    assert batch == [tok.encode(t) for t in TEXTS]
    assert all(len(ids) <= 4 for ids in batch)
    assert PAD_ID not in sum(batch, [])
