"""The augmentation chain (lowlm.robustness.augment) and back-translation with a real tiny translator."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from lowlm.config.augment import EdaAugmenter, GenerationConfig, BackTranslationAugmenter, ModelRef, NoiseAugmenter
from lowlm.robustness.augment import (NewRow, WordNetMissing, augment_frame, augment_shard, augment_texts,
                                      augmenter_names, check_wordnet, keep_new, shards, wordnet_synonyms)
from lowlm.robustness.backtranslation import BackTranslationAug, Generation, LanguageMismatch, check_chain
from lowlm.text.tokenizer import BT_TAG

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["the delivery was quick and the parcel arrived intact",
         "my card keeps getting declined at the supermarket",
         "please send the refund to my original payment method",
         "the film was a great and funny story about a brave dog"]
KINDS = ["synonym", "random_swap", "random_delete", "random_insert", "spelling", "keyboard"]


def _overlap(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / max(1, len(x | y))


def _config(kind):
    return EdaAugmenter(ratio=2) if kind == "eda" else NoiseAugmenter(kind=kind, ratio=2, p=0.2)


@pytest.mark.parametrize("kind", KINDS + ["eda"])
def test_each_augmenter_changes_text_and_keeps_its_own_rows_label(kind):
    frame = pd.DataFrame({"text": TEXTS, "label": ["delivery", "card", "refund", "film"], "id": [10, 11, 12, 13]})
    rows = augment_frame(frame, "text", [_config(kind)], seed=3)
    assert len(rows) >= len(TEXTS), kind  # ratio 2: about two per row, less what changed nothing
    for row in rows.itertuples():
        source = frame.iloc[row.source_row]
        assert row.augmenter == kind and row.text not in TEXTS
        assert (row.label, row.id) == (source["label"], source["id"])  # its own source's label and columns
        assert _overlap(row.text, source["text"]) == max(_overlap(row.text, t) for t in TEXTS)
    pd.testing.assert_frame_equal(augment_frame(frame, "text", [_config(kind)], seed=3), rows)  # seeded
    assert not augment_frame(frame, "text", [_config(kind)], seed=4).equals(rows)


def test_eda_gives_each_new_row_one_operation_in_turn():
    texts = [f"the quick brown fox number {i} jumps over the lazy dog again" for i in range(40)]
    kept, _ = augment_texts(texts, [EdaAugmenter(ratio=4)], seed=0)
    lengths = {}
    for row in kept:
        n = len(row.text.split()) - len(texts[row.row].split())
        lengths[n] = lengths.get(n, 0) + 1
    # insertion adds words, deletion removes them, swap and synonym keep the count (mostly): all four occur
    assert any(n > 0 for n in lengths) and any(n < 0 for n in lengths) and lengths.get(0, 0) > 0, lengths


def test_synonyms_come_from_wordnet():
    texts = ["the film was good and the actors were happy", "a big house stood near the old road"]
    kept, _ = augment_texts(texts, [NoiseAugmenter(kind="synonym", ratio=3, p=0.3)], seed=1)
    assert kept
    for row in kept:
        source = texts[row.row].lower().split()
        allowed = {w for word in source for syn in wordnet_synonyms(word) for w in syn.split()}
        new = [w for w in re.findall(r"\w+", row.text.lower()) if w not in source]
        assert new and all(w in allowed for w in new), (row.text, new)


def test_missing_wordnet_says_how_to_provide_it(monkeypatch, tmp_path):
    import nltk

    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)])
    with pytest.raises(WordNetMissing, match="NLTK_DATA") as err:
        check_wordnet()
    assert str(tmp_path) in str(err.value) and "wordnet" in str(err.value)
    with pytest.raises(WordNetMissing):
        augment_texts(TEXTS, [NoiseAugmenter(kind="synonym")])


def test_ratio_is_new_rows_per_source_row():
    texts = [f"sentence number {i} is here and there" for i in range(400)]
    def made(ratio):
        return augment_shard(texts, list(range(400)), [("swap", NoiseAugmenter(kind="random_swap", ratio=ratio))], 0, 0)

    assert 160 < len(made(0.5)) < 240  # one new row for about half the rows
    assert len(made(3)) == 1200 and len(made(2.5)) in range(900, 1101)
    kept, dropped = augment_texts(texts, [NoiseAugmenter(kind="random_swap", ratio=3)], seed=0)
    assert len(kept) + sum(dropped.values()) == 1200 and len(kept) > 800  # repeats of one swap are dropped


def test_outputs_equal_to_their_source_or_another_original_are_dropped():
    originals = ["a b", "b a", "c d ,"]
    rows = [NewRow(0, "x", "b a"), NewRow(0, "x", "a  b"), NewRow(2, "x", "c d,"), NewRow(2, "x", "d c"),
            NewRow(1, "x", "d c"), NewRow(1, "x", "")]
    kept, dropped = keep_new(originals, rows)
    assert [r.text for r in kept] == ["d c"]
    assert dropped == {"original": 1, "unchanged": 2, "repeat": 1, "empty": 1}


def test_shards_give_the_same_rows_in_any_order_or_thread():
    texts = [t + f" case {i}" for i in range(30) for t in TEXTS[:1]]
    named = list(zip(augmenter_names([EdaAugmenter(ratio=2), NoiseAugmenter(kind="keyboard")]),
                     [EdaAugmenter(ratio=2), NoiseAugmenter(kind="keyboard")]))
    parts = shards(len(texts), 7)

    def one(i):
        return augment_shard([texts[r] for r in parts[i]], list(parts[i]), named, seed=5, shard=i)

    in_order = [one(i) for i in range(len(parts))]
    with ThreadPoolExecutor(3) as pool:
        threaded = list(pool.map(one, reversed(range(len(parts)))))[::-1]
    assert in_order == threaded
    assert augment_texts(texts, [c for _, c in named], seed=5, shard_rows=7)[0] == keep_new(
        texts, [r for part in in_order for r in part])[0]


def test_language_chain_mismatch_names_the_model_and_the_pair():
    check_chain([("en", "de"), ("de", "en")], "en", "en", ["a", "b"])
    with pytest.raises(LanguageMismatch, match=r"models:/r@champion translates en -> de, but the pipeline needs de -> en"):
        check_chain([("en", "de")], "de", "en", ["models:/r@champion"])


@pytest.fixture(scope="module")
def tiny_translator():
    """An English->German translator trained here on the shipped pairs, a few seconds."""
    from lowlm.config import Seq2SeqModelConfig, Seq2SeqTrainConfig
    from lowlm.inference.translator import Translator
    from lowlm.models.kinds import build_model
    from lowlm.text.batching import PairBatches
    from lowlm.text.tokenizer import Tokenizer
    from lowlm.training.objectives import train_translator
    from lowlm.training.trainer import seed_everything

    pairs = [line.split("\t") for line in (ROOT / "data/parallel/en_de.tsv").read_text().splitlines()]
    train, val = pairs[:360], pairs[360:]
    src = Tokenizer.train([s for s, _ in train], kind="word", reserved=[BT_TAG])
    tgt = Tokenizer.train([t for _, t in train], kind="word", lowercase=False)
    seed_everything(3)
    net = build_model(Seq2SeqModelConfig(embedding_dim=32, hidden_dim=64, attention_dim=32, dropout=0.1),
                      src_vocab=src.vocab_size, tgt_vocab=tgt.vocab_size)
    translator = Translator(net, src, tgt, ("en", "de"))
    batches = PairBatches(src.encode_batch([s for s, _ in train]), tgt.encode_target_batch([t for _, t in train]),
                          16, shuffle=True, seed=3)
    vb = PairBatches(src.encode_batch([s for s, _ in val]), tgt.encode_target_batch([t for _, t in val]), 64)
    train_translator(translator, batches, vb, [s for s, _ in val], [t for _, t in val],
                     Seq2SeqTrainConfig(epochs=12, lr=5e-3, progress=False, patience=0, max_length=20,
                                        validation_max_pairs=10))
    words = lambda texts: {w for t in texts for w in re.findall(r"\w+", t)}  # noqa: E731
    return translator, words(t for _, t in train), words(s for s, _ in train)


def test_backtranslation_augmenter_writes_the_other_language_in_batches(tiny_translator):
    translator, german, english = tiny_translator
    calls = []
    original = translator.translate

    def counting(texts, **kwargs):
        calls.append(len(texts))
        return original(texts, **kwargs)

    translator.translate = counting
    try:
        aug = BackTranslationAug([translator], Generation("beam", beam_size=3, max_length=20))
        english_texts = ["the dog runs .", "a woman eats an apple .", "the children play in the park ."]
        out = aug.augment(english_texts)
    finally:
        translator.translate = original
    assert calls == [3]  # one batched call for the list, never one per sentence
    assert len(out) == 3 and all(out)
    words = [w for text in out for w in re.findall(r"\w+", text)]
    assert sum(w in german for w in words) / len(words) > 0.9  # German, from the German side's vocabulary
    assert sum(w in english and w not in german for w in words) / len(words) < 0.1
    assert out != english_texts


def test_sampled_backtranslation_is_seeded_and_tagging_marks_every_output(tiny_translator):
    translator, _, _ = tiny_translator
    texts = ["the dog runs .", "a man reads a book ."] * 4
    sample = Generation("sample", top_k=5, temperature=1.2, max_length=20)
    a = BackTranslationAug([translator], sample, seed=1).augment(texts)
    assert a == BackTranslationAug([translator], sample, seed=1).augment(texts)
    assert a != BackTranslationAug([translator], sample, seed=2).augment(texts)
    tagged = BackTranslationAug([translator], Generation("greedy", max_length=20), tag=True).augment(texts)
    assert all(t.startswith(BT_TAG + " ") for t in tagged)
    ids = translator.source.encode(tagged[0])  # the tag is one reserved token, whatever the tokenizer does to words
    assert translator.source.id_to_token(ids[0]) == BT_TAG


def test_round_trip_augmenter_in_the_chain(tiny_translator):
    translator, _, _ = tiny_translator
    cfg = BackTranslationAugmenter(ratio=1, models=[ModelRef(uri="models:/tiny@test")],
                                   generation=GenerationConfig(method="sample", top_k=5, max_length=20))
    texts = ["the dog runs .", "a woman eats an apple .", "the children play in the park ."]
    kept, _ = augment_texts(texts, [cfg], seed=0, translators=lambda name, c: [translator])
    assert kept and all(r.augmenter == "backtranslation" and r.text not in texts for r in kept)


@pytest.mark.slow  # about 30-60 s: run by `make bench` (make test stays under 10 minutes)
def test_rows_do_not_depend_on_the_process(tmp_path):
    """Python's string hashing differs per process; nlpaug's misspelling lists follow it unless sorted."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json, sys; from lowlm.config.augment import NoiseAugmenter, EdaAugmenter; "
              "from lowlm.robustness.augment import augment_texts; "
              f"texts = {TEXTS * 5!r}; "
              "cfgs = [NoiseAugmenter(kind=k, ratio=2) for k in ('spelling', 'synonym', 'keyboard')] + [EdaAugmenter(ratio=2)]; "
              "kept, _ = augment_texts(texts, cfgs, seed=0); print(json.dumps([(r.row, r.text) for r in kept]))")
    outputs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT,
                              timeout=120, check=True)
        outputs.append(json.loads(done.stdout))
    assert outputs[0] == outputs[1] and len(outputs[0]) > 20
