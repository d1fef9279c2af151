"""The training loop for sequence-to-sequence models, as explicit as the classifier's (``lowlm.train``).

Teacher forcing with label smoothing, AdamW with warm-up and decay, gradient clipping, and early
stopping on a validation metric computed on decoded, detokenised text (BLEU, chrF or ROUGE-L), with
the best weights restored. Reports target tokens per second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from lowlm.batching import pad
from lowlm.config import Seq2SeqTrainConfig
from lowlm.metrics import bleu, chrf, rouge
from lowlm.models.seq2seq import Seq2Seq, sequence_loss
from lowlm.train import EarlyStopping, lr_lambda, make_optimizers, resolve_device, seed_everything
from lowlm.translator import Translator

EpochCallback = Callable[[int, dict], None]


@dataclass
class PairBatch:
    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt: torch.Tensor  # [BOS] ... [EOS], right-padded
    index: torch.Tensor


class PairBatches:
    """Length-grouped, seeded batches of (source ids, target ids) pairs; re-iterable."""

    def __init__(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]], batch_size: int = 64,
                 shuffle: bool = False, seed: int = 0):
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} sources but {len(tgt)} targets")
        self.src, self.tgt = list(src), list(tgt)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = torch.Generator().manual_seed(seed)
        self.lengths = torch.tensor([len(s) + len(t) for s, t in zip(self.src, self.tgt)])

    def __len__(self) -> int:
        return (len(self.src) + self.batch_size - 1) // self.batch_size

    @property
    def target_tokens(self) -> int:
        return sum(len(t) - 1 for t in self.tgt)  # predicted positions: all but [BOS]

    def __iter__(self) -> Iterator[PairBatch]:
        n = len(self.src)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        batches = []
        for chunk in order.split(self.batch_size * 50):
            chunk = chunk[torch.argsort(self.lengths[chunk], stable=True)]
            batches.extend(chunk.split(self.batch_size))
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=self.generator).tolist()]
        for index in batches:
            rows = index.tolist()
            src, lengths = pad([self.src[i] for i in rows])
            tgt, _ = pad([self.tgt[i] for i in rows])
            yield PairBatch(src, lengths, tgt, index)


@dataclass
class Seq2SeqResult:
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_metric: float = float("-inf")
    seconds: float = 0.0
    tokens_per_second: float = 0.0
    stopped_early: bool = False


def score_texts(metric: str, hypotheses: list[str], references: list[str], bleu_tokenize: str = "13a") -> float:
    if metric == "bleu":
        return bleu(hypotheses, references, tokenize=bleu_tokenize)
    if metric == "chrf":
        return chrf(hypotheses, references)
    return rouge(hypotheses, references)["rougeL"]


@torch.no_grad()
def teacher_forced_loss(model: Seq2Seq, batches: PairBatches, device: torch.device) -> float:
    model.eval()
    total, count = 0.0, 0
    for b in batches:
        tgt = b.tgt.to(device)
        n = int((tgt[:, 1:] != 0).sum())
        total += sequence_loss(model(b.src.to(device), b.src_lengths.to(device), tgt), tgt[:, 1:]).item() * n
        count += n
    return total / max(1, count)


def fit_seq2seq(translator: Translator, train: PairBatches, validation: PairBatches,
                validation_sources: Sequence[str], validation_references: Sequence[str], cfg: Seq2SeqTrainConfig,
                on_epoch: EpochCallback | None = None) -> Seq2SeqResult:
    """Train ``translator.model`` in place; it ends with the weights of its best validation epoch (on the CPU)."""
    seed_everything(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model = translator.model
    device = resolve_device(cfg.device)
    model.to(device)
    try:
        return _loop(translator, train, validation, list(validation_sources)[: cfg.validation_max_pairs],
                     list(validation_references)[: cfg.validation_max_pairs], cfg, on_epoch, device)
    finally:
        model.to("cpu")


def _loop(translator, train, validation, sources, references, cfg, on_epoch, device) -> Seq2SeqResult:
    model = translator.model
    optimizers = make_optimizers(model, cfg)
    total = cfg.epochs * len(train)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, lr_lambda(cfg.schedule, total, int(cfg.warmup_ratio * total)))
                  for o in optimizers]
    result, stopper, train_seconds = Seq2SeqResult(), EarlyStopping(cfg.patience), 0.0
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        epoch_start, running, tokens = time.perf_counter(), 0.0, 0
        bar = tqdm(train, desc=f"epoch {epoch}/{cfg.epochs}", disable=None if cfg.progress else True, leave=False)
        for b in bar:
            tgt = b.tgt.to(device)
            logp = model(b.src.to(device), b.src_lengths.to(device), tgt)
            loss = sequence_loss(logp, tgt[:, 1:], cfg.label_smoothing)
            for o in optimizers:
                o.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            for o, s in zip(optimizers, schedulers):
                o.step()
                s.step()
            n = int((tgt[:, 1:] != 0).sum())
            running += loss.item() * n
            tokens += n
            bar.set_postfix(loss=f"{running / max(1, tokens):.3f}")
        train_seconds += time.perf_counter() - epoch_start
        metrics = {"train_loss": running / max(1, tokens), "tokens_per_second": tokens / (time.perf_counter() - epoch_start),
                   "val_loss": teacher_forced_loss(model, validation, device)}
        if cfg.metric != "loss":
            hypotheses = translator.translate(sources, beam_size=1, max_length=cfg.max_length)
            metrics[f"val_{cfg.metric}"] = score_texts(cfg.metric, hypotheses, references, cfg.bleu_tokenize)
        metrics["lr"] = schedulers[0].get_last_lr()[0]
        metrics["seconds"] = time.perf_counter() - start
        result.history.append(metrics)
        if on_epoch:
            on_epoch(epoch, metrics)
        score = -metrics["val_loss"] if cfg.metric == "loss" else metrics[f"val_{cfg.metric}"]
        if stopper.update(model, epoch, score):
            result.stopped_early = True
            break
    stopper.restore(model)
    result.best_metric, result.best_epoch = stopper.best_metric, stopper.best_epoch
    result.seconds = time.perf_counter() - start
    result.tokens_per_second = train.target_tokens * len(result.history) / max(train_seconds, 1e-9)
    return result
