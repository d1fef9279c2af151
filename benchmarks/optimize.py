"""Optimized variants of trained classifiers beside the originals: int8, pruning curve, both.

    .venv/bin/python benchmarks/optimize.py rnn_attention:trec bag_of_ngrams:trec
    .venv/bin/python benchmarks/optimize.py rnn_attention:sst2 --threads 1

For each MODEL:CORPUS it trains the preset's model (or the named kind with the preset's data; cached
under benchmarks/.cache/optimize/), then builds every variant with ``lowlm.optimize`` and measures it
beside the original in the same process: bytes on disk (weights, tokenizer, bundle.json), pyfunc
latency (median per call over repeats, batch 1 and 64), and test accuracy. Pruned variants get one
recovery epoch at a tenth of the train rate; compressed bags (fastText's quantize) one epoch of head
retraining at the train rate. Each target is saved to benchmarks/results/optimize.json
(``{"MODEL:CORPUS": {VARIANT: {size_ratio, batch1_speedup, metric_drop, ...}}}``) as it finishes, so a
stopped run resumes with the next target; ``--force`` measures a finished one again.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE and offline settings, before torch loads

import torch  # noqa: E402

from lowlm.config import load_pipeline_config  # noqa: E402
from lowlm.config.stages import OptimizeVariant  # noqa: E402
from lowlm.data.corpus import load_corpus  # noqa: E402
from lowlm.evaluation.metrics import accuracy  # noqa: E402
from lowlm.inference.bundle import load_bundle  # noqa: E402
from lowlm.inference.classifier import TextClassifier  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.optimize.variants import build_variant, measure  # noqa: E402
from lowlm.text.batching import Batches  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.objectives import train_classifier  # noqa: E402
from lowlm.training.trainer import seed_everything  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "optimize.json"
CACHE = ROOT / "benchmarks" / ".cache" / "optimize"
VARIANTS = [OptimizeVariant(name="int8", quantize=True),
            *[OptimizeVariant(name=f"pruned-{int(a * 100)}", prune=a) for a in (0.3, 0.5, 0.7, 0.9)],
            OptimizeVariant(name="pruned-50-int8", prune=0.5, quantize=True)]
# fastText's quantize for the bag: every row product-quantized, then fewer rows and coarser codes;
# each retrains the head for one epoch at the train stage's rate
COMPRESSED = [OptimizeVariant(name="pq", compress=True, recovery_lr_scale=1.0),
              OptimizeVariant(name="pq-rows10", compress=True, keep_ngrams=0.1, keep_words=0.5, pq_dsub=4,
                              recovery_lr_scale=1.0),
              OptimizeVariant(name="pq-rows5", compress=True, keep_ngrams=0.05, keep_words=0.3, pq_dsub=10,
                              recovery_lr_scale=1.0)]


def preset_for(kind: str, corpus: str):
    overrides = {} if kind == "rnn_attention" else {"model": {"kind": kind}}
    return load_pipeline_config(corpus, overrides)


def trained(kind: str, corpus_name: str, seed: int = 0):
    """The preset's model trained once (cached folder), its corpus and tokenizer."""
    config = preset_for(kind, corpus_name)
    corpus = load_corpus(config.corpus)
    key = hashlib.sha256(json.dumps([kind, corpus_name, config.model.model_dump(), config.train.model_dump(),
                                     config.tokenizer.model_dump(), seed]).encode()).hexdigest()[:12]
    folder = CACHE / f"{kind}-{corpus_name}-{key}"
    if (folder / "bundle.json").exists():
        return folder, corpus, config
    t = config.tokenizer
    tok = Tokenizer.train(list(corpus.splits["train"]["text"]), kind=t.kind, vocab_size=t.vocab_size,
                          min_frequency=t.min_frequency, lowercase=t.lowercase, nfkc=t.nfkc, max_length=t.max_length)
    cfg = config.train.model_copy(update={"seed": seed, "progress": False, "device": "cpu"})
    train = Batches(tok.encode_batch(list(corpus.splits["train"]["text"])), corpus.splits["train"]["label"],
                    cfg.batch_size, shuffle=True, seed=seed)
    val = Batches(tok.encode_batch(list(corpus.splits["validation"]["text"])), corpus.splits["validation"]["label"], 512)
    seed_everything(seed)
    net = build_model(config.model, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    if config.model.kind == "bag_of_ngrams":
        net.index_ngrams((b.ids, b.lengths) for b in train)
    start = time.perf_counter()
    train_classifier(net, train, val, len(corpus.labels), cfg)
    print(f"{kind}:{corpus_name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    TextClassifier(net.eval(), tok, corpus.labels).save(folder)
    return folder, corpus, config


def test_accuracy(folder: Path, corpus) -> float:
    bundle = load_bundle(folder)
    names = list(corpus.labels)
    predicted = [r["label"] for r in bundle.predict(list(corpus.splits["test"]["text"]))]
    return 100 * accuracy([names[i] for i in corpus.splits["test"]["label"]], predicted)


def run_target(target: str, repeats: int) -> dict:
    kind, corpus_name = target.split(":")
    folder, corpus, config = trained(kind, corpus_name)
    texts = list(corpus.splits["test"]["text"])[:100]
    train_texts, train_labels = list(corpus.splits["train"]["text"]), list(corpus.splits["train"]["label"])
    base = {**measure(folder, texts, repeats), "accuracy": test_accuracy(folder, corpus)}
    print(f"{target} original: {base['accuracy']:.2f}% {base['bytes']:,} bytes, batch 1 {base['batch1_p50_ms']:.2f} ms",
          flush=True)
    rows = {"original": base}
    for variant in VARIANTS + (COMPRESSED if kind == "bag_of_ngrams" else []):
        cfg = config.train.model_copy(update={"epochs": 1, "lr": config.train.lr * variant.recovery_lr_scale,
                                              "patience": 0, "warmup_ratio": 0.0, "progress": False, "device": "cpu"})

        def recover(bundle, cfg=cfg):
            seed_everything(0)
            batches = Batches(bundle.tokenizer.encode_batch(train_texts), train_labels, cfg.batch_size, shuffle=True,
                              seed=0)
            train_classifier(bundle.model, batches, None, len(bundle.labels), cfg)

        out = CACHE / f"{folder.name}-{variant.name}"
        record = build_variant(folder, variant, out, recover if variant.prune or variant.compress else None)
        got = {**measure(out, texts, repeats), "accuracy": test_accuracy(out, corpus)}
        rows[variant.name] = {**record, **got, "size_ratio": base["bytes"] / got["bytes"],
                              "batch1_speedup": base["batch1_p50_ms"] / got["batch1_p50_ms"],
                              "batch64_speedup": base["batch64_p50_ms"] / got["batch64_p50_ms"],
                              "metric_drop": base["accuracy"] - got["accuracy"]}
        r = rows[variant.name]
        print(f"{target} {variant.name}: {got['accuracy']:.2f}% (drop {r['metric_drop']:+.2f}), "
              f"{r['size_ratio']:.2f}x smaller, batch 1 {r['batch1_speedup']:.2f}x, batch 64 {r['batch64_speedup']:.2f}x",
              flush=True)
    return rows


def table(results: dict) -> str:
    lines = ["| model:corpus | variant | accuracy | drop (points) | bytes | size ratio | batch-1 p50 ms | speedup | "
             "batch-64 p50 ms | speedup |", "|---|---|---|---|---|---|---|---|---|---|"]
    for target, rows in results.items():
        for name, r in rows.items():
            lines.append(f"| {target} | {name} | {r['accuracy']:.2f} | {r.get('metric_drop', 0):+.2f} | {r['bytes']:,} | "
                         f"{r.get('size_ratio', 1):.2f}x | {r['batch1_p50_ms']:.2f} | {r.get('batch1_speedup', 1):.2f}x | "
                         f"{r['batch64_p50_ms']:.1f} | {r.get('batch64_speedup', 1):.2f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", metavar="MODEL:CORPUS")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    for target in args.targets:
        if target in results and not args.force:
            print(f"{target}: done (--force to measure again)")
            continue
        results[target] = run_target(target, args.repeats)
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(results, indent=1))
    print(table(results))
    RESULTS.with_suffix(".md").write_text(table(results) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
