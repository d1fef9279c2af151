"""Adversarial training as trainer callbacks (the loop itself is ``lowlm.training.trainer``).

- ``EmbeddingPerturbation``: after each clean backward pass, the word embeddings of the batch are
  perturbed in the direction that raises the loss and the loss on the perturbed input is added:
  FGM (one step of size ``epsilon``, Miyato et al. 2017), PGD (``steps`` ascent steps of ``alpha``
  projected onto the ``epsilon`` ball; the last one trains), or FreeLB (every ascent step trains, with
  weight 1/steps; Zhu et al. 2020). The perturbation is L2-normalised per example over its embeddings.
- ``AdversarialRefresh``: every N epochs after the clean ones, attack the model being trained on a
  fresh seeded sample of the training rows it can attack and train on the examples that fooled it
  (TextAttack's trainer); they replace the previous refresh's rows.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from lowlm.config.attack import AttackConfig, PerturbationConfig, RefreshConfig
from lowlm.training.trainer import Callback


def _per_example_unit(g: torch.Tensor) -> torch.Tensor:
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def _project(delta: torch.Tensor, epsilon: float) -> torch.Tensor:
    norm = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    scale = (epsilon / norm).clamp(max=1.0)
    return delta * scale.view(-1, *([1] * (delta.dim() - 1)))


class EmbeddingPerturbation(Callback):
    """FGM, PGD or FreeLB on the model's ``embedding`` output (see the module docstring)."""

    def __init__(self, config: PerturbationConfig):
        self.config = config
        self.delta: torch.Tensor | None = None
        self.output: torch.Tensor | None = None
        self.handle = None

    def _hook(self, module, inputs, output):
        if self.delta is not None:
            output = output + self.delta
        elif output.requires_grad:
            output.retain_grad()  # the clean pass's gradient is FGM's direction
        self.output = output
        return output

    def on_train_begin(self, trainer):
        embedding = getattr(trainer.model, "embedding", None)
        if embedding is None:
            raise TypeError(f"{type(trainer.model).__name__} has no `embedding` to perturb")
        self.handle = embedding.register_forward_hook(self._hook)

    def on_train_end(self, trainer, result):
        if self.handle is not None:
            self.handle.remove()
            self.handle = None

    def _loss(self, trainer, batch) -> torch.Tensor:
        return trainer.objective.loss(trainer.model, batch, trainer.device).value

    def fgm_loss(self, trainer, batch) -> torch.Tensor | None:
        """The loss on the batch with its embeddings moved ``epsilon`` along the clean loss's gradient
        (call after the clean backward pass); None when that pass left no gradient."""
        grad = self.output.grad if self.output is not None else None
        if grad is None:
            return None
        self.delta = self.config.epsilon * _per_example_unit(grad.detach())
        try:
            return self._loss(trainer, batch)
        finally:
            self.delta = None

    def on_backward(self, trainer, batch):
        cfg = self.config
        try:
            if cfg.method == "fgm":
                loss = self.fgm_loss(trainer, batch)
                if loss is not None:
                    (cfg.weight * loss).backward()
                return
            shape = self.output.shape
            if cfg.method == "freelb":  # a random start inside the ball
                delta = _project(torch.empty(shape, device=self.output.device).uniform_(-1, 1), cfg.epsilon)
            else:
                delta = torch.zeros(shape, device=self.output.device)
            for step in range(cfg.steps):
                delta.requires_grad_(True)
                self.delta = delta
                loss = self._loss(trainer, batch)
                if cfg.method == "freelb":
                    (loss / cfg.steps).backward()  # every ascent step trains
                    grad = delta.grad
                else:
                    (grad,) = torch.autograd.grad(loss, delta)
                delta = _project(delta.detach() + cfg.alpha * _per_example_unit(grad.detach()), cfg.epsilon)
            if cfg.method == "pgd":
                self.delta = delta
                (cfg.weight * self._loss(trainer, batch)).backward()
        finally:
            self.delta = None
            self.output = None


class AdversarialRefresh(Callback):
    """Every ``refresh.every`` epochs after ``refresh.clean_epochs``: attack the model on a seeded sample of
    ``texts`` and set the successful adversarial examples as the training data's extra rows.
    ``log(epoch, summary, rows)`` hears what each refresh found."""

    def __init__(self, texts: Sequence[str], labels: Sequence[int], tokenizer, label_names: Sequence[str],
                 attack_config: AttackConfig, log: Callable[[int, dict, int], None] | None = None):
        self.texts, self.labels = list(texts), list(labels)
        self.tokenizer, self.label_names = tokenizer, list(label_names)
        self.attack_config, self.refresh = attack_config, attack_config.refresh
        self.log = log
        self.history: list[dict] = []
        self.last_examples: list = []  # the rows the latest refresh added
        from lowlm.robustness.attack import attackable

        self.usable = [i for i, t in enumerate(self.texts) if attackable(t, attack_config)]  # what a sample draws from

    def due(self, epoch: int) -> bool:
        r: RefreshConfig = self.refresh
        return bool(r.every) and epoch > r.clean_epochs and (epoch - r.clean_epochs - 1) % r.every == 0

    def on_epoch_begin(self, trainer, epoch):
        if not self.due(epoch):
            return
        from lowlm.inference.classifier import TextClassifier
        from lowlm.robustness.attack import attack, sample_rows

        rows = [self.usable[i] for i in sample_rows(len(self.usable), self.refresh.sample_rows,
                                                    self.attack_config.seed + epoch)]
        victim = TextClassifier(trainer.model, self.tokenizer, self.label_names)
        run = attack(victim, [self.texts[i] for i in rows], [self.labels[i] for i in rows], self.attack_config)
        found = self.last_examples = run.successful()
        trainer.train_data.set_extra(self.tokenizer.encode_batch([e.adversarial for e in found]),
                                     [e.label for e in found])
        summary = run.summary()
        self.history.append({"epoch": epoch, "rows": len(found), **summary})
        if self.log is not None:
            self.log(epoch, summary, len(found))
