"""The train stage under torchrun: ``launch`` starts the processes, ``main`` is each one of them.

    train (stage process) ─ writes spec.json ─> torchrun --nnodes N --nproc-per-node P -m tasks.distributed spec.json
        rank 0 .. N*P-1: prepare_classifier (the stage's own code: same batches, same seeded model)
                         ─> the one trainer under DDP (lowlm.training.distributed)
        rank 0 alone:    logs every epoch to the stage's MLflow run, saves weights.pt and result.json
    train ─ loads them ─> calibrate, save the bundle, log it (as without torchrun)

On one machine (``nodes: 1``) the rendezvous is on 127.0.0.1 at a free port. Across machines the
stage starts the first node's processes with the configured ``endpoint`` and logs the command each
other node runs (the spec and the data it names must be at the same paths there: docs/team.md):

    python -m torch.distributed.run --nnodes 2 --nproc-per-node 2 --node-rank 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT --rdzv-id ID -m tasks.distributed /shared/work/train/KEY/ddp/spec.json
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import mlflow
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric

from lowlm.config import TrainConfig
from lowlm.config.models import ClassifierConfig
from lowlm.files import save_tensors
from lowlm.training import distributed
from lowlm.training.objectives import train_classifier
from lowlm.training.trainer import EpochMetrics, TrainResult

ROOT = Path(__file__).resolve().parent.parent  # the project: what ``-m tasks.distributed`` imports from
TAIL = 40  # lines of a failed launch's log shown in the error


class DistributedTrainingFailed(RuntimeError):
    """A torchrun launch that did not finish; the message holds its command, exit code and the log's tail."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(spec: Path, config, endpoint: str, run_id: str, node_rank: int | None = None) -> list[str]:
    """The torchrun command of one node (``node_rank`` None: left to the rendezvous)."""
    d = config.distributed
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", str(d.nodes), "--nproc-per-node",
           str(d.procs_per_node), "--rdzv-backend", "c10d", "--rdzv-endpoint", endpoint, "--rdzv-id", run_id]
    if node_rank is not None:
        cmd += ["--node-rank", str(node_rank)]
    return cmd + ["-m", "tasks.distributed", str(spec)]


def launch(out: Path, run_id: str, tracking_uri: str, net: torch.nn.Module, inputs: dict, resume: bool) -> TrainResult:
    """Train ``net`` (the stage's model, built and seeded as every rank builds it) under torchrun; it ends with
    rank 0's best weights. ``inputs``: ``prepare_classifier``'s arguments, as JSON."""
    from tasks._stage import stage_logger

    config = TrainConfig.model_validate(inputs["config"])
    d = config.distributed
    folder = out / "ddp"
    folder.mkdir(parents=True, exist_ok=True)
    for stale in ("weights.pt", "result.json"):
        (folder / stale).unlink(missing_ok=True)
    spec = folder / "spec.json"
    spec.write_text(json.dumps({**inputs, "run_id": run_id, "tracking_uri": tracking_uri, "folder": str(folder)},
                               default=str))
    log = stage_logger("lowlm.train")
    if resume:
        log.info("train.distributed keeps no checkpoint: training starts over")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    if d.threads:
        env["OMP_NUM_THREADS"] = str(d.threads)
    endpoint = d.endpoint or f"127.0.0.1:{_free_port()}"
    if d.nodes == 1 and "GLOO_SOCKET_IFNAME" not in env and "lo" in {n for _, n in socket.if_nameindex()}:
        env["GLOO_SOCKET_IFNAME"] = "lo"  # one machine: the processes talk over loopback only
    if d.nodes > 1:
        others = " ; ".join(" ".join(command(spec, config, endpoint, run_id, r)) for r in range(1, d.nodes))
        log.info(f"train.distributed: {d.nodes} nodes; on each other node run: {others}")
        mlflow.set_tag("distributed.command", others[:5000])
    cmd = command(spec, config, endpoint, run_id, 0 if d.nodes > 1 else None)
    logfile = folder / "torchrun.log"
    with open(logfile, "w") as sink:
        # the stage's own folder: relative paths in the spec (a relative work_dir) mean the same to the ranks
        code = subprocess.run(cmd, env=env, cwd=os.getcwd(), stdout=sink, stderr=subprocess.STDOUT).returncode
    if code != 0 or not (folder / "result.json").exists():
        tail = "".join(logfile.read_text(errors="replace").splitlines(keepends=True)[-TAIL:])
        raise DistributedTrainingFailed(f"torchrun exited with {code} ({' '.join(cmd)}); log {logfile}:\n{tail}")
    net.load_state_dict(torch.load(folder / "weights.pt", map_location="cpu", weights_only=True))
    summary = json.loads((folder / "result.json").read_text())
    mlflow.log_metric("distributed_processes", summary.pop("world_size"))
    return TrainResult(**summary)


def _epoch_logger(client: MlflowClient, run_id: str) -> EpochMetrics:
    def log(epoch: int, metrics: dict) -> None:
        client.log_batch(run_id, metrics=[Metric(k, float(v), 0, epoch) for k, v in metrics.items()])
    return EpochMetrics(log)


def main(spec_path: str) -> int:
    """One rank: the stage's batches and model, the trainer under DDP; rank 0 logs and saves."""
    from pydantic import TypeAdapter

    from tasks.train import prepare_classifier

    spec = json.loads(Path(spec_path).read_text())
    config = TrainConfig.model_validate(spec["config"])
    world = distributed.init(config.distributed.backend)
    try:
        config = config.model_copy(update={"device": distributed.device_for(world, config.device),
                                           "progress": False})
        model = TypeAdapter(ClassifierConfig).validate_python(spec["model"])
        prepared = prepare_classifier(spec["corpus"], spec["augmented"], spec["tokenizer"], model, config,
                                      spec["pretrained"], spec["unfreeze"], spec["lr_decay"])
        callbacks = [_epoch_logger(MlflowClient(spec["tracking_uri"]), spec["run_id"])] if world.main else []
        result = train_classifier(prepared.net, prepared.train_batches, prepared.val_batches,
                                  len(spec["corpus"]["labels"]), config, callbacks=callbacks,
                                  words=prepared.tokenizer.tokens())
        if world.main:
            folder = Path(spec["folder"])
            save_tensors(prepared.net.state_dict(), folder / "weights.pt")
            summary = {"history": result.history, "best_epoch": result.best_epoch, "best_metric": result.best_metric,
                       "seconds": result.seconds, "stopped_early": result.stopped_early,
                       "throughput": result.throughput, "world_size": world.size}
            (folder / "result.json.part").write_text(json.dumps(summary))
            (folder / "result.json.part").replace(folder / "result.json")
    finally:
        distributed.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
