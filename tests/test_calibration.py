"""Calibration and out of scope: the math on worked examples, temperature scaling on real models, a corpus
with out-of-scope labels, calibrated bundles (and old ones without calibration), the train and evaluate tasks."""

from __future__ import annotations

import json
import math

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from lowlm.config import BagOfNgramsConfig, CorpusConfig, PipelineConfig, TrainConfig
from lowlm.config.stages import CalibrationConfig
from lowlm.data.corpus import encode_scoped, load_corpus
from lowlm.data.textfiles import CorpusError
from lowlm.evaluation.calibration import calibrate, choose_threshold, expected_calibration_error, fit_temperature
from lowlm.inference.bundle import BundleError
from lowlm.inference.classifier import OUT_OF_SCOPE, TextClassifier
from lowlm.text.tokenizer import Tokenizer

# ------------------------------------------------------------------------------------------ the math


def test_ece_worked_example():
    # bin (0.9, 0.9667]: two rows at 0.95, one right -> |0.5 - 0.95|; bin (0.6, 0.667]: two at 0.65, both right
    probs = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.35, 0.65], [0.35, 0.65]])
    labels = torch.tensor([0, 1, 1, 1])
    assert expected_calibration_error(probs, labels) == pytest.approx((2 * 0.45 + 2 * 0.35) / 4)
    assert expected_calibration_error(probs, labels, bins=1) == pytest.approx(abs(0.75 - 0.8))
    perfect = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(perfect, torch.tensor([0, 1])) == 0.0
    assert expected_calibration_error(torch.empty(0, 2), torch.empty(0, dtype=torch.long)) == 0.0


def test_fit_temperature_matches_the_closed_form():
    # two classes, logit gap g on every row, a share p of rows right: NLL is least where sigmoid(g / T) = p
    for gap, right in ((4.0, 8), (1.0, 9), (10.0, 6)):
        logits = torch.tensor([[gap, 0.0]] * 10)
        labels = torch.tensor([0] * right + [1] * (10 - right))
        p = right / 10
        assert fit_temperature(logits, labels) == pytest.approx(gap / math.log(p / (1 - p)), rel=1e-4)
    logits = torch.randn(200, 4, generator=torch.Generator().manual_seed(0)) * 3
    # labels drawn from softmax(logits / 2): the best temperature is near 2
    labels = torch.multinomial(torch.softmax(logits / 2, 1), 1, generator=torch.Generator().manual_seed(1))[:, 0]
    t = fit_temperature(logits, labels)
    assert t == fit_temperature(logits, labels)  # deterministic
    nll = lambda t: torch.nn.functional.cross_entropy(logits.double() / t, labels).item()
    assert 1.3 < t < 3 and nll(t) <= min(nll(t * 0.99), nll(t * 1.01), nll(1.0))


def test_choose_threshold_worked_example():
    top = [0.95, 0.9, 0.6, 0.5, 0.7, 0.3, 0.2]
    in_scope = [True, True, True, True, False, False, False]
    correct = [True, True, True, False, False, False, False]
    # in-scope accepted and right / 4, OOS rejected / 3: 0.4 -> 3/4, 2/3 (0.708); 0.65 -> 2/4, 2/3 (0.583);
    # 0.75 and 0.8 -> 2/4, 3/3 (0.75); 0.92 -> 1/4, 3/3 (0.625)
    threshold, accuracy, recall = choose_threshold(top, in_scope, correct, [0.8, 0.4, 0.92, 0.65, 0.75])
    assert (threshold, accuracy, recall) == (0.75, 0.5, 1.0)  # a tie goes to the smaller threshold
    # no out-of-scope rows: in-scope accuracy alone decides, so the lowest threshold (rejects the least)
    assert choose_threshold(top[:4], in_scope[:4], correct[:4], [0.55, 0.4, 0.92]) == (0.4, 0.75, None)
    with pytest.raises(ValueError, match="at least one candidate"):
        choose_threshold(top, in_scope, correct, [])


