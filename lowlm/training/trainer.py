"""The one training loop. Every model lowlm trains goes through ``Trainer.fit``: read it top to bottom.

What differs between tasks is an *objective* (the loss of a batch, the validation metrics, which
metric selects the best epoch); what a run adds is a *callback* (logging, an extra loss term, a
perturbation after the backward pass, unfreezing layers on a schedule, checkpoints). The loop itself
owns the device, seeds, optimizers and parameter groups, the learning-rate schedule, clipping, the
progress bar, early stopping with the best epoch's weights restored, and resuming from a checkpoint
(model, optimizers, schedules, early-stopping state, random generators and data order).

>>> import torch
>>> from lowlm.config import TrainConfig
>>> from lowlm.training.objectives import FeatureObjective
>>> x, y = torch.randn(40, 3), torch.arange(40) % 2
>>> head = torch.nn.Linear(3, 2)
>>> cfg = TrainConfig(epochs=5, lr=0.1, warmup_ratio=0, progress=False)
>>> result = Trainer(head, FeatureObjective(), cfg).fit([(x, y)])
>>> len(result.history), result.history[-1]["train_loss"] < result.history[0]["train_loss"]
(5, True)
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lowlm.config import TrainConfig
from lowlm.files import save_tensors
from lowlm.training import distributed
from lowlm.training.optim import make_optimizers, sparse_parameters


@dataclass
class Loss:
    """A batch's loss and how many units (rows, target tokens) it averages over."""

    value: torch.Tensor
    count: int


class Objective(Protocol):
    """What a task brings to the loop."""

    unit: str  # what ``Loss.count`` counts: "rows", "tokens"

    def loss(self, model: nn.Module, batch, device: torch.device) -> Loss: ...

    def evaluate(self, model: nn.Module, validation, device: torch.device) -> dict[str, float]:
        """Validation metrics, named ``val_*``."""

    def score(self, metrics: dict[str, float]) -> float:
        """The number that selects the best epoch (higher is better)."""


class Callback:
    """Hooks into the loop; override the events you need. ``trainer`` gives access to everything."""

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_loss(self, trainer: "Trainer", batch, loss: torch.Tensor) -> torch.Tensor:
        """Return the loss to minimise: add a regulariser or an adversarial term here."""
        return loss

    def on_backward(self, trainer: "Trainer", batch) -> None:
        """After ``backward``, before clipping and the step: perturb-and-accumulate (FGM, PGD) goes here."""

    def on_step_end(self, trainer: "Trainer", step: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, metrics: dict[str, float]) -> None: ...

    def on_train_end(self, trainer: "Trainer", result: "TrainResult") -> None: ...


class EpochMetrics(Callback):
    """Calls ``fn(epoch, metrics)`` after every epoch (e.g. ``mlflow.log_metrics(metrics, step=epoch)``)."""

    def __init__(self, fn: Callable[[int, dict], None]):
        self.fn = fn

    def on_epoch_end(self, trainer, epoch, metrics):
        self.fn(epoch, metrics)


class Checkpoint(Callback):
    """Saves everything needed to resume (``Trainer.fit(..., resume=path)``) after every ``every`` epochs."""

    def __init__(self, path: str | Path, every: int = 1):
        self.path, self.every = Path(path), every

    def on_epoch_end(self, trainer, epoch, metrics):
        if epoch % self.every == 0:
            trainer.save_checkpoint(self.path)


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one dict of metrics per epoch
    best_epoch: int = 0
    best_metric: float = float("-inf")
    seconds: float = 0.0
    stopped_early: bool = False
    throughput: float = 0.0  # objective units (rows, target tokens) per second of training steps


