"""The classification flow end to end: real Prefect runs (test harness), a real SQLite MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.classification import classification, main
from lowlm.config import load_pipeline_config
from lowlm.inference.classifier import TextClassifier
from tests.prefect_states import task_states

STAGES = {"ingest", "tokenize", "augment", "probe", "adversarial", "train", "ingest-fewshot", "fewshot-cell", "fewshot",
          "evaluate", "evaluate-attack", "register", "register-fewshot"}
TASKS = STAGES - {"register-fewshot"} | {"augment-shard", "attack-shard", "summarize"}  # Prefect task names (both registrations are `register`)


@pytest.fixture(scope="module")
def config(tmp_path_factory, sample_csv, fewshot_csv):
    work = tmp_path_factory.mktemp("work")
    return load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "fewshot.corpus.path": str(fewshot_csv), "work_dir": str(work),
        "experiment": "flow-test", "registry.model_name": "flow-test",
        "model.hidden_dim": 32, "model.embedding_dim": 32, "model.attention_dim": 32, "model.char_dim": 16,
        "train.epochs": 8, "train.progress": False,
        "attack.max_examples": 30, "attack.generate.sample_rows": 150,
    })


def run(config):
    state = classification(config, return_state=True)
    return state, state.result(raise_on_failure=False)


def stage_runs(client: MlflowClient, parent_run_id: str) -> dict:
    parent = client.get_run(parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'")
    return {r.data.tags["lowlm.stage"]: r for r in children}


@pytest.fixture(scope="module")
def first_run(prefect_harness, config, tracking_uri):
    state, result = run(config)
    assert state.is_completed(), state.message
    return state, result


def test_first_run_tracks_every_stage_and_registers_a_champion(first_run, config, tracking_uri):
    state, result = first_run
    client = MlflowClient(tracking_uri)
    stages = stage_runs(client, result["mlflow_run_id"])
    assert set(stages) == STAGES
    assert all(r.info.status == "FINISHED" for r in stages.values())
    parent = client.get_run(result["mlflow_run_id"])
    assert parent.info.status == "FINISHED"
    # the summarize step put the headline metrics and the registry outcome on the parent run
    assert parent.data.metrics["test_accuracy"] == pytest.approx(result["metrics"]["test_accuracy"])
    assert parent.data.tags["registered_version"] == result["model"]["version"]

    ingest = stages["ingest"]
    inputs = {d.dataset.name: d.dataset for d in ingest.inputs.dataset_inputs}
    assert set(inputs) == {"ingest-train", "ingest-validation", "ingest-test"}
    version = client.get_model_version("flow-test", result["model"]["version"])
    assert inputs["ingest-test"].digest == version.tags["test_digest"]
    assert inputs["ingest-train"].source and "intents.csv" in inputs["ingest-train"].source

    assert stages["train"].data.metrics["best_val_accuracy"] > 0.5
    # baselines beside every accuracy: the most frequent training label's share of the split
    evaluated, trained = stages["evaluate"].data.metrics, stages["train"].data.metrics
    assert 0 < evaluated["test_majority_baseline"] < evaluated["test_accuracy"]
    assert 0 < trained["validation_majority_baseline"] < trained["best_val_accuracy"]
    assert 0 <= stages["tokenize"].data.metrics["validation_unk_rate"] < 0.5
    history = client.get_metric_history(stages["train"].info.run_id, "val_accuracy")
    assert [m.step for m in history] == list(range(1, len(history) + 1))
    artifacts = {f.path for f in client.list_artifacts(stages["evaluate"].info.run_id, "plots")}
    assert {"plots/confusion_matrix.png", "plots/attention.png"} <= artifacts
    assert {f.path for f in client.list_artifacts(stages["train"].info.run_id, "plots")} == {"plots/training_curves.png"}
    # adversarial rows against the probe (no champion yet) joined training; the new model was attacked after
    generated = stages["adversarial"].data
    assert generated.tags["attacked_model"] == "probe" and generated.metrics["rows_added"] > 0
    assert generated.metrics["rows_train"] == stages["augment"].data.metrics["rows_train"] + generated.metrics["rows_added"]
    attacked = stages["evaluate-attack"].data.metrics
    assert 0 < attacked["test_attack_success_rate"] <= 1
    assert attacked["test_attacked_accuracy"] < attacked["test_attack_clean_accuracy"]
    path = mlflow.artifacts.download_artifacts(run_id=stages["evaluate-attack"].info.run_id,
                                               artifact_path="adversarial_test.json", tracking_uri=tracking_uri)
    raw = json.loads(Path(path).read_text())
    table = pd.DataFrame(raw["data"], columns=raw["columns"])  # the per-example table the MLflow UI shows
    assert {"original", "adversarial", "label", "predicted_before", "predicted_after"} <= set(table.columns)
    flipped = table[table["status"] == "succeeded"]
    assert len(flipped) and (flipped["predicted_after"] != flipped["label"]).all()
    assert (flipped["adversarial"] != flipped["original"]).all()
    assert version.tags["adversarial_target_version"] == "probe" and version.tags["robustness"]
    # the adversarial rows changed the training split the model was trained on, and its digest says so
    augmented = dataset_digest(stages["augment"], "augment-train")
    hardened = dataset_digest(stages["adversarial"], "adversarial-train")
    assert augmented != hardened == version.tags["data_digest.train_augmented"]
    assert float(version.tags["test_attacked_accuracy"]) == pytest.approx(attacked["test_attacked_accuracy"], abs=1e-6)
    assert stages["fewshot"].data.metrics["shots"] == 24  # the largest k, 8, of 3 classes
    # the few-shot grid: one nested run per (strategy, k, seed), a table and the learning curve
    cells = [r for r in client.search_runs([parent.info.experiment_id], max_results=100,
                                           filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
             if r.data.tags["lowlm.stage"] == "fewshot-cell"]
    fs = config.fewshot
    assert sorted((r.data.params["strategy"], int(r.data.params["k"]), int(r.data.params["seed"])) for r in cells) == \
        sorted((s, k, seed) for s in fs.strategies for k in fs.shots for seed in fs.seeds)
    summary = stages["fewshot"]
    assert {"plots/fewshot_learning_curve.png"} <= {f.path for f in client.list_artifacts(summary.info.run_id, "plots")}
    assert {"fewshot_grid.json", "fewshot_grid.csv"} <= {f.path for f in client.list_artifacts(summary.info.run_id)}
    chosen = summary.data.tags["fewshot.chosen_strategy"]
    assert chosen in fs.strategies
    fewshot_version = client.get_model_version_by_alias("flow-test-fewshot", "champion")
    assert fewshot_version.tags["test_accuracy"] and fewshot_version.tags["data_digest.base_model"] == version.tags["model_digest"]
    assert result["fewshot_model"]["alias"] == "champion"
    assert stages["augment"].data.metrics["rows_added"] > 0

    assert result["model"]["version"] == "1" and result["model"]["alias"] == "champion"
    assert str(client.get_model_version_by_alias("flow-test", "champion").version) == "1"
    for tag in ("model_digest", "config_hash", "git_commit", "test_digest", "data_digest.train",
                "data_digest.train_augmented", "test_accuracy"):
        assert version.tags.get(tag), tag
    assert version.tags["config_hash"] == config.digest()


def test_champion_loads_from_registry_and_predicts_raw_strings(first_run, tracking_uri):
    state, result = first_run
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/flow-test@champion")
    texts = ["my card was swallowed by the cash machine", "I cannot log in to the app", "where is my refund"]
    out = model.predict(pd.DataFrame({"text": texts}))  # the signature's named column
    assert len(out) == 3
    assert set(out["label"]) <= {"account_access", "card_problem", "refund", "transfer"}
    local = TextClassifier.load(_train_dir(tracking_uri, result))  # the checkpoint the train stage logged
    assert out["label"].tolist() == [p["label"] for p in local.predict(texts)]


def dataset_digest(run, name: str) -> str:
    return next(d.dataset.digest for d in run.inputs.dataset_inputs if d.dataset.name == name)


def _train_dir(tracking_uri, result):
    client = MlflowClient(tracking_uri)
    train_run = stage_runs(client, result["mlflow_run_id"])["train"]
    return mlflow.artifacts.download_artifacts(run_id=train_run.info.run_id, artifact_path="checkpoint",
                                               tracking_uri=tracking_uri)


def test_identical_rerun_hits_the_cache(first_run, config, tracking_uri):
    state, result = run(config)
    assert state.is_completed()
    states = task_states(state.state_details.flow_run_id, expect=TASKS)
    uncached = {"register", "summarize"}  # the registry and the parent run are read and written every run
    assert {k: v for k, v in states.items() if k not in uncached} == {s: "Cached" for s in TASKS - uncached}
    assert states.get("register") == states.get("summarize") == "Completed", states
    assert result["model"] == {**result["model"], "version": "1", "new": False}
    assert len(MlflowClient(tracking_uri).search_model_versions("name = 'flow-test'")) == 1
    # a cached stage logs no new MLflow run
    assert set(stage_runs(MlflowClient(tracking_uri), result["mlflow_run_id"])) == {"register", "register-fewshot"}


def test_new_training_settings_rerun_only_what_depends_on_them(first_run, config, tracking_uri):
    weaker = config.model_copy(update={"train": config.train.model_copy(update={"lr": 1e-7, "epochs": 1})})
    state, result = run(weaker)
    assert state.is_completed()
    states = task_states(state.state_details.flow_run_id, expect=TASKS)
    assert states["ingest"] == states["tokenize"] == states["augment"] == "Cached"
    assert states["train"] == states["evaluate"] == states["evaluate-attack"] == states["fewshot"] == "Completed"
    assert states["adversarial"] == "Completed"  # same data: v1's own target, a probe, trained with the new settings
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias("flow-test", "champion")
    new = client.get_model_version("flow-test", result["model"]["version"])
    assert result["model"]["version"] == "2" and result["model"]["new"]
    ours, theirs = float(new.tags["test_accuracy"]), float(client.get_model_version("flow-test", "1").tags["test_accuracy"])
    assert ours < theirs  # an untrained model cannot beat the champion...
    assert result["model"]["alias"] == "challenger" and str(champion.version) == "1"  # ...so the gate keeps it
    assert str(client.get_model_version_by_alias("flow-test", "challenger").version) == "2"
    assert "same test digest" in new.tags["gate"]


def test_failing_stage_marks_runs_failed_and_registers_nothing(prefect_harness, config, tmp_path, tracking_uri):
    one_class = tmp_path / "one_class.csv"
    one_class.write_text("text,label\n" + "".join(f"review number {i},positive\n" for i in range(20)))
    broken = config.model_copy(update={
        "registry": config.registry.model_copy(update={"model_name": "flow-fail"}),
        "fewshot": config.fewshot.model_copy(update={"corpus": config.fewshot.corpus.model_copy(
            update={"path": str(one_class)})}),
    })
    state = classification(broken, return_state=True)
    assert state.is_failed()
    with pytest.raises(Exception, match=r"one_class\.csv: only one class \('positive'\)"):
        state.result()
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("flow-test")
    parent = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                filter_string="tags.`lowlm.flow` = 'classification'", max_results=1)[0]
    assert parent.info.status == "FAILED"
    assert stage_runs(client, parent.info.run_id)["ingest-fewshot"].info.status == "FAILED"
    assert client.search_model_versions("name = 'flow-fail'") == []


def test_cli_reports_bad_preset(capsys):
    assert main(["no-such-preset"]) == 2
    assert "no config file 'no-such-preset'" in capsys.readouterr().err
    assert main(["sample", "--set", "train.epochs=zero"]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_cli_reports_a_bad_corpus_without_a_traceback(prefect_harness, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,a\n,b\nalso fine,b\n")
    code = main(["sample", "--set", f"corpus.path={bad}", "--set", "fewshot.enabled=false",
                 "--set", f"work_dir={tmp_path / 'work'}", "--set", "registry.model_name=cli-bad"])
    assert code == 2  # bad input, not a failure of the job
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out  # the full one is in the run's log file
    assert sum(line.startswith("error:") for line in captured.err.splitlines()) == 1
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("error: the pipeline failed: CorpusError:") and "bad.csv, row 2: empty or missing text" in err


def test_gate_refuses_champion_below_the_required_accuracy_under_attack(first_run, config, tracking_uri):
    """Nothing but the registry changes (every stage is cached): the first version of a new model name would be
    champion, but its accuracy under attack on validation is below the minimum."""
    strict = config.model_copy(update={"registry": config.registry.model_copy(
        update={"model_name": "flow-robust", "min_attacked_accuracy": 0.99})})
    state, result = run(strict)
    assert state.is_completed(), state.message
    client = MlflowClient(tracking_uri)
    version = client.get_model_version("flow-robust", result["model"]["version"])
    assert result["model"]["alias"] == "challenger"
    assert "val_attacked_accuracy" in version.tags["gate"] and "below registry.min_attacked_accuracy" in version.tags["gate"]
    assert float(version.tags["val_attacked_accuracy"]) < 0.99
    with pytest.raises(Exception):
        client.get_model_version_by_alias("flow-robust", "champion")


def test_the_champion_to_attack_comes_from_the_given_store_not_mlflows_global_one(first_run, tracking_uri, tmp_path,
                                                                                  monkeypatch):
    """`make run` resolves the champion before any run sets MLflow's global URI: a models:/ download must not
    fall back to it (the second `make run` failed with 'Registered Model with name=intents not found')."""
    from tasks.registered import fetch_champion

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'elsewhere.db'}")
    try:
        handle = fetch_champion("flow-test", str(tmp_path / "work"), tracking_uri)
    finally:
        mlflow.set_tracking_uri(tracking_uri)
    assert handle["version"] == "1" and (Path(handle["model_dir"]) / "bundle.json").exists()
