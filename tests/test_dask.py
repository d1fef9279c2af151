"""The dask task runner (prefect-dask): augmentation and attack shards on Dask worker processes give the
rows and examples the thread runner gives; a local cluster per stage and an existing scheduler both work; a scheduler that
does not answer fails the flow at its start, naming the address."""

from __future__ import annotations

import os
import socket
import sys
import time

import cloudpickle
import pandas as pd
import pytest
from prefect import flow, task

from flows.attacking import attack_parts
from flows.augmenting import _shard_parameters
from flows.runners import RunnerUnavailable, check_scheduler, map_shards, worker_environment
from lowlm.config import load_pipeline_config
from lowlm.config.attack import AttackConfig
from lowlm.config.augment import AugmentConfig, EdaAugmenter, NoiseAugmenter
from lowlm.robustness.augment import augmenter_names
from tasks._cache import WorkFolder
from tasks.adversarial import merged
from tasks.augment import augment_shard

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the test's own tasks travel to the workers

TEXTS = [f"the parcel number {i} arrived late and the box was badly damaged on the way" for i in range(12)]


@task
def shard_and_pid(split: str, split_digest: str, column: str, start: int, stop: int, augmenters: list, seed: int,
                  shard: int, translators: dict, work_dir: str) -> dict:
    """The augment stage's shard, run as it is, plus the process it ran in."""
    part = augment_shard.fn(split=split, split_digest=split_digest, column=column, start=start, stop=stop,
                            augmenters=augmenters, seed=seed, shard=shard, translators=translators, work_dir=work_dir)
    return {**part, "pid": os.getpid()}


@flow
def shard_flow(config: AugmentConfig, split: str, work_dir: str) -> tuple[list[dict], list[int]]:
    work = WorkFolder(work_dir)
    named = list(zip(augmenter_names(config.augmenters), config.augmenters))
    parts = map_shards(shard_and_pid, _shard_parameters(split, "digest-of-the-split", "text", len(TEXTS), named,
                                                        config, {}, work), config)
    return parts, [p["pid"] for p in parts]


def rows(parts: list[dict]) -> list[tuple]:
    frames = [pd.read_parquet(p["path"]) for p in sorted(parts, key=lambda p: p["shard"])]
    return [tuple(r) for f in frames for r in f.itertuples(index=False)]


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("split") / "train.parquet"
    pd.DataFrame({"text": TEXTS, "label": ["late"] * len(TEXTS)}).to_parquet(path, index=False)
    return str(path)


def augment_config(**runner) -> AugmentConfig:
    return AugmentConfig(shard_rows=4, seed=3, augmenters=[EdaAugmenter(ratio=1), NoiseAugmenter(kind="keyboard")],
                         **runner)


@pytest.fixture(scope="module")
def threaded(prefect_harness, split, tmp_path_factory) -> list[dict]:
    parts, pids = shard_flow(augment_config(runner="thread"), split, str(tmp_path_factory.mktemp("thread")))
    assert set(pids) == {os.getpid()}
    return parts


def test_dask_shards_on_a_local_cluster_equal_thread_shards(threaded, split, tmp_path):
    local, pids = shard_flow(augment_config(runner="dask", workers=2), split, str(tmp_path))
    assert len(local) == 3 and rows(local) == rows(threaded) and len(rows(local)) > 10  # same seeds, same rows
    assert all(str(tmp_path) in p["path"] for p in local)  # written by the workers, where the flow said
    assert os.getpid() not in pids and 1 <= len(set(pids)) <= 2  # the cluster's worker processes


@flow
def attack_flow(model: dict, split: str, config: AttackConfig, work_dir: str) -> list[dict]:
    return attack_parts(model, {"test": (split, "digest-of-the-split", 40)}, config, WorkFolder(work_dir))["test"]


def test_attack_shards_on_dask_workers_equal_thread_shards(prefect_harness, trained_sample, tmp_path):
    classifier = trained_sample["classifier"]
    model = {"model_dir": str(classifier.save(tmp_path / "model")), "digest": "digest-of-the-model"}
    test = trained_sample["corpus"].splits["test"]
    split = tmp_path / "test.parquet"
    pd.DataFrame({"text": test["text"], "label": [classifier.labels[int(y)] for y in test["label"]]}).to_parquet(split)
    runs = {}
    for runner in ("thread", "dask"):
        config = AttackConfig(method="word", shard_rows=8, runner=runner, workers=2)  # WordNet from 2 threads
        parts = attack_flow(model, str(split), config, str(tmp_path / runner))
        assert all(str(tmp_path / runner) in p["path"] for p in parts)
        runs[runner] = merged(parts)
    (thread, rows), (dask, dask_rows) = runs["thread"], runs["dask"]
    assert len(rows) == min(40, len(test)) > 16 and dask_rows == rows  # the same seeded sample, in 3+ shards
    assert dask.table().equals(thread.table()) and thread.summary()["succeeded"] > 0


@pytest.mark.slow
def test_an_existing_scheduler_runs_the_shards(threaded, split, tmp_path):
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0", env=worker_environment()) as cluster:
        remote, pids = shard_flow(augment_config(runner="dask", address=cluster.scheduler_address), split,
                                  str(tmp_path))
        with Client(cluster) as client:
            worker_pids = set(client.run(os.getpid).values())
    assert rows(remote) == rows(threaded)
    assert set(pids) == worker_pids and os.getpid() not in worker_pids  # ran on that cluster's worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_scheduler_fails_the_flow_at_its_start_naming_it(prefect_harness, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(RunnerUnavailable, match=address.replace(".", r"\.")):
        check_scheduler(address)
    from flows.classification import classification

    config = load_pipeline_config("sample", {"augment.runner": "dask", "augment.address": address,
                                             "work_dir": str(tmp_path / "work")})
    started = time.monotonic()
    with pytest.raises(RunnerUnavailable, match=address.replace(".", r"\.")):
        classification(config)
    assert time.monotonic() - started < 60 and not (tmp_path / "work").exists()  # before any stage ran


def test_runner_settings_are_checked():
    with pytest.raises(ValueError, match="set runner: dask"):
        AugmentConfig(address="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="tcp://127.0.0.1:8786"):
        AugmentConfig(runner="dask", address="127.0.0.1")