class EarlyStopping:
    """Keeps the best epoch's weights (on the CPU) and says when ``patience`` epochs brought nothing better."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_metric, self.best_epoch, self.bad_epochs = float("-inf"), 0, 0
        self.best_state: dict | None = None

    def update(self, model: nn.Module, epoch: int, score: float) -> bool:
        """Record an epoch's validation score (higher is better); True means stop now."""
        if score > self.best_metric:
            self.best_metric, self.best_epoch, self.bad_epochs = score, epoch, 0
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            return False
        self.bad_epochs += 1
        return bool(self.patience) and self.bad_epochs >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        self.best_metric, self.best_epoch = state["best_metric"], state["best_epoch"]
        self.bad_epochs, self.best_state = state["bad_epochs"], state["best_state"]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_lambda(schedule: str, total_steps: int | Callable[[], int], warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at a step: linear warm-up, then the chosen decay.
    ``total_steps`` may be a function, read at every step (the trainer's estimate, which grows when a
    callback adds rows to the training data).

    ``slanted_triangular`` (ULMFiT's STLR): a short linear rise over the warm-up, a long linear fall,
    from and to 1/32 of the peak.

    >>> f = lr_lambda("linear", 100, 10); f(0), f(10), round(f(55), 2), f(100)
    (0.1, 1.0, 0.5, 0.0)
    >>> g = lr_lambda("slanted_triangular", 100, 10); g(0), g(10), g(100)
    (0.03125, 1.0, 0.03125)
    """
    total = total_steps if callable(total_steps) else (lambda: total_steps)

    def f(step: int) -> float:
        if schedule == "slanted_triangular":
            if step < warmup_steps:
                p = step / warmup_steps
            else:
                p = 1.0 - min(1.0, (step - warmup_steps) / max(1, total() - warmup_steps))
            return (1 + 31 * p) / 32
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total() - warmup_steps))
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Trains ``model`` in place for ``objective`` under ``config``; see the module docstring.

    ``param_groups``: optimizer groups (``{"params": [...], "lr": ...}``) for discriminative learning
    rates; by default every parameter, with weight decay on matrices only. ``trainable``: train only
    these tensors (the rest are frozen for the run and unfrozen afterwards).
    """

    def __init__(self, model: nn.Module, objective: Objective, config: TrainConfig,
                 callbacks: Sequence[Callback] = (), param_groups: list[dict] | None = None,
                 trainable: Iterable[nn.Parameter] | None = None):
        self.model, self.objective, self.config = model, objective, config
        self.callbacks = list(callbacks)
        self.param_groups = param_groups
        self.trainable = None if trainable is None else list(trainable)
        self.device = resolve_device(config.device)
        self.epoch = self.step = 0
        self.result = TrainResult()
        self.stopper = EarlyStopping(config.patience)
        self.optimizers: list[torch.optim.Optimizer] = []
        self.schedulers: list[torch.optim.lr_scheduler.LRScheduler] = []
        self.train_data = None
        self.total_steps = 0
        self.world = distributed.World()
        self.forward_model = model  # what computes the training loss: the model, or its DDP wrapper

    def fit(self, train, validation=None, resume: str | Path | None = None) -> TrainResult:
        """Train on ``train`` (re-iterable batches), select epochs on ``validation`` (or keep the last
        epoch when there is none); return the history. The model ends on the CPU with the best weights."""
        cfg = self.config
        seed_everything(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        frozen = []
        if self.trainable is not None:
            keep = {id(p) for p in self.trainable}
            frozen = [p for p in self.model.parameters() if id(p) not in keep and p.requires_grad]
            for p in frozen:
                p.requires_grad_(False)
        self.model.to(self.device)
        self.world = distributed.current()
        if self.world.size > 1:  # under torchrun: this rank's share of every global batch, gradients all-reduced
            train = distributed.RankBatches(train, self.world)
            self.forward_model = nn.parallel.DistributedDataParallel(self.model)
        self.train_data = train
        try:
            self._build_optimizers(len(train))
            if resume is not None:
                self.load_checkpoint(resume)
            return self._loop(train, validation)
        finally:
            self.model.to("cpu")  # callers save and serve from the CPU
            for p in frozen:
                p.requires_grad_(True)

    def _build_optimizers(self, steps_per_epoch: int) -> None:
        cfg = self.config
        self.optimizers = make_optimizers(self.model, cfg, self.param_groups)
        self.total_steps = cfg.epochs * steps_per_epoch
        schedule = lr_lambda(cfg.schedule, lambda: self.total_steps, int(cfg.warmup_ratio * self.total_steps))
        self.schedulers = [torch.optim.lr_scheduler.LambdaLR(o, schedule) for o in self.optimizers]

    def _loop(self, train, validation) -> TrainResult:
        cfg, model, objective, result = self.config, self.model, self.objective, self.result
        sparse = {id(p) for p in sparse_parameters(model)}
        dense = [p for p in model.parameters() if id(p) not in sparse]
        start, train_seconds, units = time.perf_counter() - result.seconds, 0.0, 0
        self._call("on_train_begin")
        while self.epoch < cfg.epochs and not result.stopped_early:
            self.epoch += 1
            epoch = self.epoch
            self._call("on_epoch_begin", epoch)
            # the steps still to come, as the data stands now (a callback may have added rows)
            self.total_steps = self.step + (cfg.epochs - epoch + 1) * len(train)
            model.train()
            epoch_start, running, seen = time.perf_counter(), 0.0, 0
            # disable=None: a bar on a terminal, nothing in logs and pipes
            bar = tqdm(train, desc=f"epoch {epoch}/{cfg.epochs}", disable=None if cfg.progress else True, leave=False)
            for batch in bar:
                weight = 1.0
                if isinstance(batch, distributed.Share):  # the rank's share: weighted so the mean gradient is global
                    batch, weight = batch.batch, batch.weight
                out = objective.loss(self.forward_model, batch, self.device)
                loss = out.value * weight if weight != 1.0 else out.value
                for cb in self.callbacks:
                    loss = cb.on_loss(self, batch, loss)
                for opt in self.optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                self._call("on_backward", batch)
                if cfg.grad_clip and dense:
                    nn.utils.clip_grad_norm_(dense, cfg.grad_clip)
                for opt, sched in zip(self.optimizers, self.schedulers):
                    opt.step()
                    sched.step()
                self.step += 1
                value = loss.item() / weight if weight else 0.0  # this rank's mean loss over its rows
                count = out.count if weight else 0
                running += value * count
                seen += count
                bar.set_postfix(loss=f"{running / max(1, seen):.4f}")
                self._call("on_step_end", self.step, value)
            elapsed = time.perf_counter() - epoch_start
            running, seen = distributed.sum_over_ranks(running, seen)  # the global batches' mean loss
            train_seconds, units = train_seconds + elapsed, units + seen
            metrics = objective.evaluate(model, validation, self.device) if validation is not None else {}
            metrics["train_loss"] = running / max(1, seen)
            metrics[f"{objective.unit}_per_second"] = seen / max(elapsed, 1e-9)
            metrics["lr"] = self.schedulers[0].get_last_lr()[0] if self.schedulers else 0.0
            metrics["seconds"] = time.perf_counter() - start
            result.history.append(metrics)
            score = objective.score(metrics) if validation is not None else float(epoch)
            result.stopped_early = self.stopper.update(model, epoch, score)
            result.seconds = time.perf_counter() - start
            self._call("on_epoch_end", epoch, metrics)
        self.stopper.restore(model)
        result.best_metric, result.best_epoch = self.stopper.best_metric, self.stopper.best_epoch
        if validation is None:
            result.best_metric = float("nan")
        result.seconds = time.perf_counter() - start
        result.throughput = units / max(train_seconds, 1e-9)
        self._call("on_train_end", result)
        return result

    def _call(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(self, *args)

    # -- checkpoints ------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Everything needed to go on from here; plain tensors and numbers (loads with ``weights_only``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        generator = getattr(self.train_data, "generator", None)
        np_state = np.random.get_state()
        state = {
            "epoch": self.epoch, "step": self.step, "model": self.model.state_dict(),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "schedulers": [s.state_dict() for s in self.schedulers],
            "stopper": self.stopper.state_dict(),
            "result": {"history": self.result.history, "seconds": self.result.seconds,
                       "stopped_early": self.result.stopped_early},
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate(),
                    "numpy": [np_state[0], torch.from_numpy(np_state[1].copy()), *np_state[2:]],
                    "data": generator.get_state() if generator is not None else None},
            "extra_rows": _extra_rows(self.train_data),
        }
        return save_tensors(state, path)  # never a half-written checkpoint; a full disk says so

    def load_checkpoint(self, path: str | Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.model.to(self.device)
        for opt, s in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(s)
        for sched, s in zip(self.schedulers, state["schedulers"]):
            sched.load_state_dict(s)
        self.stopper.load_state_dict(state["stopper"])
        self.epoch, self.step = state["epoch"], state["step"]
        self.result.history = list(state["result"]["history"])
        self.result.seconds = state["result"]["seconds"]
        self.result.stopped_early = state["result"]["stopped_early"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        random.setstate(_as_tuples(rng["python"]))
        numpy = rng["numpy"]
        np.random.set_state((numpy[0], numpy[1].numpy(), *numpy[2:]))
        generator = getattr(self.train_data, "generator", None)
        if generator is not None and rng["data"] is not None:
            generator.set_state(rng["data"])
        extra = state.get("extra_rows")
        if extra is not None and hasattr(self.train_data, "set_extra"):
            ids = extra["ids"].split(extra["lengths"].tolist()) if len(extra["lengths"]) else []
            self.train_data.set_extra([r.tolist() for r in ids], extra["labels"])


def _extra_rows(data) -> dict | None:
    """Rows a callback added to the training data (``Batches.set_extra``), as plain tensors."""
    ids = getattr(data, "extra_ids", None)
    if ids is None:
        return None
    flat = [i for row in ids for i in row]
    return {"ids": torch.tensor(flat, dtype=torch.long), "lengths": torch.tensor([len(r) for r in ids], dtype=torch.long),
            "labels": data.extra_labels}


def _as_tuples(value):
    return tuple(_as_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value
