"""An explicit training loop for the classifiers: nothing hidden, read it top to bottom.

AdamW (SparseAdam for sparse embedding tables), linear warm-up then linear or cosine decay,
gradient clipping, early stopping on a validation metric with the best weights restored, seeds,
a progress bar, and a callback per epoch so a caller (an MLflow-logging task) sees the metrics.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from lowlm.batching import Batches
from lowlm.config import TrainConfig
from lowlm.metrics import accuracy, macro_f1

EpochCallback = Callable[[int, dict], None]


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one dict of metrics per epoch
    best_epoch: int = 0
    best_metric: float = float("-inf")
    seconds: float = 0.0
    stopped_early: bool = False


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


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """Multiplier of the base learning rate at a step: linear warm-up, then the chosen decay.

    >>> f = lr_lambda("linear", 100, 10); f(0), f(10), round(f(55), 2), f(100)
    (0.1, 1.0, 0.5, 0.0)
    """

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(1.0, progress)
        if schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0 - progress

    return f


def make_optimizers(model: nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW for dense parameters (no decay on biases, norms, embeddings); SparseAdam for sparse tables."""
    sparse, decay, no_decay = [], [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if getattr(module, "sparse", False):
                sparse.append(p)
            elif p.ndim < 2 or isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                no_decay.append(p)
            else:
                decay.append(p)
    optimizers = []
    groups = [g for g in ({"params": decay, "weight_decay": cfg.weight_decay},
                          {"params": no_decay, "weight_decay": 0.0}) if g["params"]]
    if groups:
        optimizers.append(torch.optim.AdamW(groups, lr=cfg.lr))
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=cfg.lr))
    return optimizers


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@torch.no_grad()
def predict_proba(model: nn.Module, batches: Batches) -> torch.Tensor:
    """Class probabilities for every row, in the rows' original order (on the CPU)."""
    model.eval()
    device = next(model.parameters()).device
    out = None
    for batch in batches:
        probs = torch.softmax(model(batch.ids.to(device), batch.lengths.to(device)), dim=-1).cpu()
        if out is None:
            out = torch.empty(len(batches.ids), probs.shape[1])
        out[batch.index] = probs
    return out if out is not None else torch.empty(0, 0)


def evaluate(model: nn.Module, batches: Batches, num_labels: int) -> dict:
    """loss, accuracy and macro-F1 of the model on labelled batches."""
    probs = predict_proba(model, batches)
    labels = batches.labels
    loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-12)), labels).item()
    pred = probs.argmax(dim=1).tolist()
    return {"loss": loss, "accuracy": accuracy(labels.tolist(), pred),
            "macro_f1": macro_f1(labels.tolist(), pred, num_labels)}


def fit(model: nn.Module, train: Batches, validation: Batches, num_labels: int, cfg: TrainConfig,
        on_epoch: EpochCallback | None = None, parameters: list[nn.Parameter] | None = None) -> TrainResult:
    """Train ``model`` in place; on return it holds the weights of its best validation epoch.

    ``parameters`` restricts training to those tensors (the rest are frozen for the run).
    """
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    frozen = []
    if parameters is not None:
        keep = {id(p) for p in parameters}
        frozen = [p for p in model.parameters() if id(p) not in keep and p.requires_grad]
        for p in frozen:
            p.requires_grad_(False)
    model.to(resolve_device(cfg.device))
    try:
        return _loop(model, train, validation, num_labels, cfg, on_epoch)
    finally:
        model.to("cpu")  # callers save and serve from the CPU
        for p in frozen:
            p.requires_grad_(True)


def _loop(model, train, validation, num_labels, cfg, on_epoch) -> TrainResult:
    optimizers = make_optimizers(model, cfg)
    total = cfg.epochs * len(train)
    schedule = lr_lambda(cfg.schedule, total, int(cfg.warmup_ratio * total))
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, schedule) for opt in optimizers]
    dense_params = [p for p in model.parameters() if p.requires_grad and not _is_sparse(model, p)]
    device = next(model.parameters()).device
    result, stopper = TrainResult(), EarlyStopping(cfg.patience)
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        running, seen = 0.0, 0
        # disable=None: a bar on a terminal, nothing in logs and pipes
        bar = tqdm(train, desc=f"epoch {epoch}/{cfg.epochs}", disable=None if cfg.progress else True, leave=False)
        for batch in bar:
            labels = batch.labels.to(device)
            logits = model(batch.ids.to(device), batch.lengths.to(device))
            loss = nn.functional.cross_entropy(logits, labels)
            for opt in optimizers:
                opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip and dense_params:
                torch.nn.utils.clip_grad_norm_(dense_params, cfg.grad_clip)
            for opt, sched in zip(optimizers, schedulers):
                opt.step()
                sched.step()
            running += loss.item() * len(labels)
            seen += len(labels)
            bar.set_postfix(loss=f"{running / seen:.4f}")
        metrics = {f"val_{k}": v for k, v in evaluate(model, validation, num_labels).items()}
        metrics["train_loss"] = running / max(1, seen)
        metrics["lr"] = schedulers[0].get_last_lr()[0] if schedulers else 0.0
        metrics["seconds"] = time.perf_counter() - start
        result.history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        if stopper.update(model, epoch, metrics[f"val_{cfg.metric}"]):
            result.stopped_early = True
            break
    stopper.restore(model)
    result.best_metric, result.best_epoch = stopper.best_metric, stopper.best_epoch
    result.seconds = time.perf_counter() - start
    return result


def _is_sparse(model: nn.Module, param: nn.Parameter) -> bool:
    return any(getattr(m, "sparse", False) and any(p is param for p in m.parameters(recurse=False))
               for m in model.modules())
