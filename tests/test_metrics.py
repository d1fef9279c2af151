"""Metrics against values worked out by hand."""

from __future__ import annotations

import pytest

from lowlm.evaluation.metrics import classification_report, confusion_matrix, macro_f1, majority_baseline


def test_confusion_matrix_rows_are_truth():
    assert confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], 3).tolist() == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]


def test_report_by_hand():
    # class a: tp1 fp0 fn0; b: tp1 fp0 fn1 -> p1 r.5 f.667; c: tp1 fp1 fn0 -> p.5 r1 f.667
    r = classification_report([0, 1, 1, 2], [0, 1, 2, 2], ["a", "b", "c"])
    assert r["accuracy"] == 0.75
    assert r["per_class"]["b"] == pytest.approx({"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "support": 2})
    assert r["per_class"]["c"]["precision"] == 0.5
    assert r["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_macro_f1_ignores_absent_classes_and_handles_no_predictions():
    assert macro_f1([0, 0], [0, 0], 5) == 1.0
    assert macro_f1([0, 1], [1, 1], 2) == pytest.approx((0 + 2 / 3) / 2)


def test_majority_baseline():
    assert majority_baseline([2, 2, 1], [2, 1, 2, 2]) == 0.75


def test_bleu_and_chrf_on_known_strings():
    from lowlm.evaluation.metrics import bleu, chrf

    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["a dog"], ["the cat sat on the mat"]) == pytest.approx(0.0)
    # by hand: n-gram precisions 5/6, 3/5, 2/4, 1/3; equal lengths so no brevity penalty
    partial = bleu(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert partial == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-3)
    assert chrf(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    # Chinese has no spaces: the zh tokenizer splits characters, the default does not
    assert bleu(["我爱你们"], ["我爱你们"], tokenize="zh") == pytest.approx(100.0)
    assert bleu(["我爱他们"], ["我爱你们"], tokenize="zh") > bleu(["我爱他们"], ["我爱你们"])
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        bleu(["a", "b"], ["a"])


def test_rouge_on_known_strings():
    from lowlm.evaluation.metrics import rouge

    scores = rouge(["police killed the gunman"], ["police kill the gunman"])
    assert scores["rouge1"] == pytest.approx(100.0)  # stemming: killed ~ kill
    assert scores["rouge2"] == pytest.approx(100.0)
    half = rouge(["the cat"], ["the cat sat down"])
    assert half["rouge1"] == pytest.approx(100 * 2 * 1.0 * 0.5 / 1.5)  # P=1, R=0.5
