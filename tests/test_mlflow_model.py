"""The pyfunc adapter: log, register, load from the registry, predict on raw strings."""

from __future__ import annotations

import json
import zipfile

import mlflow
import pandas as pd
import torch

from lowlm.mlflow_model import log_pyfunc
from lowlm.predictor import TextClassifier


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
    assert {"weights.pt", "tokenizer.json", "model.json"} <= names
    state = torch.load(folder / "weights.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert json.loads((folder / "model.json").read_text())["labels"] == clf.labels
    assert zipfile.is_zipfile(folder / "weights.pt")


def test_digest_tracks_weights(trained_sample, tmp_path):
    clf = trained_sample["classifier"]
    loaded = TextClassifier.load(clf.save(tmp_path / "a"))
    assert loaded.digest() == clf.digest()
    with torch.no_grad():
        loaded.model.head.bias.add_(1.0)
    assert loaded.digest() != clf.digest()