def test_calibrate_fits_on_in_scope_rows_and_thresholds_with_out_of_scope_ones():
    logits = torch.tensor([[6.0, 0.0], [6.0, 0.0], [0.0, 6.0], [6.0, 0.0], [0.2, 0.0], [0.0, 0.1]])
    labels = [0, 0, 1, 1, -1, -1]
    fitted = calibrate(logits, labels, candidates=[0.3, 0.6, 0.9])
    assert fitted.temperature == pytest.approx(fit_temperature(logits[:4], torch.tensor(labels[:4])))
    assert fitted.metrics["val_ece_after"] < fitted.metrics["val_ece_before"]
    assert fitted.threshold == 0.6 and fitted.metrics["val_oos_recall"] == 1.0  # reject forced by the OOS rows
    assert fitted.metrics["val_in_scope_accuracy"] == 0.75
    plain = calibrate(logits[:4], labels[:4], temperature=False)
    assert plain.temperature == 1.0 and plain.threshold is None and "threshold" not in plain.metrics


# ---------------------------------------------------------------------------- temperature on models


def test_temperature_repairs_an_overconfident_model(trained_sample):
    """The sample classifier made 20 times surer (as a bag of n-grams is): ECE falls once T is fitted."""
    corpus, clf = trained_sample["corpus"], trained_sample["classifier"]
    val, test = corpus.splits["validation"], corpus.splits["test"]
    logits = clf.logits(val["text"]) * 20
    labels = torch.tensor(val["label"])
    t = fit_temperature(logits, labels)
    test_logits, test_labels = clf.logits(test["text"]) * 20, torch.tensor(test["label"])
    val_before = expected_calibration_error(torch.softmax(logits, 1), labels)
    val_after = expected_calibration_error(torch.softmax(logits / t, 1), labels)
    before = expected_calibration_error(torch.softmax(test_logits, 1), test_labels)
    after = expected_calibration_error(torch.softmax(test_logits / t, 1), test_labels)
    print(f"overconfident sample: T {t:.2f}, validation ECE {val_before:.4f} -> {val_after:.4f}, "
          f"test ECE {before:.4f} -> {after:.4f}")
    nll = torch.nn.functional.cross_entropy
    assert t > 5 and after < before * 0.75  # (29 validation rows in 15 bins: its own ECE is too noisy to assert)
    assert nll(test_logits / t, test_labels) < nll(test_logits, test_labels) / 2
    assert torch.equal((test_logits / t).argmax(1), test_logits.argmax(1))  # the predicted class never changes


def test_calibrated_bundle_round_trip_and_old_bundles_load(trained_sample, tmp_path):
    clf = trained_sample["classifier"]
    old = clf.save(tmp_path / "old")  # as every bundle written before calibration: no temperature, no threshold
    meta = json.loads((old / "bundle.json").read_text())
    assert "temperature" not in meta and "threshold" not in meta
    loaded = TextClassifier.load(old)
    assert loaded.temperature == 1.0 and loaded.threshold is None and loaded.digest() == clf.digest()
    texts = ["my card was declined again", "zzz qqq"]
    calibrated = TextClassifier(clf.model, clf.tokenizer, clf.labels, temperature=2.5, threshold=0.99)
    back = TextClassifier.load(calibrated.save(tmp_path / "calibrated"))
    assert (back.temperature, back.threshold) == (2.5, 0.99) and back.digest() == calibrated.digest() != clf.digest()
    assert torch.allclose(back.predict_proba(texts), torch.softmax(clf.logits(texts) / 2.5, 1))
    assert torch.equal(back.predict_proba(texts).argmax(1), clf.predict_proba(texts).argmax(1))
    rows = back.predict(texts)
    assert [r["label"] for r in rows] == [OUT_OF_SCOPE, OUT_OF_SCOPE]  # nothing is 99% sure at T = 2.5
    assert all(set(r["probabilities"]) == set(clf.labels) and r["score"] == max(r["probabilities"].values())
               for r in rows)
    assert back.serve(texts, {})["label"] == [OUT_OF_SCOPE, OUT_OF_SCOPE]
    with pytest.raises(BundleError, match="temperature must be above 0"):
        TextClassifier(clf.model, clf.tokenizer, clf.labels, temperature=0.0)


