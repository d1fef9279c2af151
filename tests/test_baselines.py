"""Honest baselines: the accuracy of always predicting the most frequent TRAINING label, one rule for
every stage (metrics, few-shot, the evaluate stage), and the unknown-token warning of the tokenize stage."""

from __future__ import annotations

from collections import Counter

import mlflow
import pandas as pd
import pytest

from lowlm.config import CorpusConfig, TokenizerConfig
from lowlm.data.corpus import load_corpus
from lowlm.evaluation.metrics import majority_baseline
from lowlm.training.fewshot import fit_head, sample_k_per_class


def test_majority_baseline_by_hand():
    # train's commonest label is 2; it is 3 of the 4 test labels
    assert majority_baseline([2, 2, 1], [2, 1, 2, 2]) == 0.75
    # the test split's own majority (1) does not matter: the baseline predicts train's (0)
    assert majority_baseline([0, 0, 0, 1], [1, 1, 1, 0]) == 0.25
    # a tie goes to the smallest label, whatever the order the labels came in
    assert majority_baseline([3, 1, 3, 1], [1, 3, 3]) == pytest.approx(1 / 3)
    assert majority_baseline([1, 3, 1, 3], [1, 3, 3]) == pytest.approx(1 / 3)
    # label names work as well as indices; an empty test split scores 0, an empty train split is an error
    assert majority_baseline(["b", "a", "b"], ["a", "b", "b", "b"]) == 0.75
    assert majority_baseline([0, 1, 1], []) == 0.0
    with pytest.raises(ValueError, match="at least one training label"):
        majority_baseline([], [0, 1])


def test_fewshot_baseline_is_the_majority_of_the_training_split_not_of_the_balanced_sample(trained_sample,
                                                                                              fewshot_csv):
    """The k-shot sample is balanced, so its own 'majority' is a tie: the share of label 0 in the test texts.
    The baseline must follow the training split's label counts instead."""
    target = load_corpus(CorpusConfig(path=str(fewshot_csv), test_size=0.5))
    assert target.labels == ["negative", "neutral", "positive"]
    train, test = target.splits["train"][:], target.splits["test"][:]
    # training rows: few negatives (0), all neutrals (1), half the positives (2) -> neutral is the majority
    seen = Counter()
    keep = []
    for i, y in enumerate(train["label"]):
        seen[y] += 1
        if y == 1 or (y == 0 and seen[y] <= 4) or (y == 2 and seen[y] % 2):
            keep.append(i)
    texts, labels = [train["text"][i] for i in keep], [train["label"][i] for i in keep]
    counts = Counter(labels)
    assert counts[1] > counts[2] > counts[0] >= 4
    assert Counter(labels[i] for i in sample_k_per_class(labels, 4)) == {0: 4, 1: 4, 2: 4}  # balanced shots
    # evaluation texts where negatives are rare, so 'share of label 0' and 'share of neutral' differ
    rows = [i for i, y in enumerate(test["label"]) if y != 0 or i % 4 == 0]
    eval_texts, eval_labels = [test["text"][i] for i in rows], [test["label"][i] for i in rows]
    neutral_share = eval_labels.count(1) / len(eval_labels)
    assert neutral_share != eval_labels.count(0) / len(eval_labels)
    result = fit_head(trained_sample["classifier"], texts, labels, eval_texts, eval_labels, target.labels, k=4,
                      epochs=5)
    assert result.shots == 12
    assert result.majority_baseline == pytest.approx(neutral_share)


@pytest.fixture()
def tracking():
    """A parent MLflow run in the session's temporary store, as a flow run would open."""
    from tasks._stage import Tracking, ensure_experiment, tracking_uri

    experiment_id = ensure_experiment("test-baselines")
    with mlflow.start_run(experiment_id=experiment_id, run_name="baselines") as parent:
        yield Tracking(tracking_uri(), experiment_id, parent.info.run_id)


def _stage_runs(tracking) -> dict:
    runs = mlflow.search_runs([tracking.experiment_id], output_format="list",
                              filter_string=f"tags.mlflow.parentRunId = '{tracking.parent_run_id}'")
    return {run.data.tags["lowlm.stage"]: run for run in runs}


def test_evaluate_stage_logs_the_majority_baseline_beside_the_accuracy(trained_sample, sample_csv, tracking, tmp_path):
    from tasks.evaluate import evaluate
    from tasks.ingest import ingest

    corpus = ingest.fn(CorpusConfig(path=str(sample_csv)), str(tmp_path / "work"), tracking)
    assert corpus["labels"] == trained_sample["classifier"].labels
    model_dir = trained_sample["classifier"].save(tmp_path / "classifier")
    out = evaluate.fn(corpus, {"model_dir": str(model_dir)}, tracking)
    # by hand from the saved splits: the commonest training label name, its share of the test rows
    train = pd.read_parquet(corpus["splits"]["train"])["label"].tolist()
    test = pd.read_parquet(corpus["splits"]["test"])["label"].tolist()
    top = max(Counter(train).values())
    majority = min((name for name, n in Counter(train).items() if n == top), key=corpus["labels"].index)
    expected = test.count(majority) / len(test)
    logged = _stage_runs(tracking)["evaluate"].data.metrics
    assert logged["test_majority_baseline"] == pytest.approx(expected)
    assert out["metrics"]["test_majority_baseline"] == pytest.approx(expected)
    assert "test_accuracy" in logged and "majority_baseline_accuracy" not in logged


def test_tokenize_stage_warns_when_validation_text_is_mostly_unknown(tracking, tmp_path):
    """Word-level on Chinese: each clause is one 'word', so nearly every validation token is unknown."""
    from tasks.ingest import ingest
    from tasks.tokenize import tokenize

    chars = "我你他她们爱好很天气今明去学校公园吃饭喝茶看书写字大小多少"
    rows = [{"text": "".join(chars[(i * 7 + j * 3) % len(chars)] for j in range(4 + i % 5)), "label": f"l{i % 2}"}
            for i in range(80)]
    path = tmp_path / "zh.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    corpus = ingest.fn(CorpusConfig(path=str(path)), str(tmp_path / "work"), tracking)
    tokenize.fn(corpus, TokenizerConfig(kind="word"), str(tmp_path / "work"), tracking)
    tokenize.fn(corpus, TokenizerConfig(kind="char"), str(tmp_path / "work"), tracking)
    runs = mlflow.search_runs([tracking.experiment_id], output_format="list", order_by=["attributes.start_time ASC"],
                              filter_string=f"tags.mlflow.parentRunId = '{tracking.parent_run_id}' "
                                            "and tags.`lowlm.stage` = 'tokenize'")
    word, char = (run.data for run in runs)
    assert word.params["tokenizer.kind"] == "word" and char.params["tokenizer.kind"] == "char"
    assert word.metrics["validation_unk_rate"] > 0.5
    rate = f"{word.metrics['validation_unk_rate']:.1%}"
    assert word.tags["warning.unk_rate"] == (
        f"{rate} of validation tokens are unknown to the word tokenizer; set tokenizer.kind: char (or bpe) "
        "for text without spaces (Chinese, Japanese) or with many rare words")
    # every character of the validation text occurs in training: nothing unknown, no warning
    assert char.metrics["validation_unk_rate"] == 0.0
    assert "warning.unk_rate" not in char.tags
