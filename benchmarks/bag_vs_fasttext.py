"""fastText vs lowlm's bag of n-grams: accuracy and training wall time on the same splits.

    .venv/bin/python benchmarks/bag_vs_fasttext.py [--datasets sst2 trec banking77] [--repeats 3] [--threads 2]

For every dataset and repeat (seed = repeat number) both systems train on the same rows and are
scored on the same test rows; the order of the runs alternates between repeats, so both see the same
background load. Prints a markdown table of medians and writes it to
``benchmarks/results/bag_vs_fasttext.md``, with every run in ``bag_vs_fasttext.json``.

Splits: ``load_corpus`` with the corpus's own test file (SST-2: dev.tsv, whose labels are public)
carves a stratified 10% validation split from the training file. Both systems train on the other 90%
(``corpus.splits["train"]``); ours also scores the validation split after each epoch and keeps the
best epoch (``fit`` always does), fastText uses no validation data. Test rows are never used to pick
an epoch.

What each time includes (see docs/benchmarks.md):
- fastText: ``fasttext.train_supervised`` only, which reads and tokenises its training file (written
  to a temporary folder beforehand) and trains.
- ours: word-tokenizer training, encoding train and validation rows, batching, model build,
  ``index_ngrams`` and the trainer (``lowlm.training``) (which also scores the validation split after each epoch
  and keeps the best epoch's weights).
Not timed, for either: reading the corpus, writing fastText's file, scoring the test split.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("LOWLM_SHARED", ROOT.parent / "shared")).resolve()
DATA = SHARED / "data"
RESULTS = ROOT / "benchmarks" / "results"

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP workers sleep instead of spinning. Set before torch loads: on a busy 2-core machine a
# spinning worker starves the thread it waits for, and small training steps slow down 20-80x.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# fastText as the issue fixes it; lr 0.1 is fastText's default for supervised training.
FASTTEXT = {"dim": 100, "wordNgrams": 2, "epoch": 25, "lr": 0.1, "bucket": 2_000_000, "minCount": 1,
            "loss": "softmax"}
# Ours: same embedding size, n-gram order and hash space. SparseAdam (sparse embedding table) and
# AdamW (head), linear decay to zero, no warm-up, no clipping, patience 0 (no early stop; fit still
# restores the best validation epoch).
OURS = {"embedding_dim": 100, "ngrams": 2, "buckets": 2_000_000, "batch_size": 64, "lr": 0.02, "epochs": 5,
        "schedule": "linear", "warmup_ratio": 0.0, "weight_decay": 0.0, "grad_clip": 0.0, "dropout": 0.0}

DATASETS = {
    "sst2": {
        "corpus": {"path": f"{DATA}/sst2/train.tsv", "test_file": f"{DATA}/sst2/dev.tsv",
                   "text_column": ["sentence", "content"]},
        # The 67k train rows are overlapping phrases of 6.9k sentences: one pass already shows each
        # sentence's words many times, and dev accuracy falls with more passes (docs/benchmarks.md).
        "ours": {"epochs": 1, "batch_size": 256, "lr": 0.01},
    },
    "trec": {
        "corpus": {"path": f"{DATA}/trec/train_5500.label", "test_file": f"{DATA}/trec/TREC_10.label",
                   "encoding": "latin-1"},
        "ours": {},
    },
    "banking77": {
        "corpus": {"path": f"{DATA}/banking77/train.csv", "test_file": f"{DATA}/banking77/test.csv",
                   "label_column": "category"},
        "ours": {},
    },
}


def ours_settings(name: str, overrides: dict | None = None) -> dict:
    return OURS | DATASETS[name]["ours"] | (overrides or {})


# ------------------------------------------------------------------------------------------- data


def load_splits(name: str) -> dict:
    """Train/validation/test rows as plain lists (reading the corpus is not timed for either system)."""
    from lowlm.config import CorpusConfig
    from lowlm.data.corpus import load_corpus

    corpus = load_corpus(CorpusConfig(**DATASETS[name]["corpus"]))
    # A datasets Column iterates row by row through Arrow formatting (~0.5 s per pass over SST-2):
    # convert once, here, so neither system's time includes it.
    splits = {split: corpus.splits[split].to_dict() for split in ("train", "validation", "test")}
    return {"labels": corpus.labels, "splits": splits}


def fasttext_text(texts: list[str]) -> list[str]:
    """The text fastText sees: our word tokenizer's normaliser and pre-tokeniser, joined by spaces.

    fastText splits on whitespace only; giving it the same words as ours (lowercased, punctuation
    split off) is the usual fastText preprocessing and is worth several points on BANKING77.
    """
    from lowlm.text.tokenizer import Tokenizer

    backend = Tokenizer.train(["x"], kind="word", lowercase=True).backend  # only its text rules are used
    norm, pre = backend.normalizer, backend.pre_tokenizer
    return [" ".join(w for w, _ in pre.pre_tokenize_str(norm.normalize_str(t))) for t in texts]


# ---------------------------------------------------------------------------------------- systems


def run_fasttext(data: dict, seed: int, threads: int, workdir: Path, lr: float = FASTTEXT["lr"]) -> dict:
    import fasttext

    train = data["splits"]["train"]
    path = workdir / "train.txt"
    with open(path, "w", encoding="utf-8") as fh:
        for text, label in zip(fasttext_text(train["text"]), train["label"]):
            fh.write(f"__label__{label} {text}\n")
    start = time.perf_counter()
    model = fasttext.train_supervised(str(path), thread=threads, seed=seed, verbose=0, **(FASTTEXT | {"lr": lr}))
    seconds = time.perf_counter() - start
    test = data["splits"]["test"]
    predicted, _ = model.predict(fasttext_text(test["text"]))
    pred = [int(p[0].removeprefix("__label__")) for p in predicted]
    return {"accuracy": _accuracy(pred, test["label"]), "seconds": seconds}


def run_ours(data: dict, seed: int, threads: int, settings: dict) -> dict:
    import torch

    from lowlm.text.batching import Batches
    from lowlm.config import BagOfNgramsConfig, TrainConfig
    from lowlm.models.classifier import BagOfNgrams
    from lowlm.text.tokenizer import Tokenizer
    from lowlm.training.objectives import classification_metrics, train_classifier

    s = settings
    train, validation, test = (data["splits"][k] for k in ("train", "validation", "test"))
    num_labels = len(data["labels"])
    torch.set_num_threads(threads)
    times = {}
    start = mark = time.perf_counter()

    def lap(what: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        times[what] = now - mark
        mark = now

    tok = Tokenizer.train(train["text"], kind="word", lowercase=True)
    lap("tokenizer")
    train_ids, val_ids = tok.encode_batch(train["text"]), tok.encode_batch(validation["text"])
    lap("encode")
    train_batches = Batches(train_ids, train["label"], batch_size=s["batch_size"], shuffle=True, seed=seed)
    val_batches = Batches(val_ids, validation["label"], batch_size=1024)
    torch.manual_seed(seed)
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=s["embedding_dim"], ngrams=s["ngrams"], buckets=s["buckets"],
                                          dropout=s["dropout"]), tok.vocab_size, num_labels)
    ngram_rows = model.index_ngrams((b.ids, b.lengths) for b in Batches(train_ids, batch_size=4096))
    lap("build")
    cfg = TrainConfig(epochs=s["epochs"], batch_size=s["batch_size"], lr=s["lr"], weight_decay=s["weight_decay"],
                      warmup_ratio=s["warmup_ratio"], schedule=s["schedule"], grad_clip=s["grad_clip"], patience=0,
                      seed=seed, threads=threads, progress=False)
    result = train_classifier(model, train_batches, val_batches, num_labels, cfg)
    lap("fit")
    seconds = time.perf_counter() - start
    test_batches = Batches(tok.encode_batch(test["text"]), test["label"], batch_size=1024)
    accuracy = classification_metrics(model, test_batches, num_labels)["accuracy"]
    return {"accuracy": accuracy, "seconds": seconds, "breakdown": times, "best_epoch": result.best_epoch,
            "vocab_size": tok.vocab_size, "ngram_rows": ngram_rows}


def _accuracy(pred: list[int], gold: list[int]) -> float:
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def warm_up(threads: int) -> None:
    """Untimed first calls: torch.optim imports torch._dynamo on first use (~1.5 s), once per process."""
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [f"{words[i % 6]} {words[(i * 7) % 6]} film" for i in range(64)]
    data = {"labels": ["0", "1"], "splits": {s: {"text": rows, "label": [i % 2 for i in range(64)]}
                                             for s in ("train", "validation", "test")}}
    run_ours(data, 0, threads, OURS | {"epochs": 1})
    with tempfile.TemporaryDirectory() as tmp:
        run_fasttext(data, 0, threads, Path(tmp))


# ------------------------------------------------------------------------------------------ report


def system_names(fasttext_lrs: list[float]) -> list[str]:
    """``fastText`` (the issue's settings, first lr) first, then reference rows at other lrs, then ours."""
    return ["fastText"] + [f"fastText lr {lr:g}" for lr in fasttext_lrs[1:]] + ["ours"]


def summarise(runs: list[dict], datasets: list[str], systems: list[str]) -> list[dict]:
    rows = []
    for name in datasets:
        medians = {}
        for system in systems:
            mine = [r for r in runs if r["dataset"] == name and r["system"] == system]
            accs, secs = [r["accuracy"] for r in mine], [r["seconds"] for r in mine]
            medians[system] = statistics.median(secs)
            rows.append({"dataset": name, "system": system, "accuracy": statistics.median(accs),
                         "accuracy_min": min(accs), "accuracy_max": max(accs), "seconds": statistics.median(secs),
                         "seconds_min": min(secs), "seconds_max": max(secs), "runs": len(mine)})
        rows[-1]["ratio"] = medians["ours"] / medians["fastText"]
    return rows


def markdown(rows: list[dict], args, datasets: list[str], overrides: dict) -> str:
    lines = ["| dataset | system | accuracy, median (min-max) | train s, median (min-max) | time ours/fastText |",
             "|---|---|---|---|---|"]
    for r in rows:
        acc = f"{100 * r['accuracy']:.1f}% ({100 * r['accuracy_min']:.1f}-{100 * r['accuracy_max']:.1f})"
        sec = f"{r['seconds']:.2f} ({r['seconds_min']:.2f}-{r['seconds_max']:.2f})"
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
        lines.append(f"| {r['dataset']} | {r['system']} | {acc} | {sec} | {ratio} |")
    ft = ", ".join(f"{k} {v}" for k, v in (FASTTEXT | {"lr": args.fasttext_lr[0]}).items())
    lines += ["", f"{args.repeats} runs per system and dataset (seeds 0..{args.repeats - 1}), {args.threads} "
              f"thread(s) each (fastText `thread`, `torch.set_num_threads`); time ratio = median ours / median "
              f"fastText.", "",
              f"- fastText: `train_supervised` with {ft}; input lowercased and punctuation split by our word "
              f"tokenizer's normaliser and pre-tokeniser (the same words ours sees). Timed: `train_supervised` "
              f"(reads its file, trains)."]
    for lr in args.fasttext_lr[1:]:
        lines.append(f"- fastText lr {lr:g}: the same with lr {lr:g}, for reference (not the one compared with).")
    for name in datasets:
        s = ours_settings(name, overrides)
        lines.append(f"- ours, {name}: BagOfNgrams dim {s['embedding_dim']}, n-grams <= {s['ngrams']}, "
                     f"buckets {s['buckets']}, word tokenizer (lowercase); {s['epochs']} epoch(s), batch "
                     f"{s['batch_size']}, lr {s['lr']} (SparseAdam + AdamW), {s['schedule']} decay, warm-up "
                     f"{s['warmup_ratio']}, dropout {s['dropout']}.")
    lines.append("- ours, timed: tokenizer training, encoding train and validation rows, batching, model build with "
                 "`index_ngrams`, and `fit` (which scores the validation split after each epoch).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads for both systems")
    parser.add_argument("--fasttext-lr", type=float, nargs="+", default=[FASTTEXT["lr"], 1.0],
                        help="fastText learning rates: the first is the one compared with; others are reference rows")
    parser.add_argument("--ours", nargs="*", default=[], metavar="KEY=VALUE",
                        help="override our settings for every dataset, e.g. epochs=3 lr=0.01 (for experiments)")
    parser.add_argument("--out", default=str(RESULTS / "bag_vs_fasttext"), help="results path without extension")
    args = parser.parse_args(argv)
    overrides = {}
    for item in args.ours:
        key, _, value = item.partition("=")
        if key not in OURS:
            parser.error(f"--ours {item!r}: unknown setting; known: {', '.join(OURS)}")
        overrides[key] = type(OURS[key])(value)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))  # the tokenizers library's thread pool

    import datasets

    datasets.disable_progress_bars()
    warm_up(args.threads)
    systems = system_names(args.fasttext_lr)
    runs = []
    load_at_start = os.getloadavg()
    for name in args.datasets:
        data = load_splits(name)
        sizes = {k: len(v["label"]) for k, v in data["splits"].items()}
        settings = ours_settings(name, overrides)
        for repeat in range(args.repeats):
            order = systems if repeat % 2 == 0 else systems[::-1]
            for system in order:
                with tempfile.TemporaryDirectory() as tmp:
                    if system == "ours":
                        out = run_ours(data, repeat, args.threads, settings)
                    else:
                        lr = args.fasttext_lr[systems.index(system)]
                        out = run_fasttext(data, repeat, args.threads, Path(tmp), lr)
                run = {"dataset": name, "system": system, "seed": repeat, "rows": sizes,
                       "load_avg_1m": os.getloadavg()[0]} | out
                runs.append(run)
                print(f"{name:10s} {system:15s} seed {repeat}: accuracy {100 * out['accuracy']:.2f}%  "
                      f"{out['seconds']:.2f} s" + (f"  {_fmt(out['breakdown'])}" if "breakdown" in out else ""),
                      flush=True)
    rows = summarise(runs, args.datasets, systems)
    table = markdown(rows, args, args.datasets, overrides)
    print("\n" + table)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(table, encoding="utf-8")
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "argv": sys.argv[1:],
            "threads": args.threads, "cpus": os.cpu_count(), "load_avg_at_start": load_at_start,
            "python": platform.python_version(), "torch": _version("torch"),
            "fasttext": _version("fasttext-numpy2-wheel"), "fasttext_settings": FASTTEXT | {"lr": args.fasttext_lr[0]},
            "fasttext_reference_lrs": args.fasttext_lr[1:],
            "ours_settings": {n: ours_settings(n, overrides) for n in args.datasets}}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": rows, "runs": runs}, indent=1),
                                        encoding="utf-8")
    return 0


def _fmt(times: dict) -> str:
    return " ".join(f"{k} {v:.2f}" for k, v in times.items())


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    raise SystemExit(main())