# ----------------------------------------------------------------------------------- out-of-scope data


def intents_frame() -> pd.DataFrame:
    words = {"pay": "card payment declined charge", "lost": "lost stolen missing wallet",
             "greet": "hello hi hey morning", "weather": "rain sunny cloudy forecast", "music": "song play album tune"}
    return pd.DataFrame([{"text": f"{w.split()[i % 4]} {w.split()[(i + 1) % 4]} {i}", "label": label}
                         for label, w in words.items() for i in range(20)])


def test_out_of_scope_labels_leave_train_and_mark_validation_and_test():
    corpus = load_corpus(frame=intents_frame(), path="intents", out_of_scope_labels=["weather", "music"])
    assert corpus.labels == ["greet", "lost", "pay"] and corpus.names == [*corpus.labels, OUT_OF_SCOPE]
    frames = {s: corpus.frame(s) for s in corpus.splits}
    assert set(frames["train"]["label"]) == set(corpus.labels)  # never trained on
    for split in ("validation", "test"):
        assert (frames[split]["label"] == OUT_OF_SCOPE).sum() >= 2, split
        assert set(frames[split]["label"]) <= {*corpus.labels, OUT_OF_SCOPE}
    total = sum(len(f) for f in frames.values()) + corpus.dropped["out_of_scope"]
    assert total == 100 and corpus.dropped["out_of_scope"] == 40 - sum(
        (f["label"] == OUT_OF_SCOPE).sum() for f in frames.values())
    oos_test = (frames["test"]["label"] == OUT_OF_SCOPE).sum()
    assert encode_scoped(frames["test"]["label"], corpus.labels).count(-1) == oos_test


def test_corpora_without_out_of_scope_labels_are_unchanged(sample_csv):
    corpus = load_corpus(CorpusConfig(path=str(sample_csv)))
    assert corpus.names == corpus.labels and not corpus.out_of_scope and "out_of_scope" not in corpus.dropped
    # the digests of the shipped sample as lowlm gave them before out-of-scope labels existed
    assert corpus.digests == {"train": "528b327fd004f76e", "validation": "f19f1d6dddffd708", "test": "3e773d99a2f8c7d1"}
    assert corpus.content_digest() == "36213475ce536842"


def test_out_of_scope_mistakes_are_named(tmp_path):
    with pytest.raises(CorpusError, match=r"out_of_scope_labels \['wether'\] appear in no split"):
        load_corpus(frame=intents_frame(), path="intents", out_of_scope_labels=["wether"])
    frame = intents_frame().replace({"label": {"music": OUT_OF_SCOPE}})
    with pytest.raises(CorpusError, match="a label is named 'out_of_scope'"):
        load_corpus(frame=frame, path="intents", out_of_scope_labels=["weather"])
    # a validation file with an out-of-scope intent is not "a label never seen in train"
    frame = intents_frame()
    frame[frame["label"] != "weather"].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[::3].to_csv(tmp_path / "dev.csv", index=False)
    frame.iloc[1::3].to_csv(tmp_path / "test.csv", index=False)
    with pytest.raises(CorpusError, match="never in train"):
        load_corpus(CorpusConfig(path=str(tmp_path)))
    corpus = load_corpus(CorpusConfig(path=str(tmp_path), out_of_scope_labels=["weather"]))
    assert (corpus.frame("validation")["label"] == OUT_OF_SCOPE).sum() == 7 and "weather" not in corpus.labels


# ------------------------------------------------------------------------------- the tasks, for real


