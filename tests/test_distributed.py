"""DDP under torchrun: two processes on this machine take the steps one process takes over the same
global batches; rank 0 alone logs to MLflow; what DDP does not run is a config error."""

from __future__ import annotations

import math

import pytest
import torch
from mlflow import MlflowClient

from flows.classification import classification
from lowlm.config import load_pipeline_config
from lowlm.config.stages import DistributedConfig
from lowlm.config.sweep import SweepSpaceError, check_space
from lowlm.inference.classifier import TextClassifier
from lowlm.text.batching import Batches
from lowlm.training.distributed import RankBatches, World
from tasks.distributed import DistributedTrainingFailed

EPOCHS = 4


def test_rank_shares_cover_each_global_batch_once_with_weights_of_their_rows():
    batches = Batches([[5] * (1 + i % 7) for i in range(22)], [i % 3 for i in range(22)], batch_size=4, shuffle=True,
                      seed=2)
    shares = [list(RankBatches(Batches(batches.ids, batches.labels.tolist(), 4, True, 2), World(r, 3))) for r in range(3)]
    short = []
    for batch, *parts in zip(batches, *shares):
        held = sorted(i for p in parts if p.weight for i in p.batch.index.tolist())
        assert held == sorted(batch.index.tolist())  # every row of the global batch on exactly one rank
        assert sum(p.weight for p in parts) == pytest.approx(3)  # the ranks' mean gradient is the batch's
        for p in parts:
            assert p.batch.ids.shape[1] == int(p.batch.lengths.max())  # padded to its own rows only
        if len(batch.lengths) < 3:
            short = parts
    # 22 rows in 4s: one batch of 2 rows; the third rank holds a stand-in row that counts for nothing
    assert [p.rows for p in short] == [1, 1, 0] and [p.weight for p in short] == [1.5, 1.5, 0]
    assert len(short[2].batch.lengths) == 1


def config_for(tmp_path, sample_csv, **settings):
    return load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path / "work"), "experiment": "ddp-test",
        "registry.model_name": "ddp-test", "augment.enabled": False, "attack.enabled": False,
        "attack.generate.enabled": False, "fewshot.enabled": False,
        "model.hidden_dim": 32, "model.embedding_dim": 32, "model.attention_dim": 32, "model.char_dim": 0,
        "model.dropout": 0.0,  # dropout masks differ between one process and two: off, the steps are the same
        "train.epochs": EPOCHS, "train.batch_size": 20, "train.patience": 0, "train.progress": False, **settings})


def train_run(client: MlflowClient, parent_run_id: str):
    parent = client.get_run(parent_run_id)
    (run,) = client.search_runs([parent.info.experiment_id], filter_string=(
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`lowlm.stage` = 'train'"))
    return run


def test_two_processes_under_torchrun_take_the_steps_of_one(prefect_harness, tmp_path, sample_csv, tracking_uri):
    client = MlflowClient(tracking_uri)
    one = classification(config_for(tmp_path / "one", sample_csv))
    two = classification(config_for(tmp_path / "two", sample_csv, **{"train.distributed.procs_per_node": 2}))
    runs = {name: train_run(client, result["mlflow_run_id"]) for name, result in (("one", one), ("two", two))}
    losses = {name: [m.value for m in sorted(client.get_metric_history(r.info.run_id, "train_loss"),
                                             key=lambda m: m.step)] for name, r in runs.items()}
    assert len(losses["one"]) == len(losses["two"]) == EPOCHS  # rank 0 alone logged each epoch, once
    assert losses["two"][-1] < losses["two"][0]
    for a, b in zip(losses["one"], losses["two"]):
        assert math.isclose(a, b, rel_tol=1e-4), losses  # 259 rows in 20s: unequal shares, weighted alike
    assert runs["two"].data.metrics["distributed_processes"] == 2 and "distributed_processes" not in runs["one"].data.metrics
    assert runs["two"].data.metrics["best_val_accuracy"] == runs["one"].data.metrics["best_val_accuracy"]
    models = {name: TextClassifier.load(next((tmp_path / name / "work" / "train").glob("*/classifier")))
              for name in ("one", "two")}
    texts = ["where is my card", "I want my money back", "the app keeps crashing", "hello"]
    logits = {name: m.logits(texts) for name, m in models.items()}
    assert torch.allclose(logits["one"], logits["two"], atol=1e-4)  # the registered weights, not only the losses


def test_what_ddp_does_not_run_is_a_config_error(sample_csv, tmp_path):
    with pytest.raises(ValueError, match="attack.refresh"):
        config_for(tmp_path, sample_csv, **{"train.distributed.procs_per_node": 2, "attack.refresh.every": 1})
    with pytest.raises(ValueError, match="perturbation"):
        config_for(tmp_path, sample_csv, **{"train.distributed.procs_per_node": 2, "train.perturbation.method": "fgm"})
    with pytest.raises(ValueError, match="set endpoint"):
        DistributedConfig(nodes=2)
    with pytest.raises(ValueError, match="host:port"):
        DistributedConfig(nodes=2, endpoint="tcp://10.0.0.5")
    with pytest.raises(ValueError, match="only the classifier"):
        load_pipeline_config("multi30k", {"train.distributed.procs_per_node": 2})
    with pytest.raises(SweepSpaceError, match="train.distributed"):
        check_space(config_for(tmp_path, sample_csv, **{"train.distributed.procs_per_node": 2}), {})


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="nccl needs a GPU to fail for want of one")
def test_a_failed_launch_fails_the_stage_with_torchruns_own_words(prefect_harness, tmp_path, sample_csv):
    config = config_for(tmp_path, sample_csv, **{"train.distributed.procs_per_node": 2,
                                                 "train.distributed.backend": "nccl"})  # no GPU here
    with pytest.raises(DistributedTrainingFailed, match=r"torchrun exited with 1 .*log .*torchrun\.log"):
        classification(config)
