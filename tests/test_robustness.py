"""nlpaug augmentation and character-noise attacks, on real models and data."""

from __future__ import annotations

import pytest

import pandas as pd

from lowlm.robustness.attack import char_noise_attack
from lowlm.robustness.augment import augment_rows, augment_texts

TEXTS = ["the delivery was quick and the parcel arrived intact",
         "my card keeps getting declined at the supermarket",
         "please send the refund to my original payment method"]


def _overlap(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / max(1, len(x | y))


@pytest.mark.parametrize("method", ["random_swap", "random_delete", "synonym", "spelling", "char_keyboard"])
def test_each_augmenter_changes_text_and_keeps_its_own_rows_label(method):
    frame = pd.DataFrame({"text": TEXTS, "label": ["delivery", "card", "refund"], "id": [10, 11, 12]})
    rows = augment_rows(frame, "text", [method], copies=2, seed=3)
    assert len(rows), method
    for row in rows.itertuples():
        source = frame.iloc[row.source_row]
        assert row.method == method and row.text not in TEXTS
        # its own source's label (and every other column), and a text made from that source
        assert (row.label, row.id) == (source["label"], source["id"])
        assert _overlap(row.text, source["text"]) == max(_overlap(row.text, t) for t in TEXTS)
    again = augment_rows(frame, "text", [method], copies=2, seed=3)
    pd.testing.assert_frame_equal(again, rows)  # seeded


def test_synonyms_come_from_wordnet():
    rows = augment_texts(["the film was good"] * 5, [0] * 5, ["synonym"], seed=1)
    changed = {r[0] for r in rows}
    assert changed and all(len(t.split()) >= 4 for t in changed)


def test_fraction_limits_sources():
    texts = [f"sentence number {i} is here" for i in range(200)]
    rows = augment_texts(texts, [0] * 200, ["random_swap"], fraction=0.25, seed=0)
    assert 25 < len(rows) < 75


def test_attack_examples_really_flip_the_model(trained_sample):
    clf, corpus = trained_sample["classifier"], trained_sample["corpus"]
    test = corpus.splits["test"]
    result = char_noise_attack(clf, list(test["text"]), list(test["label"]), ["char_swap", "char_keyboard"],
                               max_examples=40, tries=3, seed=5)
    assert result.attacked == 40
    assert 0 < result.succeeded <= 40 and result.success_rate == result.succeeded / 40
    predicted = clf.predict([e["adversarial"] for e in result.examples])
    for example, pred in zip(result.examples, predicted):
        assert pred["label"] == example["predicted"] != example["label"]
        assert example["adversarial"] != example["original"]
