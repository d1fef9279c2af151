"""lowlm compare: several registered classifiers evaluated side by side, each model's evaluate stage a task
on the runner; on Dask workers each row is what that version scored in its own flow's process."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from flows.classification import classification
from flows.compare import compare
from lowlm.config import load_pipeline_config
from lowlm.config.stages import CompareConfig

NAME = "compare-test"


def config_for(tmp_path, sample_csv, **settings):
    return load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path / "work"), "experiment": NAME,
        "registry.model_name": NAME, "model.kind": "bag_of_ngrams", "augment.enabled": False,
        "attack.enabled": False, "attack.generate.enabled": False, "fewshot.enabled": False,
        "train.progress": False, **settings})


@pytest.fixture(scope="module")
def versions(prefect_harness, tmp_path_factory, sample_csv):
    """Two registered versions: a short training and a longer one."""
    runs = [classification(config_for(tmp_path_factory.mktemp(f"v{epochs}"), sample_csv, **{"train.epochs": epochs}))
            for epochs in (1, 6)]
    return [(f"models:/{NAME}/{r['model']['version']}", r["metrics"]) for r in runs]


def test_compare_on_dask_workers_gives_what_each_version_scored_in_its_own_flow(versions, tmp_path, sample_csv,
                                                                                 tracking_uri):
    uris = [uri for uri, _ in versions]
    config = config_for(tmp_path, sample_csv, **{"attack.enabled": True, "attack.max_examples": 20})
    table = compare(config, CompareConfig(models=uris, runner="dask", workers=2))
    rows = table["models"]
    assert [r["model"] for r in rows] == uris
    for row, (_, registered) in zip(rows, versions):  # the flows evaluated in their own process (thread runner)
        assert row["test_accuracy"] == registered["test_accuracy"] and row["test_macro_f1"] == registered["test_macro_f1"]
        assert 0 <= row["test_attacked_accuracy"] <= row["test_accuracy"]
    client = MlflowClient(tracking_uri)
    parent = client.get_run(table["mlflow_run_id"])
    assert parent.data.tags["lowlm.flow"] == "compare"
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    names = {r.info.run_name for r in children}
    assert {f"evaluate {NAME} v{u.rsplit('/', 1)[1]}" for u in uris} <= names
    assert {f"evaluate-attack {NAME} v{u.rsplit('/', 1)[1]}" for u in uris} <= names


def test_an_unknown_model_fails_before_any_stage(prefect_harness, tmp_path, sample_csv):
    config = config_for(tmp_path, sample_csv)
    with pytest.raises(Exception, match="no-such-model"):
        compare(config, CompareConfig(models=["models:/no-such-model/1"]))
    assert not (tmp_path / "work" / "ingest").exists()
