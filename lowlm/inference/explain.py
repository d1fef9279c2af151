"""Why a classifier answered what it did: token attributions, attention, and a bag's top n-grams.

- ``saliency``: one score per token toward a class. ``grad_input`` (gradient x input on the word
  embeddings, summed over the embedding), ``integrated_gradients`` (Sundararajan et al. 2017: the
  gradients averaged along a straight path from an all-zero embedding, times the input; all path
  points in one batched pass), or ``occlusion`` (the drop of the class's logit when the token is
  deleted; every deletion in one batch). Models without per-token embeddings (the bag of n-grams) use
  occlusion, and so do int8 models (their layers have no gradients). Positive scores push toward the
  class, negative ones away.
- ``attention``: the pooling weights of the attention classifiers (``TextClassifier.attention``).
- ``top_ngrams``: for the bag of n-grams, the words and n-grams (of given texts) whose embedding rows
  the head weighs most toward each class.
- ``html``: tokens highlighted by their scores (red toward, blue away), for MLflow artifacts and the CLI.
"""

from __future__ import annotations

import html as _html

import torch
from torch import nn

METHODS = ("grad_input", "integrated_gradients", "occlusion")


def _class_index(classifier, ids: list[int], label: str | int | None) -> int:
    if label is None:
        with torch.no_grad():
            return int(classifier.model.eval()(torch.tensor([ids]), torch.tensor([len(ids)])).argmax(dim=1))
    if isinstance(label, int):
        return label
    if label not in classifier.labels:
        raise ValueError(f"label {label!r} is not one of the model's labels {classifier.labels}")
    return classifier.labels.index(label)


def _word_embedding(model: nn.Module) -> nn.Embedding | None:
    emb = getattr(model, "embedding", None)
    return emb if isinstance(emb, nn.Embedding) else None


def saliency(classifier, text: str, label: str | int | None = None, method: str = "integrated_gradients",
             steps: int = 32) -> dict:
    """``{"tokens", "scores", "label", "method"}`` for ``text`` toward ``label`` (default: the predicted one)."""
    if method not in METHODS:
        raise ValueError(f"saliency method {method!r}: expected one of {', '.join(METHODS)}")
    model = classifier.model.eval()
    ids = classifier.tokenizer.encode(text) or [1]
    target = _class_index(classifier, ids, label)
    embedding = _word_embedding(model)
    quantized = (getattr(classifier, "optimization", None) or {}).get("runtime", "float") != "float"
    if embedding is None or quantized:
        method = "occlusion"  # no per-token embedding to take gradients at, or int8 layers without gradients
    if method == "occlusion":
        scores = _occlusion(model, ids, target)
    else:
        scores = _gradients(model, embedding, ids, target, steps if method == "integrated_gradients" else 0)
    return {"tokens": [classifier.tokenizer.id_to_token(i) for i in ids], "scores": scores,
            "label": classifier.labels[target], "method": method}


@torch.no_grad()
def _occlusion(model: nn.Module, ids: list[int], target: int) -> list[float]:
    """The class logit with the whole text minus with each token deleted (one batch of len(ids) + 1 rows)."""
    rows = [ids] + [ids[:i] + ids[i + 1:] or [0] for i in range(len(ids))]
    width = max(len(r) for r in rows)
    batch = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    lengths = torch.tensor([max(1, len(r)) for r in rows])
    logits = model(batch, lengths)[:, target]
    return (logits[0] - logits[1:]).tolist()


def _gradients(model: nn.Module, embedding: nn.Embedding, ids: list[int], target: int, steps: int) -> list[float]:
    """Gradient x input (``steps`` 0), or integrated gradients from a zero embedding over ``steps`` points."""
    n = max(1, steps)
    alphas = torch.linspace(1.0 / n, 1.0, n).view(n, 1, 1) if steps else torch.ones(1, 1, 1)
    captured = {}

    def scale(module, inputs, output):
        base = output.detach()
        scaled = (alphas * base).requires_grad_(True)  # the path points, one per batch row
        captured["input"], captured["scaled"] = base, scaled
        return scaled

    handle = embedding.register_forward_hook(scale)
    try:
        batch = torch.tensor([ids] * alphas.shape[0])
        with torch.enable_grad():
            logits = model(batch, torch.tensor([len(ids)] * alphas.shape[0]))
            grads = torch.autograd.grad(logits[:, target].sum(), captured["scaled"])[0]
    finally:
        handle.remove()
    # the average gradient along the path (a sum over n points of the path's gradient / n) times the input
    attribution = (grads.mean(dim=0) * captured["input"][0]).sum(dim=-1)
    return attribution.tolist()


@torch.no_grad()
def top_ngrams(classifier, texts: list[str], k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Per class, the ``k`` words and n-grams (those occurring in ``texts``, and every vocabulary word) whose
    embedding rows the bag of n-grams' head weighs most toward it: ``{label: [(ngram, weight), ...]}``."""
    model = classifier.model.eval()
    if not hasattr(model, "_rows"):
        raise TypeError(f"top n-grams are for the bag of n-grams, not a {model.config.kind} model")
    tok = classifier.tokenizer
    rows: dict[str, int] = {tok.id_to_token(i): i for i in range(4, tok.vocab_size)}
    for text in texts:
        ids = tok.encode(text)
        if not ids:
            continue
        found = model._rows(torch.tensor([ids]), torch.tensor([len(ids)]))[0].tolist()
        words, column = [tok.id_to_token(i) for i in ids], len(ids)
        for n in range(2, model.config.ngrams + 1):
            for start in range(len(ids) - n + 1):
                if found[column] > 0:
                    rows.setdefault(" ".join(words[start:start + n]), found[column])
                column += 1
    names = list(rows)
    weights = model.head.weight @ model.embedding.weight[torch.tensor([rows[x] for x in names])].T  # (C, N)
    out = {}
    for c, label in enumerate(classifier.labels):
        best = weights[c].topk(min(k, len(names))).indices.tolist()
        out[label] = [(names[i], float(weights[c, i])) for i in best]
    return out


def html(rows: list[tuple[list[str], list[float], str]], title: str = "") -> str:
    """A page of texts with tokens highlighted by score: ``rows`` of (tokens, scores, caption); each row's
    colours are scaled by its largest absolute score."""
    parts = ["<!doctype html><meta charset='utf-8'>",
             f"<title>{_html.escape(title)}</title><body style='font-family:sans-serif;max-width:60em'>",
             f"<h2>{_html.escape(title)}</h2>"]
    for tokens, scores, caption in rows:
        top = max((abs(s) for s in scores), default=0.0) or 1.0
        spans = []
        for token, score in zip(tokens, scores):
            alpha = abs(score) / top
            colour = f"rgba(220,40,40,{alpha:.2f})" if score >= 0 else f"rgba(40,90,220,{alpha:.2f})"
            spans.append(f"<span title='{score:.4f}' style='background:{colour};padding:1px 2px'>"
                         f"{_html.escape(token)}</span>")
        parts.append(f"<p><small>{_html.escape(caption)}</small><br>{' '.join(spans)}</p>")
    return "\n".join(parts) + "\n</body>\n"
