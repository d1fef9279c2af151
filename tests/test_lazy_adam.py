"""LazyAdam against torch.optim.SparseAdam: the same rows, the same updates, and a checkpoint round trip."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from lowlm.config import BagOfNgramsConfig, TrainConfig
from lowlm.models.classifier import BagOfNgrams
from lowlm.training.lazy_adam import LazyAdam
from lowlm.training.optim import make_optimizers

ROWS, DIM, LABELS = 500, 16, 5
USED = 300  # batches draw ids from rows 1..USED-1 only, so rows USED.. never get a gradient


class Problem(nn.Module):
    """A mean embedding bag (sparse gradients, padding row 0) and a linear head."""

    def __init__(self):
        super().__init__()
        self.bag = nn.EmbeddingBag(ROWS, DIM, mode="mean", sparse=True, padding_idx=0)
        self.head = nn.Linear(DIM, LABELS)

    def forward(self, ids):
        return self.head(self.bag(ids))


def batches(steps: int, seed: int = 0):
    """Random padded batches with repeated ids in a row and across rows (so gradients need coalescing)."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        ids = torch.randint(1, USED, (32, 12), generator=g)
        ids[:, -3:] = ids[:, :3]  # every row repeats three of its ids
        ids[:, 8:9] = 0  # padding inside rows
        yield ids, torch.randint(0, LABELS, (32,), generator=g)


def sparse_grad(model: Problem, ids, labels) -> torch.Tensor:
    model.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(ids), labels).backward()
    grad = model.bag.weight.grad
    assert grad.is_sparse and not grad.is_coalesced()
    return grad


def test_same_updates_as_sparse_adam_and_untouched_rows_stay():
    torch.manual_seed(0)
    model = Problem()
    start = model.bag.weight.detach().clone()
    ours_w = nn.Parameter(start.clone())
    torch_w = nn.Parameter(start.clone())
    ours, reference = LazyAdam([ours_w], lr=0.05), torch.optim.SparseAdam([torch_w], lr=0.05)
    touched = torch.zeros(ROWS, dtype=torch.bool)
    for step, (ids, labels) in enumerate(batches(12), 1):
        grad = sparse_grad(model, ids, labels)  # the same gradient for both optimisers
        touched[grad.coalesce().indices()[0]] = True
        ours_w.grad, torch_w.grad = grad.clone(), grad.clone()
        if step == 7:  # a scheduler changes the group's lr between steps
            for opt in (ours, reference):
                opt.param_groups[0]["lr"] = 0.01
        ours.step()
        reference.step()
        torch.testing.assert_close(ours_w, torch_w, rtol=0, atol=1e-6)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(ours.state[ours_w][key], reference.state[torch_w][key], rtol=0, atol=1e-6)
        assert ours.state[ours_w]["step"] == reference.state[torch_w]["step"] == step
        with torch.no_grad():  # the training signal moves the model too, so later gradients differ
            model.bag.weight.copy_(ours_w)
    assert touched[1:USED].any() and not touched[USED:].any()
    moved = (ours_w.detach() != start).any(dim=1)
    # every touched row moved (row 0 is padding: its gradient is zero) and no untouched row did
    assert torch.equal(moved, touched & (torch.arange(ROWS) != 0))
    assert torch.equal(ours_w.detach()[~touched], start[~touched])
    assert torch.equal(ours.state[ours_w]["exp_avg"][~touched], torch.zeros(int((~touched).sum()), DIM))


def test_an_empty_gradient_counts_a_step_and_changes_nothing():
    w = nn.Parameter(torch.randn(10, 4))
    before = w.detach().clone()
    opt = LazyAdam([w], lr=0.1)
    w.grad = torch.sparse_coo_tensor(torch.empty(1, 0, dtype=torch.long), torch.empty(0, 4), (10, 4),
                                     check_invariants=True)
    opt.step()
    assert opt.state[w]["step"] == 1 and torch.equal(w.detach(), before)


def test_checkpoint_round_trip_and_into_sparse_adam():
    torch.manual_seed(1)
    model = Problem()
    steps = list(batches(8, seed=3))
    grads = [sparse_grad(model, ids, labels).coalesce() for ids, labels in steps]
    w = nn.Parameter(model.bag.weight.detach().clone())
    opt = LazyAdam([w], lr=0.02)
    for grad in grads[:4]:
        w.grad = grad.clone()
        opt.step()
    saved_w, saved_state = w.detach().clone(), copy.deepcopy(opt.state_dict())

    def resume(optimizer_class):
        w2 = nn.Parameter(saved_w.clone())
        opt2 = optimizer_class([w2], lr=0.5)  # lr comes from the checkpoint
        opt2.load_state_dict(copy.deepcopy(saved_state))
        for grad in grads[4:]:
            w2.grad = grad.clone()
            opt2.step()
        return w2, opt2

    for grad in grads[4:]:  # the uninterrupted run
        w.grad = grad.clone()
        opt.step()
    resumed, opt2 = resume(LazyAdam)
    assert opt2.param_groups[0]["lr"] == 0.02 and opt2.state[resumed]["step"] == 8
    assert torch.equal(resumed, w)
    sparse_adam, _ = resume(torch.optim.SparseAdam)
    torch.testing.assert_close(sparse_adam, w, rtol=0, atol=1e-6)


def test_make_optimizers_picks_the_sparse_optimizer():
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=8, buckets=100), 50, 3)
    kinds = {}
    for name in ("sparse_adam", "lazy_adam"):
        opts = make_optimizers(model, TrainConfig(lr=0.01, sparse_optimizer=name))
        assert isinstance(opts[0], torch.optim.AdamW)
        kinds[name] = type(opts[1])
        assert opts[1].param_groups[0]["params"] == [model.embedding.weight]
    assert kinds == {"sparse_adam": torch.optim.SparseAdam, "lazy_adam": LazyAdam}
    assert TrainConfig().sparse_optimizer == "lazy_adam"  # the default since benchmarks/lazy_adam_step.py


def test_rejects_dense_gradients():
    w = nn.Parameter(torch.randn(4, 2))
    w.grad = torch.ones(4, 2)
    with pytest.raises(RuntimeError, match="sparse gradients"):
        LazyAdam([w]).step()
