"""Build an optimized variant of a saved bundle and measure it beside the original.

``build_variant`` prunes (with an optional recovery fine-tune while the masks hold the pruned weights at
zero), compresses a bag of n-grams (with a head retrain), and then quantizes, and saves the result as a bundle that records what was done; ``measure``
gives a bundle folder's size on disk and its latency through the pyfunc's ``predict`` (input checks and
``Bundle.serve``, as a served request runs them) at batch 1 and batch 64.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Callable

import pandas as pd
from lowlm.config.stages import OptimizeVariant
from lowlm.inference.bundle import Bundle, load_bundle
from lowlm.optimize.compress import compress_bag
from lowlm.optimize.prune import make_permanent, prune_model, sparsity


def folder_bytes(folder: str | Path) -> int:
    """Bytes of every file in a bundle folder (weights, tokenizers, bundle.json)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def build_variant(source: str | Path, variant: OptimizeVariant, out: str | Path,
                  recover: Callable[[Bundle], None] | None = None) -> dict:
    """Save ``variant`` of the bundle in ``source`` to ``out``; returns its ``optimization`` record.
    ``recover(bundle)``: a short fine-tune run after pruning (``variant.recovery_epochs`` > 0)."""
    bundle = load_bundle(source)
    record: dict = {"variant": variant.name, "weights": "int8" if variant.quantize else "float32",
                    "runtime": "dynamic_int8" if variant.quantize else "float"}
    if variant.prune:
        targets = prune_model(bundle.model, variant.prune, variant.prune_scope)
        if recover is not None and variant.recovery_epochs:
            recover(bundle)
            bundle.model.eval()
        make_permanent(bundle.model)
        record.update({"prune": variant.prune, "prune_scope": variant.prune_scope,
                       "recovery_epochs": variant.recovery_epochs if recover is not None else 0,
                       "sparsity": round(sparsity(bundle.model, targets), 4)})
    if variant.compress:
        if not hasattr(bundle.model, "ngram_index"):
            raise ValueError(f"variant {variant.name}: compress is for the bag of n-grams, not a "
                             f"{bundle.model.config.kind} model; use quantize or prune")
        counts = compress_bag(bundle.model, variant.keep_ngrams, variant.keep_words, variant.pq_dsub, variant.pq_bits)
        if recover is not None and variant.recovery_epochs:
            recover(bundle)  # the table is frozen: only the head learns, on the quantized rows
            bundle.model.eval()
        record.update({"weights": "pq", "pq_dsub": variant.pq_dsub, "pq_bits": variant.pq_bits, **counts,
                       "recovery_epochs": variant.recovery_epochs if recover is not None else 0})
    bundle.save(out, optimization=record)
    return record


def latency(bundle: Bundle, texts: list[str], batch: int, repeats: int = 3, params: dict | None = None) -> dict:
    """p50 and p95 milliseconds per call of the pyfunc's ``predict`` on ``texts`` in batches of ``batch``
    (the first call, which warms caches, is not timed)."""
    from lowlm.serving.pyfunc import LowlmPyfunc

    model = LowlmPyfunc()
    model.bundle = bundle
    chunks = [texts[i:i + batch] for i in range(0, len(texts), batch)] if batch < len(texts) else [texts]
    model.predict(None, pd.DataFrame({"text": chunks[0]}), params)
    times = []
    for _ in range(repeats):
        for chunk in chunks:
            start = time.perf_counter()
            model.predict(None, pd.DataFrame({"text": chunk}), params)
            times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"p50_ms": statistics.median(times), "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))]}


def measure(folder: str | Path, texts: list[str], repeats: int = 3, params: dict | None = None) -> dict:
    """Size on disk and batch-1 / batch-64 latency of the bundle in ``folder``."""
    bundle = load_bundle(folder)
    one = latency(bundle, texts, 1, repeats, params)
    many = latency(bundle, (texts * (64 // max(1, len(texts)) + 1))[:64], 64, repeats * 3, params)
    return {"bytes": folder_bytes(folder), "batch1_p50_ms": one["p50_ms"], "batch1_p95_ms": one["p95_ms"],
            "batch64_p50_ms": many["p50_ms"], "batch64_p95_ms": many["p95_ms"]}
