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


# Chinese has no spaces: a word vocabulary sees each clause as one "word", unseen in validation
CHINESE_TRAIN = ["我爱你", "你好吗", "我很好，谢谢", "今天天气很好", "我们去公园吧"]
CHINESE_VALIDATION = ["我爱你们", "今天很好", "我们去学校吧"]


def test_word_tokenizer_on_chinese_has_a_high_unknown_rate_and_char_a_low_one():
    word = Tokenizer.train(CHINESE_TRAIN, kind="word")
    char = Tokenizer.train(CHINESE_TRAIN, kind="char")
    # word: each validation sentence is one token, none seen in training -> 3 of 3 unknown
    assert word.stats(CHINESE_VALIDATION)["unk_rate"] == 1.0
    # char: 4 + 4 + 6 = 14 characters, of which only 学 and 校 were never seen -> 2 unknown
    assert char.stats(CHINESE_VALIDATION)["unk_rate"] == pytest.approx(2 / 14)
    assert char.stats(["我爱你", "今天很好"])["unk_rate"] == 0.0


def test_unknown_rate_warning_names_the_fix():
    from lowlm.text.tokenizer import unknown_rate_warning

    word = Tokenizer.train(CHINESE_TRAIN, kind="word")
    message = unknown_rate_warning(word.stats(CHINESE_VALIDATION)["unk_rate"], word.kind)
    assert message == ("100.0% of validation tokens are unknown to the word tokenizer; set tokenizer.kind: char "
                       "(or bpe) for text without spaces (Chinese, Japanese) or with many rare words")
    assert unknown_rate_warning(0.10, "word") is None  # the threshold itself is not "above 10%"
    assert unknown_rate_warning(0.101, "word").startswith("10.1% of validation tokens")
    assert unknown_rate_warning(0.05, "char") is None
    # a char or BPE vocabulary is told to widen its vocabulary, not to switch to itself
    char_message = unknown_rate_warning(0.286, "char", setting="tokenizer.target.kind")
    assert char_message.startswith("28.6% of validation tokens are unknown to the char tokenizer")
    assert "tokenizer.target.min_frequency" in char_message and "kind: char" not in char_message
