"""Magnitude pruning: the smallest weights set to zero, globally or layer by layer (``torch.nn.utils.prune``).

``prune_model`` masks the weight matrices of the linear and recurrent layers (and, when asked, the
embeddings); while the masks are attached a recovery fine-tune on the one trainer updates only the
surviving weights (the mask multiplies them back on every forward pass). ``make_permanent`` then folds
the masks into plain tensors, so the model saves and loads as any other.

>>> net = nn.Sequential(nn.Linear(20, 10), nn.ReLU(), nn.Linear(10, 2))
>>> pruned = prune_model(net, 0.75)
>>> make_permanent(net); round(sparsity(net, pruned), 2)
0.75
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune

RECURRENT = (nn.GRU, nn.LSTM, nn.GRUCell, nn.LSTMCell)


def prunable(model: nn.Module, embeddings: bool = False) -> list[tuple[nn.Module, str]]:
    """``(module, parameter name)`` of every weight matrix pruning may zero: linear layers' weights and the
    recurrent layers' input and hidden weights (biases never); embedding tables when ``embeddings``."""
    found = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            found.append((module, "weight"))
        elif isinstance(module, RECURRENT):
            found += [(module, name) for name, _ in module.named_parameters(recurse=False) if name.startswith("weight")]
        elif embeddings and isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
            found.append((module, "weight"))
    return found


def prune_model(model: nn.Module, amount: float, scope: str = "global",
                embeddings: bool = False) -> list[tuple[nn.Module, str]]:
    """Mask the ``amount`` (0-1) of smallest-magnitude weights: over all prunable matrices at once
    (``global``: layers that matter less lose more) or ``layer`` by layer (each loses ``amount``).
    Returns the pruned ``(module, name)`` pairs."""
    if not 0 <= amount < 1:
        raise ValueError(f"pruning amount {amount}: expected a fraction in [0, 1)")
    targets = prunable(model, embeddings)
    if scope == "global":
        prune.global_unstructured(targets, pruning_method=prune.L1Unstructured, amount=amount)
    elif scope == "layer":
        for module, name in targets:
            prune.l1_unstructured(module, name, amount=amount)
    else:
        raise ValueError(f"pruning scope {scope!r}: expected global or layer")
    return targets


def make_permanent(model: nn.Module) -> None:
    """Fold every pruning mask into its weight (plain parameters again, zeros where pruned)."""
    for module in model.modules():
        for name in [k[: -len("_orig")] for k, _ in module.named_parameters(recurse=False) if k.endswith("_orig")]:
            prune.remove(module, name)
        if isinstance(module, RECURRENT) and hasattr(module, "_init_flat_weights"):
            module._init_flat_weights()  # the RNN's kernel reads its weights from this list


@torch.no_grad()
def sparsity(model: nn.Module, targets: list[tuple[nn.Module, str]] | None = None) -> float:
    """Share of zeros over ``targets`` (default: every prunable matrix)."""
    targets = targets if targets is not None else prunable(model)
    zeros = sum(int((getattr(m, n) == 0).sum()) for m, n in targets)
    return zeros / max(1, sum(getattr(m, n).numel() for m, n in targets))
