"""lowlm compare: several registered classifiers evaluated side by side, each model's evaluate stage a task
on the runner; a Dask run gives the thread run's table, and each row is what that version scored when
it was registered."""

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


def test_compare_on_dask_equals_thread_and_each_row_is_what_its_version_scored(versions, tmp_path, sample_csv,
                                                                                tracking_uri):
    uris = [uri for uri, _ in versions]
    tables = {}
    for runner in ("thread", "dask"):  # a work folder each: the Dask run computes, it does not hit the cache
        config = config_for(tmp_path / runner, sample_csv, **{"attack.enabled": True, "attack.max_examples": 20})
        tables[runner] = compare(config, CompareConfig(models=uris, runner=runner, workers=2))
    rows = {runner: [{k: v for k, v in r.items()} for r in t["models"]] for runner, t in tables.items()}
    assert rows["dask"] == rows["thread"] and [r["model"] for r in rows["thread"]] == uris
    for row, (_, registered) in zip(rows["thread"], versions):
        assert row["test_accuracy"] == registered["test_accuracy"]  # the pipeline's own evaluate stage
        assert 0 <= row["test_attacked_accuracy"] <= row["test_accuracy"]
    client = MlflowClient(tracking_uri)
    parent = client.get_run(tables["thread"]["mlflow_run_id"])
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
