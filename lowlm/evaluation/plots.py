"""Figures for interpretability: confusion matrix, training curves, attention over a sentence.

Each function returns a matplotlib Figure (Agg backend, no display needed); callers save or log it.
"""

from __future__ import annotations

from functools import cache
from typing import Sequence

import numpy as np


def _pyplot():
    """matplotlib's pyplot on the Agg backend, imported on first use: a run whose stages are all
    cached draws nothing, and importing matplotlib costs it a second or two."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@cache
def _cjk_fallback() -> str | None:
    """Let text fall back to a CJK font for Chinese/Japanese/Korean tokens, when one is installed
    (Debian: fonts-noto-cjk, installed by `make fonts`); returns its name, or None (boxes are drawn)."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name}
    if not names:  # installed after matplotlib cached its font list
        for path in font_manager.findSystemFonts():
            if "CJK" in path or "wqy" in path.lower():
                font_manager.fontManager.addfont(path)
        names = {f.name for f in font_manager.fontManager.ttflist if "CJK" in f.name}
    if not names:
        return None
    name = sorted(names, key=lambda n: ("SC" not in n, n))[0]
    plt = _pyplot()
    plt.rcParams["font.family"] = ["DejaVu Sans", name]
    return name


def _needs_cjk(tokens) -> None:
    if any(ord(ch) > 0x2E80 for token in tokens for ch in token):
        _cjk_fallback()


def confusion_matrix_figure(cm: Sequence[Sequence[int]], labels: Sequence[str], title: str = "Confusion matrix"):
    cm = np.asarray(cm)
    size = max(4.0, 0.5 * len(labels) + 2)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 20:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                        color="white" if cm[i, j] > threshold else "black", fontsize=8)
    fig.tight_layout()
    return fig


def _curves(history: Sequence[dict], metrics: dict[str, str], title: str, train_label: str = "train loss",
            ylim: tuple[float, float] | None = None):
    """Train and validation loss (left) beside validation ``metrics`` (history key -> label), per epoch."""
    epochs = range(1, len(history) + 1)
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], marker="o", label=train_label)
    left.plot(epochs, [h["val_loss"] for h in history], marker="o", label="validation loss")
    left.set_xlabel("epoch")
    left.legend()
    for key, label in metrics.items():
        right.plot(epochs, [h[key] for h in history], marker="o", label=label)
    right.set_xlabel("epoch")
    if ylim is not None:
        right.set_ylim(*ylim)
    right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves_figure(history: Sequence[dict], title: str = "Training curves"):
    """Loss curves (train and validation) beside the validation accuracy and macro-F1, per epoch."""
    return _curves(history, {"val_accuracy": "accuracy", "val_macro_f1": "macro_f1"}, title, ylim=(0, 1))


def seq2seq_curves_figure(history: Sequence[dict], metric: str, title: str = "Training curves"):
    """Train and validation loss beside the validation metric (BLEU, chrF or ROUGE-L), per epoch."""
    metrics = {} if metric == "loss" else {f"val_{metric}": f"validation {metric} (greedy)"}
    return _curves(history, metrics, title, train_label="train loss (smoothed)")


def qa_curves_figure(history: Sequence[dict], title: str = "Reader training"):
    """Train and validation span loss beside the validation exact match and F1 (points), per epoch."""
    return _curves(history, {"val_exact_match": "exact match", "val_f1": "F1"}, title, ylim=(0, 100))


def lm_curves_figure(history: Sequence[dict], title: str = "Language model training"):
    """Train and validation loss per token beside the validation perplexity, per epoch."""
    return _curves(history, {"val_perplexity": "validation perplexity"}, title,
                   train_label="train loss (sampled softmax when set)")


def attention_matrix_figure(source: Sequence[str], output: Sequence[str], weights, title: str = ""):
    """Heat map of one sentence's attention: output tokens (rows) over source tokens (columns)."""
    _needs_cjk([*source, *output, title])
    weights = np.asarray(weights, dtype=float)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(source) + 1.5), max(3.0, 0.4 * len(output) + 1.2)))
    ax.imshow(weights, cmap="Greys", aspect="auto", vmin=0, vmax=max(1e-9, weights.max()))
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(output)), output, fontsize=8)
    ax.set_xlabel("source")
    ax.set_ylabel("output")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def attention_figure(rows: Sequence[tuple[list[str], Sequence[float], str]], title: str = "Attention"):
    """One heat strip per sentence: tokens with their attention weight, labelled with the prediction."""
    _needs_cjk([t for tokens, _, caption in rows for t in [*tokens, caption]])
    # room under each strip for its rotated tokens, or they run into the next sentence's caption
    plt = _pyplot()
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.6 * len(rows) + 0.6), squeeze=False)
    for ax, (tokens, weights, caption) in zip(axes[:, 0], rows):
        ax.imshow(np.asarray(weights, dtype=float)[None, :], cmap="Reds", aspect="auto", vmin=0)
        ax.set_xticks(range(len(tokens)), tokens, rotation=45, ha="right", fontsize=8)
        ax.set_yticks([])
        ax.set_title(caption, fontsize=9, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curve_figure(rows: Sequence[dict], metric: str = "test_accuracy", title: str = "Few-shot learning curve"):
    """Accuracy against k (examples per class): one line per strategy, the mean over seeds with a band
    of one standard deviation. ``rows``: dicts with ``strategy``, ``k`` and ``metric``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy in dict.fromkeys(r["strategy"] for r in rows):
        ks = sorted({r["k"] for r in rows if r["strategy"] == strategy})
        values = [[r[metric] for r in rows if r["strategy"] == strategy and r["k"] == k] for k in ks]
        mean = np.array([np.mean(v) for v in values])
        spread = np.array([np.std(v) for v in values])
        ax.plot(ks, mean, marker="o", label=strategy)
        ax.fill_between(ks, mean - spread, mean + spread, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("examples per class (k)")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
