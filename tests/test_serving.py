"""The pyfunc adapter and the bundles it serves: log, register, load from the registry, predict raw strings."""

from __future__ import annotations

import json
import zipfile

import mlflow
import pandas as pd
import torch

import pytest

from lowlm.inference.bundle import BundleError, load_bundle
from lowlm.inference.classifier import TextClassifier
from lowlm.inference.translator import Translator
from lowlm.serving.pyfunc import log_pyfunc


def test_pyfunc_round_trip(trained_sample, tmp_path, tracking_uri):
    clf = trained_sample["classifier"]
    folder = clf.save(tmp_path / "clf")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("adapter-test")
    with mlflow.start_run():
        info = log_pyfunc(folder, input_example=["my card was declined"], registered_model_name="adapter-test")
    model = mlflow.pyfunc.load_model("models:/adapter-test/1")
    texts = ["my card was declined again", "I want my money back for the broken kettle"]
    expected = clf.predict(texts)
    for batch in (texts, pd.Series(texts), pd.DataFrame({"text": texts})):
        out = model.predict(batch)
        assert list(out.columns) == ["label", "score", "probabilities"]
        assert out["label"].tolist() == [e["label"] for e in expected]
        for row, exp in zip(out["probabilities"], expected):
            assert set(row) == set(clf.labels)
            assert abs(sum(row.values()) - 1) < 1e-5
            assert abs(row[exp["label"]] - exp["score"]) < 1e-6
    assert str(model.metadata.signature.inputs) == "[string (required)]"
    # No pickles of ours: the model is logged from code, weights are a plain tensor state dict.
    local = mlflow.artifacts.download_artifacts(info.model_uri)
    names = {p.name for p in __import__("pathlib").Path(local).rglob("*")}
    assert "python_model.pkl" not in names
    assert {"weights.pt", "tokenizer.json", "bundle.json"} <= names
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    meta = json.loads((folder / "bundle.json").read_text())
    assert meta["kind"] == "classifier" and meta["model"]["kind"] == "rnn_attention" and meta["labels"] == clf.labels
    assert zipfile.is_zipfile(folder / "weights.pt")


def test_digest_tracks_weights(trained_sample, tmp_path):
    clf = trained_sample["classifier"]
    loaded = TextClassifier.load(clf.save(tmp_path / "a"))
    assert loaded.digest() == clf.digest()
    with torch.no_grad():
        loaded.model.head.bias.add_(1.0)
    assert loaded.digest() != clf.digest()


def test_bundles_load_by_their_recorded_kind(trained_sample, tmp_path):
    clf = trained_sample["classifier"]
    folder = clf.save(tmp_path / "clf")
    assert type(load_bundle(folder)) is TextClassifier
    with pytest.raises(BundleError, match="a 'classifier' bundle, not a 'translator' one"):
        Translator.load(folder)
    meta = json.loads((folder / "bundle.json").read_text())
    (folder / "bundle.json").write_text(json.dumps({**meta, "kind": "reader"}))
    with pytest.raises(BundleError, match="unknown bundle kind 'reader'"):
        load_bundle(folder)


def test_a_folder_from_before_kinds_were_recorded_says_how_to_get_a_new_one(tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    (old / "model.json").write_text(json.dumps({"config": {"kind": "rnn_attention"}, "labels": ["a", "b"]}))
    with pytest.raises(BundleError, match="before bundles recorded their kind.*train it again"):
        load_bundle(old)
