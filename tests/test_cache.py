"""Stage caching: keyed on the code a stage runs and on its work folder; never a hit on missing files."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from flows.classification import classification
from lowlm.config import load_pipeline_config
from tasks._cache import WorkFolder, code_files, folder_identity, missing_outputs
from tests.prefect_states import task_states

CACHED_STAGES = {"ingest", "tokenize", "augment", "train", "evaluate"}


def test_code_keys_follow_imports_not_the_whole_library():
    ingest = {str(p) for p in code_files("tasks.ingest")}
    train = {str(p) for p in code_files("tasks.train")}
    assert any(p.endswith("tasks/ingest.py") for p in ingest)
    assert any(p.endswith("corpus.py") for p in ingest)
    # the seq2seq model is code the train stage runs, never code the ingest stage runs
    assert any(p.endswith("models/seq2seq.py") for p in train)
    assert not any(p.endswith("models/seq2seq.py") for p in ingest)


def test_a_work_folder_made_again_is_a_new_folder(tmp_path):
    first = WorkFolder(tmp_path / "work")
    assert folder_identity(first.root) == first.identity
    shutil.rmtree(first.root)
    again = WorkFolder(tmp_path / "work")
    assert again.identity != first.identity and again.identity.startswith(str(again.root))


def test_missing_outputs_are_found_in_a_stored_result(tmp_path):
    kept = tmp_path / "kept.parquet"
    kept.write_text("x")
    record = tmp_path / "record"
    record.write_text('{"metadata": {}, "result": "{\\"splits\\": {\\"train\\": \\"%s\\", \\"test\\": \\"%s\\"}, '
                      '\\"elsewhere\\": \\"/no/such/file\\"}"}' % (kept, tmp_path / "gone.parquet"))
    assert missing_outputs(record, tmp_path) == [str(tmp_path / "gone.parquet")]


@pytest.fixture
def quick_config(sample_csv):
    def make(work_dir, name="cache-test"):
        return load_pipeline_config("sample", {
            "corpus.path": str(sample_csv), "work_dir": str(work_dir), "experiment": "cache-test",
            "registry.model_name": name, "model": {"kind": "bag_of_ngrams", "embedding_dim": 16},
            "train.epochs": 2, "train.progress": False, "augment.enabled": False, "attack.enabled": False,
            "fewshot.enabled": False,
        })
    return make


def _run(config):
    state = classification(config, return_state=True)
    assert state.is_completed(), state.message
    return task_states(state.state_details.flow_run_id, expect=CACHED_STAGES | {"register", "summarize"}), state.result()


def test_deleted_or_second_work_folders_recompute(prefect_harness, quick_config, tmp_path):
    work_a = tmp_path / "a"
    states, first = _run(quick_config(work_a))
    assert {states[s] for s in CACHED_STAGES} == {"Completed"}
    assert first["model"]["new"] and first["model"]["version"] == "1"
    assert (work_a / "results").is_dir()  # results are kept beside the outputs they name

    states, _ = _run(quick_config(work_a))
    assert {states[s] for s in CACHED_STAGES} == {"Cached"}

    # the work folder deleted (make clean, rm -rf .lowlm): every stage runs again and the model is found
    shutil.rmtree(work_a)
    states, again = _run(quick_config(work_a))
    assert {states[s] for s in CACHED_STAGES} == {"Completed"}, states
    assert states["register"] == "Completed"
    assert again["model"]["version"] == "1" and not again["model"]["new"]  # same seed, same model digest

    # a second checkout beside the first: its own outputs, none of the first folder's results
    work_b = tmp_path / "b"
    states, other = _run(quick_config(work_b, name="cache-test-b"))
    assert {states[s] for s in CACHED_STAGES} == {"Completed"}
    assert other["model"]["new"] and other["model"]["version"] == "1"
    assert (work_b / "train").is_dir()

    # one stage's outputs gone: that stage (and what uses its outputs) runs again, the rest stays cached
    shutil.rmtree(work_a / "train")
    states, _ = _run(quick_config(work_a))
    assert states["ingest"] == states["tokenize"] == "Cached"
    assert states["train"] == "Completed", states
    assert any((work_a / "train").iterdir())


def test_gc_removes_only_what_no_registered_version_or_recent_entry_needs(prefect_harness, quick_config, tmp_path,
                                                                          tracking_uri):
    import time

    from tasks.gc import collect, registered_digests

    work = tmp_path / "w"
    _, first = _run(quick_config(work, name="gc-test"))
    stale = work / "tokenize" / "0123456789abcdef"  # an output no cache entry names (an old config's)
    stale.mkdir(parents=True)
    (stale / "tokenizer.json").write_text("{}")
    fresh = collect(work, registered_digests(tracking_uri))  # entries are recent: only the orphan goes
    assert fresh.removed == [str(stale)] and not stale.exists()
    old = time.time() - 30 * 86400
    for record in (work / "results").iterdir():
        os.utime(record, (old, old))
    dry = collect(work, set(), keep_days=14, dry_run=True)  # nothing registered: everything could go
    assert dry.removed_records >= 4 and all(Path(p).exists() for p in dry.removed)
    kept = collect(work, registered_digests(tracking_uri), keep_days=14)  # the registered model's train stays
    model_dir = Path(first["model"]["name"] and next((work / "train").rglob("bundle.json")).parent)
    assert model_dir.exists() and kept.kept_records >= 1
    assert not any((work / "ingest").iterdir()), "the old ingest outputs no kept entry names are removed"
    _, again = _run(quick_config(work, name="gc-test"))  # and the pipeline still runs: recomputes what went
    assert again["model"]["version"] == "1" and not again["model"]["new"]


def test_a_new_mlflow_store_gets_the_stages_logged_again(prefect_harness, quick_config, tmp_path, monkeypatch):
    """The same work folder against a second store: no cached stage hands that store's registry a run
    id it does not have; the lineage of the version is complete where it is registered."""
    from mlflow import MlflowClient

    work = tmp_path / "w"
    _run(quick_config(work, name="lineage-test"))
    other = f"sqlite:///{tmp_path / 'other' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    try:
        states, result = _run(quick_config(work, name="lineage-test"))
    finally:  # back to the session's store, for the tests after this one
        monkeypatch.undo()
        import mlflow

        mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    assert {states[s] for s in CACHED_STAGES} == {"Completed"}, states
    client = MlflowClient(other)
    version = client.get_model_version("lineage-test", result["model"]["version"])
    assert client.get_run(version.tags["train_run_id"]).info.run_name == "train"
