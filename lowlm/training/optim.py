"""Optimizers for the trainer: AdamW for dense parameters, a lazy Adam (or torch's SparseAdam) for
sparse embedding tables."""

from __future__ import annotations

import torch
from torch import nn

from lowlm.config import TrainConfig
from lowlm.training.lazy_adam import LazyAdam


def sparse_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Parameters of modules that produce sparse gradients (``module.sparse`` is true: EmbeddingBag tables)."""
    return [p for m in model.modules() if getattr(m, "sparse", False) for p in m.parameters(recurse=False)]


def make_optimizers(model: nn.Module, cfg: TrainConfig, param_groups: list[dict] | None = None
                    ) -> list[torch.optim.Optimizer]:
    """AdamW for dense parameters (no decay on biases, norms, embeddings); for sparse tables LazyAdam, or
    torch's SparseAdam with ``cfg.sparse_optimizer == "sparse_adam"`` (the same updates, slower).

    Frozen parameters are included (they get no gradient, so nothing moves them), so unfreezing them
    later in a run needs no new optimizer. ``param_groups`` replaces the dense groups: each a dict
    with ``params`` and optionally ``lr`` / ``weight_decay`` (discriminative learning rates).
    """
    sparse = sparse_parameters(model)
    sparse_ids = {id(p) for p in sparse}
    if param_groups is None:
        decay, no_decay, seen = [], [], set(sparse_ids)
        for module in model.modules():
            for p in module.parameters(recurse=False):
                if id(p) in seen:  # sparse, or shared (tied weights) and grouped by its first module
                    continue
                seen.add(id(p))
                if p.ndim < 2 or isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
                    no_decay.append(p)
                else:
                    decay.append(p)
        param_groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                        {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in param_groups if g["params"]]
    optimizers: list[torch.optim.Optimizer] = []
    if groups:
        optimizers.append(torch.optim.AdamW(groups, lr=cfg.lr))
    if sparse:
        sparse_adam = LazyAdam if cfg.sparse_optimizer == "lazy_adam" else torch.optim.SparseAdam
        optimizers.append(sparse_adam(sparse, lr=cfg.lr))
    return optimizers
