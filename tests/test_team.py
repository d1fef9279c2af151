"""The team set-up on this machine: PostgreSQL (as the postgres user when root) with the MLflow and Prefect
servers on it. Flows run against them from other processes; two registering one model at once get
distinct versions and exactly one champion; a sweep's study sits in the same PostgreSQL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from mlflow import MlflowClient

from flows.servers import free_port
from flows.team import databases, down, up
from lowlm.config.sweep import SweepConfig, study_storage
from tasks.sweep import open_study

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
NAME = "team-test"


@pytest.fixture(scope="module")
def team():
    folder = Path(tempfile.mkdtemp(prefix="lowlm-team-"))  # not pytest's tmp: the postgres user must enter it
    folder.chmod(0o755)
    try:
        state = up(folder, free_port(), free_port(), free_port())
        yield state
        down(folder)
        assert not (folder / "team.json").exists()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def team_env(team) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_API"))}
    return {**env, **team["environment"]}


def run_flow(team, work: Path, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "lowlm"), "run", "sample", *[a for kv in (
            ("model.kind", "bag_of_ngrams"), ("train.epochs", 3), ("train.seed", seed), ("augment.enabled", False),
            ("attack.enabled", False), ("attack.generate.enabled", False), ("fewshot.enabled", False),
            ("registry.model_name", NAME), ("experiment", NAME), ("work_dir", work)) for a in ("--set", f"{kv[0]}={kv[1]}")]],
        env=team_env(team), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_flows_on_the_team_servers_register_distinct_versions_and_one_champion(team, tmp_path):
    flows = [run_flow(team, tmp_path / f"work-{seed}", seed) for seed in (1, 2)]  # at once, two processes
    outputs = [f.communicate(timeout=400)[0] for f in flows]
    assert [f.returncode for f in flows] == [0, 0], outputs
    client = MlflowClient(team["environment"]["MLFLOW_TRACKING_URI"])
    found = client.search_model_versions(f"name = '{NAME}'")
    assert sorted(int(v.version) for v in found) == [1, 2]
    versions = [client.get_model_version(NAME, v.version) for v in found]  # the search leaves aliases out
    assert sum("champion" in v.aliases for v in versions) == 1, outputs  # compare-and-set over the REST API
    champion = client.get_model_version_by_alias(NAME, "champion")
    loaded = subprocess.run([sys.executable, "-c", (
        "from lowlm.serving.pyfunc import load\n"
        f"print(load('models:/{NAME}@champion').predict(['where is my card'])['label'].iloc[0])")],
        env=team_env(team), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    labels = set(pd.read_csv(ROOT / "data" / "sample" / "intents.csv")["label"]) | {"out_of_scope"}
    assert loaded.stdout.strip().splitlines()[-1] in labels  # the champion answered, in another process
    # the state is in PostgreSQL: MLflow's runs and versions, Prefect's flow runs
    urls = databases(team["postgres"]["url"])
    with psycopg.connect(urls["mlflow"].replace("+psycopg", "")) as db:
        assert db.execute("SELECT count(*) FROM model_versions WHERE name = %s", (NAME,)).fetchone()[0] == 2
        assert db.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (champion.run_id,)).fetchone()[0] == 1
    with psycopg.connect(urls["prefect"].replace("+asyncpg", "")) as db:
        states = db.execute("SELECT state_type FROM flow_run WHERE name IS NOT NULL").fetchall()
        assert sum(s == ("COMPLETED",) for s in states) >= 2


def test_one_split_logged_by_many_runs_at_once_is_one_dataset(team):
    """MLflow's server looks a dataset up, then inserts it: runs logging the same split at once race for
    the unique key (two flows did, in a clean-clone run); log_dataset tries again and every run gets it."""
    import mlflow

    from tasks._stage import log_dataset

    uri, before = team["environment"]["MLFLOW_TRACKING_URI"], mlflow.get_tracking_uri()
    client = MlflowClient(uri)
    experiment = client.create_experiment("dataset-race")
    frame = pd.DataFrame({"text": ["where is my card", "refund please"], "label": ["card", "refund"]})
    errors, barrier = [], threading.Barrier(8)

    def one(i: int) -> None:
        try:
            with mlflow.start_run(experiment_id=experiment, run_name=f"r{i}"):
                barrier.wait()
                log_dataset(frame, name="test", digest="0123456789abcdef", source="/data/test.csv", context="test")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    mlflow.set_tracking_uri(uri)  # the runs go to the team's server; the session's store comes back after
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        mlflow.set_tracking_uri(before)
    assert errors == []
    runs = client.search_runs([experiment])
    assert len(runs) == 8 and all(len(r.inputs.dataset_inputs) == 1 for r in runs)


def test_a_sweeps_study_sits_in_the_same_postgresql(team):
    tracking = team["postgres"]["url"].rsplit("/", 1)[0] + "/sweeps"  # an MLflow store named sweeps on that server
    storage = study_storage(SweepConfig(), tracking)
    assert storage.endswith("/sweeps_optuna")
    study = open_study(storage, "team-study", seed=1, create=True)  # creates the database sweeps_optuna
    trial = study.ask()
    study.tell(trial, 0.5)
    again = open_study(storage, "team-study")
    assert [t.value for t in again.trials] == [0.5]


def test_ui_on_a_database_that_does_not_answer_fails_naming_it():
    port = free_port()
    url = f"postgresql://lowlm:secret@127.0.0.1:{port}/lowlm"
    run = subprocess.run([str(BIN / "lowlm"), "ui", "--database", url, "--mlflow-port", str(free_port()),
                          "--prefect-port", str(free_port())], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and f"127.0.0.1:{port}" in run.stderr and "secret" not in run.stderr, run.stderr
    bad = subprocess.run([str(BIN / "lowlm"), "ui", "--database", "mysql://x@127.0.0.1/db"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "postgresql://" in bad.stderr, bad.stderr
