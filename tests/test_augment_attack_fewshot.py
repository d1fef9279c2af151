"""nlpaug augmentation, character-noise attacks and few-shot heads, on real models and data."""

from __future__ import annotations

import pytest

from lowlm.attack import char_noise_attack
from lowlm.augment import augment_texts
from lowlm.config import CorpusConfig
from lowlm.corpus import load_corpus
from lowlm.fewshot import fit_head, sample_k_per_class

TEXTS = ["the delivery was quick and the parcel arrived intact",
         "my card keeps getting declined at the supermarket",
         "please send the refund to my original payment method"]


@pytest.mark.parametrize("method", ["random_swap", "random_delete", "synonym", "spelling", "char_keyboard"])
def test_each_augmenter_changes_text_and_keeps_label(method):
    rows = augment_texts(TEXTS, [0, 1, 2], [method], copies=2, seed=3)
    assert rows, method
    for text, label, used in rows:
        assert used == method and text not in TEXTS
        assert label in (0, 1, 2)
    again = augment_texts(TEXTS, [0, 1, 2], [method], copies=2, seed=3)
    assert again == rows  # seeded


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


def test_sample_k_per_class():
    labels = [0] * 10 + [1] * 3 + [2] * 20
    chosen = sample_k_per_class(labels, k=5, seed=2)
    counts = {c: sum(labels[i] == c for i in chosen) for c in (0, 1, 2)}
    assert counts == {0: 5, 1: 3, 2: 5}


def test_fewshot_head_on_second_corpus(trained_sample, fewshot_csv):
    base = trained_sample["classifier"]
    target = load_corpus(CorpusConfig(path=str(fewshot_csv), test_size=0.5))
    train, test = target.splits["train"], target.splits["test"]
    encoder_before = {k: v.clone() for k, v in base.model.state_dict().items() if not k.startswith("head")}
    result = fit_head(base, list(train["text"]), list(train["label"]), list(test["text"]), list(test["label"]),
                      target.labels, k=8, epochs=50)
    assert result.shots == 24
    assert result.classifier.labels == ["negative", "neutral", "positive"]
    probs = result.classifier.predict_proba(list(test["text"]))
    assert probs.shape == (len(test), 3)
    pred = probs.argmax(dim=1).tolist()
    assert result.report["accuracy"] == sum(p == y for p, y in zip(pred, test["label"])) / len(pred)
    # the base model is untouched; the new one shares its encoder weights exactly
    for key, value in encoder_before.items():
        assert (base.model.state_dict()[key] == value).all()
        assert (result.classifier.model.state_dict()[key] == value).all()
    assert base.labels == trained_sample["corpus"].labels
