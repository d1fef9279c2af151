"""Calibration and out-of-scope detection on BANKING77 with intents held out as out-of-scope.

    .venv/bin/python benchmarks/oos_banking77.py [--held-out 10] [--repeats 3]

BANKING77 (../shared/data/banking77) with ``--held-out`` intents (drawn with a fixed seed) marked
``out_of_scope_labels``: their training rows are dropped, their validation and test rows become
``out_of_scope``. A bag of n-grams trains with the pipeline's bag defaults; the temperature and the
rejection threshold are fitted on validation (``lowlm.evaluation.calibration.calibrate``, as the
train stage does); test is scored once per repeat: ECE before/after temperature scaling, accuracy
with rejection, in-scope accuracy and out-of-scope recall. Each repeat is saved to
benchmarks/results/oos_banking77.json as it finishes; a rerun resumes. Medians over repeats are printed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()

import torch  # noqa: E402

from lowlm.config import BagOfNgramsConfig, CorpusConfig, TrainConfig  # noqa: E402
from lowlm.config.pipelines import BAG_TRAIN_DEFAULTS  # noqa: E402
from lowlm.data.corpus import load_corpus  # noqa: E402
from lowlm.evaluation.calibration import calibrate, expected_calibration_error  # noqa: E402
from lowlm.inference.classifier import TextClassifier  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.text.batching import Batches  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.objectives import train_classifier  # noqa: E402
from lowlm.training.trainer import seed_everything  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "banking77"
RESULTS = ROOT / "benchmarks" / "results" / "oos_banking77.json"


def one_run(held_out: int, seed: int) -> dict:
    full = CorpusConfig(path=str(DATA / "train.csv"), test_file=str(DATA / "test.csv"), label_column="category",
                        validation_size=0.1, seed=13)
    intents = sorted(load_corpus(full).labels)
    outside = sorted(random.Random(seed).sample(intents, held_out))
    corpus = load_corpus(full.model_copy(update={"out_of_scope_labels": outside}))
    labels = corpus.labels
    names = corpus.names
    texts = {s: list(corpus.splits[s]["text"]) for s in corpus.splits}
    ids = {s: [names[i] for i in corpus.splits[s]["label"]] for s in corpus.splits}
    index = {name: i for i, name in enumerate(labels)}
    encoded = {s: [index.get(name, -1) for name in ids[s]] for s in ids}  # -1: out of scope
    tok = Tokenizer.train(texts["train"])
    cfg = TrainConfig(**{**BAG_TRAIN_DEFAULTS, "seed": seed, "progress": False, "patience": 0})
    train = Batches(tok.encode_batch(texts["train"]), encoded["train"], cfg.batch_size, shuffle=True, seed=seed)
    keep = [i for i, y in enumerate(encoded["validation"]) if y >= 0]
    val = Batches(tok.encode_batch([texts["validation"][i] for i in keep]),
                  [encoded["validation"][i] for i in keep], 512)
    seed_everything(seed)
    model = build_model(BagOfNgramsConfig(), vocab_size=tok.vocab_size, num_labels=len(labels), words=tok.tokens())
    model.index_ngrams((b.ids, b.lengths) for b in train)
    start = time.perf_counter()
    train_classifier(model, train, val, len(labels), cfg)
    seconds = time.perf_counter() - start
    clf = TextClassifier(model, tok, labels)
    fitted = calibrate(clf.logits(texts["validation"]), encoded["validation"], reject=True)
    test_logits = clf.logits(texts["test"])
    y = torch.tensor(encoded["test"])
    scope = y >= 0
    raw = torch.softmax(test_logits.double(), 1)
    calibrated = torch.softmax(test_logits.double() / fitted.temperature, 1)
    top, predicted = calibrated.max(1)
    rejected = top < fitted.threshold
    in_scope_correct = (predicted == y) & ~rejected & scope
    oos_caught = rejected & ~scope
    return {
        "seed": seed, "held_out": outside, "rows": {s: len(t) for s, t in texts.items()},
        "test_oos_rows": int((~scope).sum()), "train_seconds": seconds,
        "temperature": fitted.temperature, "threshold": fitted.threshold, **fitted.metrics,
        "test_ece_before": expected_calibration_error(raw[scope], y[scope]),
        "test_ece_after": expected_calibration_error(calibrated[scope], y[scope]),
        "test_accuracy_no_rejection_in_scope": float((raw.argmax(1) == y)[scope].float().mean()),
        "test_in_scope_accuracy": float(in_scope_correct.sum() / scope.sum()),
        "test_oos_recall": float(oos_caught.sum() / (~scope).sum()),
        "test_accuracy_with_rejection": float((in_scope_correct | oos_caught).float().mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--held-out", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    saved = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"runs": []}
    runs = [r for r in saved["runs"] if len(r["held_out"]) == args.held_out]
    for seed in range(len(runs), args.repeats):
        runs.append(one_run(args.held_out, seed))
        saved["runs"] = [r for r in saved["runs"] if len(r["held_out"]) != args.held_out] + runs
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(saved, indent=1))
        print(f"seed {seed} saved to {RESULTS}", flush=True)
    keys = ["temperature", "threshold", "val_ece_before", "val_ece_after", "test_ece_before", "test_ece_after",
            "test_accuracy_no_rejection_in_scope", "test_in_scope_accuracy", "test_oos_recall",
            "test_accuracy_with_rejection", "val_in_scope_accuracy", "val_oos_recall"]
    print(f"\nBANKING77, {args.held_out} intents out of scope, {len(runs)} repeats (seeds 0..{len(runs) - 1}): median")
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        print(f"  {key:38s} {statistics.median(values):.4f}   ({min(values):.4f}-{max(values):.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
