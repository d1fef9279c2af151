"""Adversarial training as trainer callbacks (the loop itself is ``lowlm.training.trainer``).

- ``EmbeddingPerturbation``: after each clean backward pass, the word embeddings of the batch are
  perturbed in the direction that raises the loss and the loss on the perturbed input is added:
  FGM (one step of size ``epsilon``, Miyato et al. 2017), PGD (``steps`` ascent steps of ``alpha``
  projected onto the ``epsilon`` ball; the last one trains), or FreeLB (every ascent step trains, with
  weight 1/steps; Zhu et al. 2020). The perturbation is L2-normalised per example over its embeddings.
  ASCC (Dong et al. 2021) replaces the L2 ball by the threat of a substitution attack: each word's
  embedding becomes the worst convex combination (``steps`` ascent steps on its softmax logits) of the
  embeddings of the words an attack may put in its place (``SubstitutionTable``).
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


NEG = -1e4  # the logit of a candidate slot that holds no word


class SubstitutionTable:
    """For every vocabulary id, the ids an attack may put in its place, padded with -1: the word itself
    first, then ``[UNK]`` (what an out-of-vocabulary synonym or a misspelling reads as), its WordNet
    synonyms in the vocabulary, and its ``neighbours`` nearest embeddings (cosine, refreshed with
    ``update_neighbours`` as the embeddings train). Stop words, specials and non-words keep only themselves.

    >>> table = SubstitutionTable(words, weight, synonyms=30, neighbours=15)   # doctest: +SKIP
    >>> table.ids[word_id]  # tensor([word_id, 1, synonym ids..., neighbour ids..., -1, ...])  # doctest: +SKIP
    """

    def __init__(self, words: Sequence[str], weight: torch.Tensor, synonyms: int, neighbours: int):
        from lowlm.robustness.words import is_stopword, wordnet_candidates
        from lowlm.text.tokenizer import UNK_ID

        index = {w: i for i, w in enumerate(words)}
        self.words, self.neighbours = list(words), neighbours
        self.attackable = torch.tensor([i > 3 and w.isalpha() and not is_stopword(w) for i, w in enumerate(words)])
        if synonyms and bool(self.attackable.any()):
            from lowlm.robustness.augment import check_wordnet

            check_wordnet()
        fixed = []
        for i, w in enumerate(self.words):
            if not self.attackable[i]:
                fixed.append([i])
                continue
            found = [index[s] for s in wordnet_candidates(w, synonyms) if s in index] if synonyms else []
            fixed.append(list(dict.fromkeys([i, UNK_ID, *[j for j in found if j != i]])))
        self.fixed = fixed
        self.update_neighbours(weight)

    def update_neighbours(self, weight: torch.Tensor) -> None:
        """Recompute the nearest-embedding part of every row from ``weight`` (the model's word embeddings)."""
        vocab = len(self.words)
        near = [[] for _ in range(vocab)]
        if self.neighbours:
            unit = torch.nn.functional.normalize(weight.detach()[:vocab].float().cpu(), dim=1)
            usable = torch.tensor([w.isalpha() for w in self.words])  # as the attack's neighbours: any word
            rows = self.attackable.nonzero().flatten()
            for chunk in rows.split(2048):
                sims = unit[chunk] @ unit.T
                sims[:, ~usable] = -2.0
                sims[torch.arange(len(chunk)), chunk] = -2.0
                top = torch.topk(sims, min(self.neighbours, vocab), dim=1)
                for r, (idx, val) in zip(chunk.tolist(), zip(top.indices.tolist(), top.values.tolist())):
                    near[r] = [j for j, v in zip(idx, val) if v > -2.0]
        rows = [list(dict.fromkeys(f + n)) for f, n in zip(self.fixed, near)]
        width = max(len(r) for r in rows)
        self.ids = torch.full((vocab, width), -1, dtype=torch.long)
        for i, r in enumerate(rows):
            self.ids[i, : len(r)] = torch.tensor(r)


class EmbeddingPerturbation(Callback):
    """FGM, PGD, FreeLB or ASCC on the model's ``embedding`` output (see the module docstring); ASCC needs
    ``words``, the vocabulary by id."""

    def __init__(self, config: PerturbationConfig, words: Sequence[str] | None = None):
        if config.method == "ascc" and words is None:
            raise ValueError("perturbation ascc needs the vocabulary (words by id) to know each word's substitutes")
        self.config, self.words = config, words
        self.delta: torch.Tensor | None = None
        self.logits: torch.Tensor | None = None  # ASCC: (B, T, width) combination logits, when set
        self.output: torch.Tensor | None = None
        self.ids: torch.Tensor | None = None
        self.table: SubstitutionTable | None = None
        self.handle = None

    def _hook(self, module, inputs, output):
        if self.logits is not None:  # ASCC: each word's embedding becomes a combination of its substitutes'
            candidates = self.table.ids.to(output.device)[inputs[0]]  # (B, T, width)
            weights = torch.softmax(self.logits, dim=-1)
            rows = torch.nn.functional.embedding(candidates.clamp_min(0), module.weight, module.padding_idx)
            output = (weights.unsqueeze(-1) * rows).sum(-2)
        elif self.delta is not None:
            output = output + self.delta
        elif output.requires_grad:
            output.retain_grad()  # the clean pass's gradient is FGM's direction
        self.output, self.ids = output, inputs[0]
        return output

    def on_train_begin(self, trainer):
        embedding = getattr(trainer.model, "embedding", None)
        if embedding is None:
            raise TypeError(f"{type(trainer.model).__name__} has no `embedding` to perturb")
        if self.config.method == "ascc":
            if not isinstance(embedding, torch.nn.Embedding):
                raise TypeError(f"perturbation ascc needs one embedding per token; {type(trainer.model).__name__}'s "
                                f"`embedding` is a {type(embedding).__name__}")
            self.table = SubstitutionTable(self.words, embedding.weight, self.config.synonyms, self.config.neighbours)
        self.handle = embedding.register_forward_hook(self._hook)

    def on_epoch_begin(self, trainer, epoch):
        if self.table is not None and epoch > 1:  # the nearest embeddings move as the embeddings train
            self.table.update_neighbours(trainer.model.embedding.weight)

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

    def ascc_loss(self, trainer, batch) -> torch.Tensor:
        """The loss with every word at the worst combination of its substitutes found in ``steps`` ascent
        steps from their average (call after the clean pass, which recorded the ids)."""
        cfg = self.config
        candidates = self.table.ids.to(self.ids.device)[self.ids]
        logits = torch.where(candidates >= 0, 0.0, NEG)
        for _ in range(cfg.steps):
            logits.requires_grad_(True)
            self.logits = logits
            (grad,) = torch.autograd.grad(self._loss(trainer, batch), logits)
            grad = grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)
            logits = torch.where(candidates >= 0, logits.detach() + cfg.alpha * grad, NEG)
        self.logits = logits
        return self._loss(trainer, batch)

    def on_backward(self, trainer, batch):
        cfg = self.config
        try:
            if cfg.method == "ascc":
                if self.ids is not None:
                    (cfg.weight * self.ascc_loss(trainer, batch)).backward()
                return
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
            self.delta = self.logits = None
            self.output = self.ids = None


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
