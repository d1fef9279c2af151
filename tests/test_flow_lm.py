"""The language-model pipeline end to end, and a classifier and a seq2seq model that start from the model it registers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from flows.classification import classification
from flows.language_model import language_model
from flows.seq2seq import seq2seq
from lowlm.config import Seq2SeqPipelineConfig, load_pipeline_config
from lowlm.inference.language_model import LanguageModelBundle
from tasks.registered import fetch_language_model
from tasks.register import load_registered
from tests.test_flow import stage_runs


@pytest.fixture(scope="module")
def lm_run(prefect_harness, tmp_path_factory, tracking_uri):
    config = load_pipeline_config("lm-sample", {"work_dir": str(tmp_path_factory.mktemp("lm-work")),
                                                "experiment": "flow-lm", "registry.model_name": "flow-lm",
                                                "train.progress": False})
    state = language_model(config, return_state=True)
    assert state.is_completed(), state.message
    return config, state.result()


def test_the_lm_pipeline_trains_evaluates_and_registers_a_scoring_model(lm_run, tracking_uri):
    config, result = lm_run
    client = MlflowClient(tracking_uri)
    children = client.search_runs([result["experiment_id"]],
                                  filter_string=f"tags.mlflow.parentRunId = '{result['mlflow_run_id']}'")
    stages = {r.data.tags["lowlm.stage"]: r for r in children}
    assert set(stages) == {"ingest", "tokenize", "train", "evaluate", "register"}
    history = client.get_metric_history(stages["train"].info.run_id, "val_perplexity")
    assert len(history) == config.train.epochs and history[-1].value < history[0].value
    vocab = stages["tokenize"].data.metrics["vocab_size"]
    test_ppl = stages["evaluate"].data.metrics["test_perplexity"]
    assert 1 < test_ppl < vocab
    assert result["model"]["alias"] == "champion"
    model = load_registered("models:/flow-lm@champion", tracking_uri=tracking_uri)
    scored = model.predict(pd.DataFrame({"text": ["my card was declined", "declined my was card"]}))
    assert {"perplexity", "log_prob", "tokens", "continuation"} <= set(scored.columns)
    assert scored["perplexity"][0] < scored["perplexity"][1]  # word order matters to a language model
    continued = model.predict(["my card"], params={"max_tokens": 5})["continuation"][0]
    assert 1 <= len(continued.split()) <= 5


def test_a_worse_language_model_does_not_replace_the_champion(lm_run, prefect_harness, tracking_uri):
    """The gate on perplexity: lower wins."""
    config, first = lm_run
    worse = config.model_copy(update={"train": config.train.model_copy(update={"epochs": 1, "lr": 1e-5})})
    state = language_model(worse, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    client = MlflowClient(tracking_uri)
    new = client.get_model_version("flow-lm", result["model"]["version"])
    assert float(new.tags["test_perplexity"]) > float(client.get_model_version("flow-lm", "1").tags["test_perplexity"])
    assert result["model"]["alias"] == "challenger"
    assert str(client.get_model_version_by_alias("flow-lm", "champion").version) == "1"


def test_a_classifier_starts_its_encoder_from_the_registered_language_model(lm_run, prefect_harness, tracking_uri,
                                                                          tmp_path, sample_csv):
    lm_config, _ = lm_run
    config = load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path / "work"), "experiment": "flow-pretrained",
        "registry.model_name": "flow-pretrained", "pretrained.uri": "models:/flow-lm@champion",
        "pretrained.unfreeze": "gradual", "model.embedding_dim": lm_config.model.embedding_dim,
        "model.hidden_dim": lm_config.model.hidden_dim, "model.char_dim": 0, "train.epochs": 12,
        "train.progress": False, "augment.enabled": False, "attack.enabled": False, "attack.generate.enabled": False,
        "fewshot.enabled": False})
    state = classification(config, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    client = MlflowClient(tracking_uri)
    version = client.get_model_version("flow-pretrained", result["model"]["version"])
    lm = fetch_language_model("models:/flow-lm@champion", str(tmp_path / "work"), tracking_uri)
    assert version.tags["pretrained_version"] == lm["version"] and version.tags["pretrained_digest"] == lm["digest"]
    assert result["metrics"]["test_accuracy"] > result["metrics"]["test_majority_baseline"] + 0.2
    # the classifier reads with the LM's tokenizer, and gradual unfreezing trained the embedding last:
    # it moved less than the head that trained every epoch
    clf = load_registered(f"models:/flow-pretrained/{version.version}", tracking_uri=tracking_uri
                          ).unwrap_python_model().bundle
    base = LanguageModelBundle.load(lm["model_dir"])
    assert clf.tokenizer.tokens() == base.tokenizer.tokens()
    moved = (clf.model.embedding.weight - base.model.embedding.weight).norm() / base.model.embedding.weight.norm()
    assert 0 < moved < 0.5
    assert not torch.equal(clf.model.rnn.weight_ih_l0, base.model.rnn.weight_ih_l0)


def test_a_language_model_that_does_not_fit_fails_before_training(lm_run, prefect_harness, tmp_path, sample_csv,
                                                                tracking_uri):
    config = load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path / "work"), "experiment": "flow-misfit",
        "registry.model_name": "flow-misfit", "pretrained.uri": "models:/flow-lm@champion", "model.hidden_dim": 40,
        "fewshot.enabled": False})
    state = classification(config, return_state=True)
    assert state.is_failed()
    with pytest.raises(ValueError, match=r"hidden_dim 64.*hidden_dim 40"):
        state.result()
    assert not MlflowClient(tracking_uri).search_runs(
        [e.experiment_id for e in MlflowClient(tracking_uri).search_experiments() if e.name == "flow-misfit"] or ["0"],
        filter_string="tags.`lowlm.stage` = 'train'")


def test_a_summarizer_starts_its_encoder_from_the_language_model_and_keeps_coverage(lm_run, prefect_harness,
                                                                                   tracking_uri, tmp_path):
    """The seq2seq pipeline with ``pretrained``: the LM's tokenizer on the source side, its weights in the
    encoder, coverage in the decoder; the registered version names the LM version it started from."""
    lm_config, _ = lm_run
    config = load_pipeline_config("translate-sample", {
        "work_dir": str(tmp_path / "work"), "experiment": "flow-s2s-pretrained",
        "registry.model_name": "flow-s2s-pretrained", "pretrained.uri": "models:/flow-lm@champion",
        "model.embedding_dim": lm_config.model.embedding_dim, "model.hidden_dim": lm_config.model.hidden_dim,
        "model.coverage": True, "train.epochs": 3, "train.progress": False, "augment.enabled": False},
        Seq2SeqPipelineConfig)
    assert config.pretrained.unfreeze == "all"  # the seq2seq default: every weight trains
    state = seq2seq(config, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    client = MlflowClient(tracking_uri)
    stages = stage_runs(client, result["mlflow_run_id"])
    assert stages["train"].data.metrics["pretrained_tensors"] == 9  # embedding + both directions' 4 tensors
    assert "test_repeated_trigrams" in stages["evaluate"].data.metrics
    lm = fetch_language_model("models:/flow-lm@champion", str(tmp_path / "work"), tracking_uri)
    assert stages["tokenize"].data.params["tokenizer.from"] == f"models:/flow-lm/{lm['version']}"  # resolved
    version = client.get_model_version("flow-s2s-pretrained", result["model"]["version"])
    assert version.tags["pretrained_version"] == lm["version"] and version.tags["pretrained_digest"] == lm["digest"]
    translator = load_registered(f"models:/flow-s2s-pretrained/{version.version}", tracking_uri=tracking_uri
                                 ).unwrap_python_model().bundle
    assert translator.source.tokens() == LanguageModelBundle.load(lm["model_dir"]).tokenizer.tokens()
    assert translator.model.config.coverage
    assert all(isinstance(t, str) for t in translator.translate(["a table for two please"], beam_size=3))
