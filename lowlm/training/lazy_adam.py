"""Lazy Adam: Adam for row-sparse gradients that reads and writes only the rows a step touched.

An embedding table with ``sparse=True`` gets a gradient that names a few rows (the tokens and
n-grams of one batch) out of many. For each such parameter ``w`` with moment tables ``m`` and ``v``
(as large as ``w``), and the rows ``R`` that appear in the gradient ``g`` of global step ``t``::

    m[R] <- beta1 * m[R] + (1 - beta1) * g[R]
    v[R] <- beta2 * v[R] + (1 - beta2) * g[R]**2
    w[R] <- w[R] - lr * sqrt(1 - beta2**t) / (1 - beta1**t) * m[R] / (sqrt(v[R]) + eps)

Rows outside ``R`` keep their weights and both moments (they are not decayed: that is what makes
it "lazy", and it is what ``torch.optim.SparseAdam`` computes too). ``t`` counts every step of the
parameter, so the bias correction is per global step, as in SparseAdam, not per row. As in
SparseAdam, ``eps`` is added to ``sqrt(v)`` before the bias correction is folded into the step size.

The update is non-linear in ``g``, so a row that appears several times in the sparse gradient (one
entry per token) must be summed first: the gradient is coalesced once. Then the touched rows of
``m`` and ``v`` are gathered with ``index_select``, updated as small dense blocks, and written back
with ``index_copy_``; the weights get ``index_add_``. SparseAdam does the same arithmetic through
``sparse_mask`` and sparse additions, which cost more than the plain gathers.

The state per parameter has SparseAdam's keys and types (``step`` an int, ``exp_avg`` and
``exp_avg_sq`` tensors shaped like the parameter), so ``state_dict`` / ``load_state_dict`` work as for
any ``torch.optim.Optimizer``, and a checkpoint of one optimizer loads into the other.
"""

from __future__ import annotations

import math

import torch

__all__ = ["LazyAdam"]


class LazyAdam(torch.optim.Optimizer):
    """Adam on the rows present in a row-sparse gradient (``nn.Embedding``/``nn.EmbeddingBag`` with
    ``sparse=True``); a drop-in for ``torch.optim.SparseAdam`` on such parameters.

    Args:
        params: dense parameters whose gradients are sparse COO tensors with one sparse dimension.
        lr: learning rate.
        betas: decay rates of the first and second moment.
        eps: added to ``sqrt(v)`` in the denominator.
    """

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        if not 0.0 < lr:
            raise ValueError(f"Invalid learning rate: {lr}")
        if not 0.0 < eps:
            raise ValueError(f"Invalid epsilon value: {eps}")
        for i, beta in enumerate(betas):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"Invalid beta parameter at index {i}: {beta}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps})
        for group in self.param_groups:
            for p in group["params"]:
                if p.is_sparse:
                    raise ValueError("LazyAdam needs dense parameter tensors (with sparse gradients)")
                if p.is_complex():
                    raise ValueError("LazyAdam does not support complex parameters")

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps = float(group["lr"]), group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if not grad.is_sparse:
                    raise RuntimeError("LazyAdam needs sparse gradients; use Adam or AdamW for dense ones")
                if grad.sparse_dim() != 1:
                    raise RuntimeError(f"LazyAdam needs row-sparse gradients (1 sparse dim), got {grad.sparse_dim()}")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1  # counted even for an empty gradient, as SparseAdam does
                grad = grad.coalesce()  # one entry per row: the update is non-linear in g
                rows, values = grad._indices()[0], grad._values()
                if values.numel() == 0:
                    continue
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                # m + (1 - beta1) * (g - m), the form SparseAdam evaluates, so the two round alike
                m = exp_avg.index_select(0, rows).lerp_(values, 1 - beta1)
                v = exp_avg_sq.index_select(0, rows).lerp_(values.square(), 1 - beta2)
                exp_avg.index_copy_(0, rows, m)
                exp_avg_sq.index_copy_(0, rows, v)
                t = state["step"]
                step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)
                p.index_add_(0, rows, m.div_(v.sqrt_().add_(eps)), alpha=-step_size)
        return loss
