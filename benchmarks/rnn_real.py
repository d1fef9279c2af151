"""BiGRU/BiLSTM-attention classifiers on real corpora, with the settings of a pipeline preset.

Runs the same library steps as the flow's tokenize/train/evaluate stages (no Prefect, no MLflow),
so the numbers are the flow's numbers, and prints a table of validation and test accuracy.

    .venv/bin/python benchmarks/rnn_real.py trec sst2              # presets under configs/
    .venv/bin/python benchmarks/rnn_real.py trec --set model.hidden_dim=256 --repeats 3

Results go to benchmarks/results/rnn_real.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE and offline settings, before torch loads

import torch  # noqa: E402

from lowlm.text.batching import Batches  # noqa: E402
from lowlm.config import load_pipeline_config, parse_override  # noqa: E402
from lowlm.data.corpus import load_corpus  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.objectives import classification_metrics, train_classifier  # noqa: E402
from lowlm.training.trainer import seed_everything  # noqa: E402


def run_once(config, seed: int) -> dict:
    corpus = load_corpus(config.corpus)
    t = config.tokenizer
    start = time.perf_counter()
    tok = Tokenizer.train(corpus.splits["train"]["text"], kind=t.kind, vocab_size=t.vocab_size,
                          min_frequency=t.min_frequency, lowercase=t.lowercase, nfkc=t.nfkc, max_length=t.max_length)
    enc = {s: tok.encode_batch(list(corpus.splits[s]["text"])) for s in corpus.splits}
    cfg = config.train.model_copy(update={"seed": seed, "progress": False})
    train = Batches(enc["train"], corpus.splits["train"]["label"], cfg.batch_size, shuffle=True, seed=seed)
    val = Batches(enc["validation"], corpus.splits["validation"]["label"], 512)
    test = Batches(enc["test"], corpus.splits["test"]["label"], 512)
    seed_everything(seed)  # torch, numpy and Python: the initial weights are part of the result
    model = build_model(config.model, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    if config.model.kind == "bag_of_ngrams":
        model.index_ngrams((b.ids, b.lengths) for b in train)
    result = train_classifier(model, train, val, len(corpus.labels), cfg)
    seconds = time.perf_counter() - start
    target_tokens = sum(len(r) for r in enc["train"]) * len(result.history)
    return {"seed": seed, "val_accuracy": result.best_metric, "best_epoch": result.best_epoch,
            "epochs_run": len(result.history), "test": classification_metrics(model, test, len(corpus.labels)),
            "seconds": seconds, "tokens_per_second": target_tokens / result.seconds,
            "rows": {s: len(d) for s, d in corpus.splits.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("presets", nargs="+")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "rnn_real"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = dict(parse_override(o) for o in args.overrides)
    rows, raw = [], []
    for preset in args.presets:
        config = load_pipeline_config(preset, overrides)
        runs = [run_once(config, config.train.seed + i) for i in range(args.repeats)]
        raw.append({"preset": preset, "overrides": overrides, "config": config.model_dump(mode="json"), "runs": runs})
        med = lambda key: statistics.median(key(r) for r in runs)  # noqa: E731
        rows.append(f"| {preset} | {config.model.cell} h{config.model.hidden_dim} e{config.model.embedding_dim} "
                    f"c{config.model.char_dim} | {med(lambda r: r['val_accuracy']):.4f} | "
                    f"{med(lambda r: r['test']['accuracy']):.4f} | {med(lambda r: r['seconds']):.0f} | "
                    f"{med(lambda r: r['tokens_per_second']):.0f} | {len(runs)} |")
        print(rows[-1], flush=True)
    table = ["| preset | model | validation acc. (median) | test acc. (median) | wall s | train tokens/s | runs |",
             "|---|---|---|---|---|---|---|", *rows]
    print("\n".join(table))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(table) + "\n")
    out.with_suffix(".json").write_text(json.dumps(raw, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
