"""The champion gate under concurrency: two registrations of one model at once, in two OS processes on
one SQLite store, must end as if they had run one after the other (one champion, the other challenger,
reasons that name the version each one was really compared with); and the per-model lock itself."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent

# One registration in its own process: ``register.fn`` (the Prefect task's plain function) on a tiny
# bundle, with the metrics the spec gives. Both workers wait on a start barrier, and the first read of
# the champion alias waits (a few seconds at most) until every worker is reading it: if the gate lets two
# processes read the champion at once, they do; a gate that serializes them makes the first one wait out
# the timeout alone.
WORKER = r"""
import json, os, sys, time
from pathlib import Path
spec = json.loads(sys.argv[1])
os.environ["MLFLOW_TRACKING_URI"] = spec["uri"]
import mlflow
from mlflow import MlflowClient
from tasks._stage import Tracking, ensure_experiment
from tasks.register import register

def barrier(stage, wait_s):
    folder = Path(spec["dir"])
    (folder / f"{stage}-{spec['tag']}").touch()
    deadline = time.monotonic() + wait_s
    while len(list(folder.glob(f"{stage}-*"))) < spec["workers"] and time.monotonic() < deadline:
        time.sleep(0.01)

original = MlflowClient.get_model_version_by_alias
def reading(self, name, alias):
    if alias == "champion" and not reading.done:
        reading.done = True
        barrier("read", spec["read_wait_s"])
    return original(self, name, alias)
reading.done = False
MlflowClient.get_model_version_by_alias = reading

experiment = ensure_experiment("gate-race")
with mlflow.start_run(experiment_id=experiment, run_name=spec["tag"]) as parent:
    tracking = Tracking(spec["uri"], experiment, parent.info.run_id)
    barrier("start", 300)
    out = register.fn(spec["corpus"], {"model_dir": spec["bundle"], "digest": spec["tag"], "run_id": "r"},
                      {"metrics": {"test_accuracy": spec["accuracy"]}}, "classification", spec["name"],
                      "accuracy", "cfg", {"test": "t"}, tracking)
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory, sample_csv):
    """A tiny untrained classifier bundle and a test split: the gate reads the metrics it is given."""
    from lowlm.config import BagOfNgramsConfig
    from lowlm.inference.classifier import TextClassifier
    from lowlm.models.kinds import build_model
    from lowlm.text.tokenizer import Tokenizer

    folder = tmp_path_factory.mktemp("race-bundle")
    rows = pd.read_csv(sample_csv)
    labels = sorted(rows["label"].unique())
    tok = Tokenizer.train(rows["text"])
    model = build_model(BagOfNgramsConfig(embedding_dim=4, buckets=16), vocab_size=tok.vocab_size,
                        num_labels=len(labels))
    TextClassifier(model, tok, labels).save(folder / "bundle")
    rows.head(20).to_parquet(folder / "test.parquet", index=False)
    corpus = {"splits": {"test": str(folder / "test.parquet")}, "digests": {"test": "same-test-digest"},
              "labels": labels}
    return {"dir": str(folder / "bundle"), "corpus": corpus}