@pytest.fixture(scope="module")
def oos_stages(tmp_path_factory, sample_csv, tracking_uri):
    """The train and evaluate tasks (their functions, no Prefect) on the sample corpus with one intent out of scope,
    a bag of n-grams (the model that says 1e-16)."""
    from tasks._stage import pipeline_run
    from tasks.evaluate import evaluate
    from tasks.train import train

    work = tmp_path_factory.mktemp("oos")
    cfg = CorpusConfig(path=str(sample_csv), out_of_scope_labels=["transfer"])
    data = load_corpus(cfg)
    paths = data.save(work / "splits")
    corpus = {"splits": paths, "digests": data.digests, "labels": data.labels, "sources": data.sources}
    tok = Tokenizer.train(data.splits["train"]["text"])
    tok.save(work / "tokenizer.json")
    config = PipelineConfig(corpus=cfg, experiment="calibration-test", name="calibration-test")
    mlflow.set_tracking_uri(tracking_uri)
    with pipeline_run("calibration-test", config) as tracking:
        trained = train.fn(corpus, {"train": paths["train"], "digest": data.digests["train"]},
                           {"path": str(work / "tokenizer.json"), "digest": "t"},
                           BagOfNgramsConfig(embedding_dim=32, buckets=1 << 14),
                           TrainConfig(epochs=5, lr=0.05, batch_size=32, warmup_ratio=0, weight_decay=0, grad_clip=0,
                                       progress=False), str(work), tracking, calibration=CalibrationConfig())
        evaluation = evaluate.fn(corpus, trained, tracking)
    client = MlflowClient(tracking_uri)
    runs = client.search_runs([tracking.experiment_id],
                              filter_string=f"tags.mlflow.parentRunId = '{tracking.parent_run_id}'")
    metrics = {r.data.tags["lowlm.stage"]: r.data.metrics for r in runs}
    return {"data": data, "trained": trained, "evaluation": evaluation, "metrics": metrics}


def test_train_fits_temperature_and_threshold_on_validation(oos_stages):
    m = oos_stages["metrics"]["train"]
    print("train:", {k: round(v, 4) for k, v in m.items() if k.startswith(("val_", "temperature", "threshold"))})
    assert m["val_ece_after"] < m["val_ece_before"] and m["temperature"] != 1.0
    assert 0 < m["threshold"] < 1 and m["val_oos_recall"] > 0 and m["val_in_scope_accuracy"] > 0.5
    clf = TextClassifier.load(oos_stages["trained"]["model_dir"])
    assert clf.temperature == pytest.approx(m["temperature"]) and clf.threshold == pytest.approx(m["threshold"])
    assert OUT_OF_SCOPE not in clf.labels and "transfer" not in clf.labels
    test = oos_stages["data"].frame("test")
    rows = clf.predict(test["text"].tolist() + ["zebra quantum banana"])
    assert all((r["label"] == OUT_OF_SCOPE) == (r["score"] < clf.threshold) for r in rows)
    assert rows[-1]["label"] == OUT_OF_SCOPE  # words never seen: not sure of any trained intent


def test_evaluate_reports_in_scope_accuracy_and_oos_recall(oos_stages):
    m = oos_stages["evaluation"]["metrics"]
    print("evaluate:", {k: round(v, 4) for k, v in m.items()})
    assert oos_stages["metrics"]["evaluate"]["test_oos_recall"] == m["test_oos_recall"] > 0
    clf = TextClassifier.load(oos_stages["trained"]["model_dir"])
    test = oos_stages["data"].frame("test")
    rows = clf.predict(test["text"].tolist())
    in_scope = test["label"] != OUT_OF_SCOPE
    right = [r["label"] == label for r, label in zip(rows, test["label"])]
    assert m["test_accuracy"] == pytest.approx(sum(right) / len(test))  # a rejected out-of-scope row is right
    assert m["test_in_scope_accuracy"] == pytest.approx(sum(r for r, s in zip(right, in_scope) if s) / in_scope.sum())
    assert m["test_oos_recall"] == pytest.approx(sum(r for r, s in zip(right, in_scope) if not s) / (~in_scope).sum())
    probs = clf.predict_proba(test["text"][in_scope].tolist())
    assert m["test_ece"] == pytest.approx(expected_calibration_error(
        probs, torch.tensor([clf.labels.index(x) for x in test["label"][in_scope]])))
