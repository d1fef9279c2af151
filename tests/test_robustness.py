"""Character-noise attacks, on real models and data (augmentation: test_augment.py)."""

from __future__ import annotations

from lowlm.robustness.attack import char_noise_attack


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