@pytest.fixture
def store(tmp_path):
    """A fresh SQLite store with the workers' experiment (created here: two processes creating one
    database or one experiment at once is a race of MLflow's, not of the gate)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("gate-race", artifact_location=(tmp_path / "artifacts").as_uri())
    return uri


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _start(store: str, bundle: dict, name: str, tag: str, accuracy: float, barrier: Path, workers: int):
    spec = {"uri": store, "dir": str(barrier), "tag": tag, "workers": workers, "read_wait_s": 5.0,
            "corpus": bundle["corpus"], "bundle": bundle["dir"], "name": name, "accuracy": accuracy}
    return subprocess.Popen([sys.executable, "-c", WORKER, json.dumps(spec)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(process) -> dict:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def _registrations(store: str, bundle: dict, name: str, specs: list[tuple[str, float]], barrier: Path):
    barrier.mkdir(parents=True, exist_ok=True)
    processes = [_start(store, bundle, name, tag, accuracy, barrier, len(specs)) for tag, accuracy in specs]
    return {tag: _result(p) for (tag, _), p in zip(specs, processes)}


def _aliases(store: str, name: str) -> dict[str, str]:
    from mlflow import MlflowClient

    return {alias: str(v) for alias, v in MlflowClient(store).get_registered_model(name).aliases.items()}


REASON = re.compile(r"new test_accuracy (\d\.\d+) vs champion v(\d+) (\d\.\d+)")


def _compared(result: dict) -> tuple[float, str, float] | None:
    match = REASON.search(result["reason"])
    return (float(match[1]), match[2], float(match[3])) if match else None


def _seed_champion(store: str, name: str, accuracy: float) -> None:
    """Version 1, champion, with a stored metric on the workers' test digest (so it is never re-scored),
    written straight to the registry as an older lowlm would have left it: no champion history."""
    from mlflow import MlflowClient

    client = MlflowClient(store)
    client.create_registered_model(name)
    client.create_model_version(name, "file:///nowhere", tags={"test_accuracy": f"{accuracy:.6f}",
                                                              "test_digest": "same-test-digest"})
    client.set_registered_model_alias(name, "champion", "1")


def _gate_tags_match(store: str, name: str, results: dict) -> bool:
    from mlflow import MlflowClient

    client = MlflowClient(store)
    return all(client.get_model_version(name, r["version"]).tags["gate"] == r["reason"] for r in results.values())


def _history(store: str, name: str) -> list[str]:
    from mlflow import MlflowClient

    return json.loads(MlflowClient(store).get_registered_model(name).tags["lowlm.champion_history"])


def test_two_registrations_at_once_with_a_champion_end_with_one_champion_and_its_challenger(store, bundle, tmp_path):
    _seed_champion(store, "race", 0.5)
    # equal scores, both better than the champion: in either order, the first takes the alias and the
    # second ties with it (a tie keeps the champion), so exactly one of them is champion
    results = _registrations(store, bundle, "race", [("a", 0.8), ("b", 0.8)], tmp_path / "b")
    aliases = sorted(r["alias"] for r in results.values())
    assert aliases == ["challenger", "champion"], results
    winner = next(r for r in results.values() if r["alias"] == "champion")
    loser = next(r for r in results.values() if r["alias"] == "challenger")
    # the old champion was challenger for a moment (replaced), then the loser took that alias
    assert _aliases(store, "race") == {"champion": winner["version"], "challenger": loser["version"]}
    assert _compared(winner) == (0.8, "1", 0.5)  # the winner beat the old champion...
    assert _compared(loser) == (0.8, winner["version"], 0.8)  # ...and the loser tied with the winner
    assert _history(store, "race") == ["1", winner["version"]]
    assert _gate_tags_match(store, "race", results)


def test_two_first_registrations_at_once_end_as_if_one_ran_after_the_other(store, bundle, tmp_path):
    results = _registrations(store, bundle, "race-first", [("weak", 0.6), ("strong", 0.9)], tmp_path / "b")
    weak, strong = results["weak"], results["strong"]
    # weak first: it is champion, then strong replaces it (weak: challenger); strong first: weak loses
    assert _aliases(store, "race-first") == {"champion": strong["version"], "challenger": weak["version"]}
    # exactly one of them found no champion; the other was compared with the one that did
    first, second = (weak, strong) if weak["reason"] == "no champion yet" else (strong, weak)
    assert first["reason"] == "no champion yet" and first["alias"] == "champion", results
    scores = {weak["version"]: 0.6, strong["version"]: 0.9}
    assert _compared(second) == (scores[second["version"]], first["version"], scores[first["version"]])
    assert second["alias"] == ("champion" if second is strong else "challenger")
    assert _history(store, "race-first") == [first["version"]] + ([strong["version"]] if second is strong else [])
    assert _gate_tags_match(store, "race-first", results)


@pytest.mark.slow  # about 30-60 s: run by `make bench` (make test stays under 10 minutes)
def test_without_a_lock_compare_and_set_converges_on_the_same_registry(store, bundle, tmp_path, monkeypatch):
    # what a store without database access (an MLflow server over http) gets: no lock, so both read the
    # old champion at once and both take the alias; the re-checks must agree on one outcome
    monkeypatch.setenv("LOWLM_CHAMPION_LOCK", "compare-and-set")
    _seed_champion(store, "race-cas", 0.5)
    results = _registrations(store, bundle, "race-cas", [("a", 0.8), ("b", 0.8)], tmp_path / "b")
    # one of them found the other's version on the alias after writing its own, and compared again...
    assert any("re-checked: v" in r["reason"] for r in results.values()), results
    # ...by the rule both apply (a tie goes to the lower version), whichever wrote last; what each process
    # reports can still be stale (the residual window in tasks.register), so only the registry is checked
    assert _aliases(store, "race-cas") == {"champion": "2", "challenger": "3"}


@pytest.fixture
def db(tmp_path):
    """A bare SQLite database: the lock needs no MLflow tables."""
    return f"sqlite:///{tmp_path / 'locks.db'}"


def test_the_lock_lives_in_the_store_and_waits_for_its_holder(store):
    import sqlalchemy as sa

    from tasks.champion_lock import LOCK_TABLE, ChampionLock, LockTimeout

    with ChampionLock(store, "m") as held:
        rows = sa.create_engine(store).connect().execute(sa.text(f"SELECT name, holder FROM {LOCK_TABLE}")).all()
        assert rows == [("m", held.holder)]
        with ChampionLock(store, "other"):  # the lock is per model name
            pass
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=f"held by {held.holder}"):
            ChampionLock(store, "m", timeout_s=0.5).acquire()
        assert time.monotonic() - started >= 0.5
    with ChampionLock(store, "m", timeout_s=0.5):  # released
        pass


def test_a_stale_lock_is_broken_with_a_warning(db, caplog):
    import sqlalchemy as sa

    from tasks.champion_lock import LOCK_TABLE, ChampionLock

    dead = ChampionLock(db, "m")
    dead.acquire()
    dead._stop.set()  # its process "dies": no more heartbeats...
    dead._heartbeat.join()
    with sa.create_engine(db).begin() as conn:  # ...and its last one was a minute ago
        conn.execute(sa.text(f"UPDATE {LOCK_TABLE} SET acquired_at = acquired_at - 60000"))
    with caplog.at_level("WARNING", logger="tasks.champion_lock"), ChampionLock(db, "m", stale_s=30, timeout_s=5):
        assert f"broke the champion lock of model 'm' held by {dead.holder}: no heartbeat for 60 s" in caplog.text


def test_a_holder_whose_lock_was_broken_notices_before_writing(db):
    from tasks.champion_lock import ChampionLock, LockLost

    with ChampionLock(db, "m", stale_s=0.5) as slow:  # a heartbeat every 0.1 s
        slow.check()
        # a waiter that calls 50 ms without a heartbeat stale (a misconfigured host) takes it over
        with ChampionLock(db, "m", stale_s=0.05, timeout_s=10):
            deadline = time.monotonic() + 5
            while not slow.lost and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(LockLost, match="broken as stale"):
                slow.check()


def test_first_writes_of_one_model_tag_at_once_both_land(tmp_path):
    """MLflow's SQL store reads, then inserts, a registered-model tag or alias: two first writes of one key
    at once used to fail one of them on the unique constraint (seen in the compare-and-set race)."""
    import threading

    from mlflow import MlflowClient

    from tasks.champion import _upserted

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("upsert")
    errors: list[BaseException] = []
    for key in range(12):
        barrier = threading.Barrier(4)

        def write(value, key=key, barrier=barrier):
            barrier.wait()
            try:
                _upserted(client.set_registered_model_tag, "upsert", f"k{key}", value)
            except BaseException as exc:  # noqa: BLE001 -- collected and asserted below
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(str(i),)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors[0]
    tags = client.get_registered_model("upsert").tags
    assert all(tags[f"k{key}"] in {"0", "1", "2", "3"} for key in range(12))
