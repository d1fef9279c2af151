"""The sweep flow: Optuna trials of a preset as nested MLflow runs, the study stored beside the MLflow
store, the best trial's model registered through the gate, pruning on the per-epoch validation metric,
a rerun that continues the study, and a space naming an unknown key refused before any work."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from flows.sweep import sweep
from lowlm.config import load_pipeline_config
from lowlm.config.sweep import (Choice, Range, SweepConfig, SweepSpaceError, baseline_params, check_space, study_name,
                                study_storage, trial_config)
from lowlm.data.corpus import load_corpus
from lowlm.models.kinds import build_model
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.objectives import train_classifier
from lowlm.training.trainer import seed_everything
from tasks.sweep import Pruning, StudyUnavailable, open_study

SPACE = {"train.lr": Range(low=0.02, high=0.5, log=True), "train.epochs": Range(low=3, high=6, type="int"),
         "model.embedding_dim": Choice(choices=[16, 32])}


def settings(**changes) -> SweepConfig:
    return SweepConfig(**{"trials": 5, "space": SPACE, "workers": 2, "startup_trials": 3, "pruner_startup": 2,
                          **changes})


@pytest.fixture(scope="module")
def config(tmp_path_factory, sample_csv):
    return load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path_factory.mktemp("work")), "name": "sweep-test",
        "experiment": "sweep-test", "registry.model_name": "sweep-test", "model.kind": "bag_of_ngrams",
        "fewshot.enabled": False, "augment.enabled": False, "attack.generate.enabled": False,
        "attack.max_examples": 20, "train.progress": False, "train.lr": 0.05, "train.epochs": 4})


@pytest.fixture(scope="module")
def first(prefect_harness, config):
    state = sweep(config, settings(), return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def children(client: MlflowClient, parent_id: str) -> dict:
    parent = client.get_run(parent_id)
    runs = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return {r.info.run_name: r for r in runs}


def test_each_trial_is_a_nested_run_and_the_study_is_stored_beside_mlflow(first, config, tracking_uri):
    client = MlflowClient(tracking_uri)
    runs = children(client, first["mlflow_run_id"])
    trials = {name: run for name, run in runs.items() if name.startswith("trial-")}
    storage = study_storage(settings(), tracking_uri)
    assert storage == f"sqlite:///{Path(tracking_uri[len('sqlite:///'):]).parent / 'optuna.db'}"
    study = optuna.load_study(study_name=first["sweep"]["study"], storage=storage)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 5 and first["sweep"]["ran"] == 5
    assert set(trials) == {f"trial-{t.number:03d}" for t in study.trials}
    baseline = study.trials[0].params  # the preset's own values inside the space; the rest drawn
    assert baseline["train.lr"] == config.train.lr and baseline["train.epochs"] == config.train.epochs
    assert baseline_params(config, SPACE) == {"train.lr": config.train.lr, "train.epochs": config.train.epochs}
    for t in study.trials:
        run = trials[f"trial-{t.number:03d}"]
        assert run.data.tags["sweep.state"] == t.state.name.lower()
        assert run.data.tags["sweep.study"] == study.study_name
        assert float(run.data.params["train.lr"]) == pytest.approx(t.params["train.lr"])
        assert int(run.data.params["model.embedding_dim"]) == t.params["model.embedding_dim"]
        curve = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert 1 <= len(curve) <= t.params["train.epochs"]  # one point per epoch it ran
        assert [m.value for m in curve] == [t.intermediate_values[m.step] for m in curve]  # reported to Optuna
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.value == pytest.approx(max(m.value for m in curve))
        else:  # pruned after the warm-up epoch, where its curve ends
            assert t.state == optuna.trial.TrialState.PRUNED and t.user_attrs["pruned_at"] == len(curve) >= 2
            assert run.data.metrics["pruned_at_epoch"] == len(curve)


def test_the_best_trial_is_registered_with_its_settings(first, config, tracking_uri):
    client = MlflowClient(tracking_uri)
    study = optuna.load_study(study_name=first["sweep"]["study"], storage=study_storage(settings(), tracking_uri))
    best = study.best_trial
    assert first["sweep"]["best_trial"] == best.number and first["metrics"]["best_val"] == best.value
    version = client.get_model_version("sweep-test", first["model"]["version"])
    assert version.tags["config_hash"] == trial_config(config, best.params).digest()
    assert version.tags["model_digest"] == best.user_attrs["trained"]["digest"]
    assert client.get_model_version_by_alias("sweep-test", "champion").version == version.version
    parent = client.get_run(first["mlflow_run_id"])
    assert parent.data.tags["sweep.best_run_id"] == best.user_attrs["run_id"]
    assert {k: parent.data.params[f"best.{k}"] for k in best.params} == {k: str(v) for k, v in best.params.items()}
    assert parent.data.metrics["trials_complete"] + parent.data.metrics["trials_pruned"] == 5
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/trials.json", "sweep/parallel_coordinates.png", "sweep/space.json"} <= artifacts
    assert 0 < first["metrics"]["test_accuracy"] <= 1


def test_a_rerun_continues_the_stored_study(first, config, tracking_uri):
    storage = study_storage(settings(), tracking_uri)
    left = optuna.load_study(study_name=first["sweep"]["study"], storage=storage).ask()  # as a killed run leaves it
    state = sweep(config, settings(trials=7), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result["sweep"]["study"] == first["sweep"]["study"] and result["sweep"]["ran"] == 2
    study = optuna.load_study(study_name=result["sweep"]["study"], storage=storage)
    assert study.trials[left.number].state == optuna.trial.TrialState.FAIL  # marked when the rerun started
    assert sum(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
               for t in study.trials) == 7
    again = sweep(config, settings(trials=7), return_state=True).result()  # nothing left to run
    assert again["sweep"]["ran"] == 0 and again["sweep"]["best_trial"] == study.best_trial.number


def test_the_median_pruner_stops_a_trial_behind_the_finished_ones(tmp_path, sample_csv):
    study = open_study(f"sqlite:///{tmp_path / 'optuna.db'}", "prune", seed=1, pruner_startup=2, warmup_epochs=1,
                       create=True)
    for _ in range(2):  # two finished trials that were near perfect at every epoch
        t = study.ask()
        for epoch in range(1, 9):
            t.report(0.99, epoch)
        study.tell(t, 0.99)
    corpus = load_corpus(load_pipeline_config("sample", {"corpus.path": str(sample_csv)}).corpus)
    tok = Tokenizer.train(corpus.splits["train"]["text"])
    train = Batches(tok.encode_batch(corpus.splits["train"]["text"]), corpus.splits["train"]["label"], batch_size=16)
    val = Batches(tok.encode_batch(corpus.splits["validation"]["text"]), corpus.splits["validation"]["label"],
                  batch_size=64)
    seed_everything(13)
    config = load_pipeline_config("sample", {"corpus.path": str(sample_csv), "model.kind": "bag_of_ngrams",
                                             "train.epochs": 8, "train.lr": 0.001, "train.progress": False})
    net = build_model(config.model, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    pruning = Pruning(study.ask(), "accuracy")
    result = train_classifier(net, train, val, len(corpus.labels), config.train, callbacks=[pruning])
    assert pruning.pruned_at == 2  # the warm-up epoch runs; the next one is judged and is far behind
    assert len(result.history) == 2 and result.stopped_early


def test_a_space_key_the_preset_lacks_is_a_config_error_naming_it(config, tmp_path):
    with pytest.raises(SweepSpaceError, match=r"'model.hidden_dim'.*bag_of_ngrams.*embedding_dim"):
        check_space(config, {"model.hidden_dim": Choice(choices=[64, 128])})
    with pytest.raises(SweepSpaceError, match=r"'train.lr_max'"):
        check_space(config, {"train.lr_max": Range(low=0.1, high=1)})
    with pytest.raises(SweepSpaceError, match=r"'model.dropout'.*1\.5"):  # a bound outside what the field takes
        check_space(config, {"model.dropout": Range(low=0.0, high=1.5)})
    space = tmp_path / "space.yaml"
    space.write_text("space:\n  model.hidden_size: {choices: [64, 128]}\n")
    result = CliRunner().invoke(app, ["sweep", "sample", "--space", str(space), "--set", "model.kind=bag_of_ngrams"])
    assert result.exit_code == 2 and "'model.hidden_size'" in result.output and "embedding_dim" in result.output
    space.write_text("space:\n  corpus.path: {choices: [a.csv]}\n")
    result = CliRunner().invoke(app, ["sweep", "sample", "--space", str(space)])
    assert result.exit_code == 2 and "'corpus.path'" in result.output


def test_the_study_is_named_by_preset_and_space_and_an_unreachable_database_is_named(config):
    assert study_name(settings(), config, SPACE) == study_name(settings(workers=1), config, SPACE)  # how, not what
    other = {**SPACE, "train.lr": Range(low=0.01, high=0.5, log=True)}
    assert study_name(settings(), config, other) != study_name(settings(), config, SPACE)
    with pytest.raises(StudyUnavailable, match=r"postgresql://lowlm:\*\*\*@127\.0\.0\.1:9/"):
        open_study("postgresql://lowlm:secret@127.0.0.1:9/lowlm_optuna", "x", create=True)
    with pytest.raises(SweepSpaceError, match="--storage"):
        study_storage(SweepConfig(), "http://127.0.0.1:5000")


@pytest.mark.slow
def test_trials_run_on_dask_workers(prefect_harness, config, tracking_uri):
    import os

    from tasks._stage import PID_TAG

    state = sweep(config, settings(trials=3, runner="dask", study="sweep-on-dask"), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    runs = [r for name, r in children(MlflowClient(tracking_uri), result["mlflow_run_id"]).items()
            if name.startswith("trial-")]
    assert len(runs) == 3 and all(r.data.tags[PID_TAG] != str(os.getpid()) for r in runs)  # the workers' processes
