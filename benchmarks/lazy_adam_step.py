"""Per-step time of LazyAdam vs torch's SparseAdam on the bag-of-n-grams model, side by side.

    .venv/bin/python benchmarks/lazy_adam_step.py [--dataset banking77] [--repeats 7] [--batch-size 64]

One process, one model (the benchmark's BagOfNgrams: dim 100, bigrams, 2M buckets, on the
training rows of ``bag_vs_fasttext.load_splits``). Each repeat trains one epoch from the same initial
weights with each optimiser, in alternating order, and records the mean time of a whole training
step (forward, backward, both optimisers, scheduler) and of the sparse optimiser's ``step`` alone.
Then ``fit`` runs the benchmark's settings once per seed with each optimiser and records validation
accuracy (test rows are not loaded) and how far the final embedding tables are apart. Medians are
over repeats. Writes ``benchmarks/results/lazy_adam_step.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads; see bag_vs_fasttext.py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bag_vs_fasttext as bench

OPTIMIZERS = ("sparse_adam", "lazy_adam")


def one_epoch(model, init: dict, batches, cfg) -> dict:
    import torch
    from torch import nn

    from lowlm.training.optim import make_optimizers
    from lowlm.training.trainer import lr_lambda, seed_everything

    model.load_state_dict(init)
    seed_everything(cfg.seed)
    optimizers = make_optimizers(model, cfg)
    schedule = lr_lambda(cfg.schedule, cfg.epochs * len(batches), 0)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, schedule) for opt in optimizers]
    sparse_opt = optimizers[-1]
    model.train()
    step_s, opt_s = [], []
    for batch in batches:
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(batch.ids, batch.lengths), batch.labels)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt, sched in zip(optimizers, schedulers):
            if opt is sparse_opt:
                t1 = time.perf_counter()
                opt.step()
                opt_s.append(time.perf_counter() - t1)
            else:
                opt.step()
            sched.step()
        step_s.append(time.perf_counter() - t0)
    return {"step_ms": 1000 * statistics.mean(step_s), "sparse_step_ms": 1000 * statistics.mean(opt_s),
            "steps": len(step_s)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="banking77", choices=list(bench.DATASETS))
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=None, help="default: the benchmark's setting")
    parser.add_argument("--seeds", type=int, default=5, help="fit runs per optimiser for validation accuracy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(bench.RESULTS / "lazy_adam_step"))
    args = parser.parse_args(argv)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))

    import datasets
    import torch

    from lowlm.config import BagOfNgramsConfig, TrainConfig
    from lowlm.models.classifier import BagOfNgrams
    from lowlm.text.batching import Batches
    from lowlm.text.tokenizer import Tokenizer

    datasets.disable_progress_bars()
    torch.set_num_threads(args.threads)
    settings = bench.ours_settings(args.dataset) | ({"batch_size": args.batch_size} if args.batch_size else {})
    data = bench.load_splits(args.dataset, with_test=False)
    train = data["splits"]["train"]
    tok = Tokenizer.train(train["text"], kind="word", lowercase=True)
    ids = tok.encode_batch(train["text"])
    torch.manual_seed(0)
    model = BagOfNgrams(BagOfNgramsConfig(embedding_dim=settings["embedding_dim"], ngrams=settings["ngrams"],
                                          buckets=settings["buckets"], dropout=settings["dropout"]),
                        tok.vocab_size, len(data["labels"]))
    model.index_ngrams((b.ids, b.lengths) for b in Batches(ids, batch_size=4096))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    batches = Batches(ids, train["label"], batch_size=settings["batch_size"], shuffle=True, seed=0)
    batches = list(batches)  # the same padded batches for every run: padding is not what is measured

    def cfg(name: str, seed: int = 0) -> TrainConfig:
        return TrainConfig(epochs=settings["epochs"], batch_size=settings["batch_size"], lr=settings["lr"],
                           weight_decay=0.0, warmup_ratio=0.0, schedule=settings["schedule"], grad_clip=0.0,
                           patience=0, seed=seed, threads=args.threads, progress=False, sparse_optimizer=name)

    for name in OPTIMIZERS:  # warm-up: first torch.optim use imports torch._dynamo
        one_epoch(model, init, batches[:20], cfg(name))
    timings = []
    for repeat in range(args.repeats):
        for name in (OPTIMIZERS if repeat % 2 == 0 else OPTIMIZERS[::-1]):
            out = one_epoch(model, init, batches, cfg(name))
            timings.append({"optimizer": name, "repeat": repeat, "load_avg_1m": os.getloadavg()[0]} | out)
            print(f"repeat {repeat} {name:11s}: step {out['step_ms']:.3f} ms, sparse optimiser "
                  f"{out['sparse_step_ms']:.3f} ms ({out['steps']} steps)", flush=True)

    accuracy = []
    for seed in range(args.seeds):
        tables = {}
        for name in (OPTIMIZERS if seed % 2 == 0 else OPTIMIZERS[::-1]):
            out = bench.run_ours(data, seed, args.threads, settings | {"sparse_optimizer": name}, keep_model=True)
            tables[name] = out.pop("model").embedding.weight.detach()
            accuracy.append({"optimizer": name, "seed": seed, "validation_accuracy": out["validation_accuracy"],
                             "best_epoch": out["best_epoch"], "seconds": out["seconds"]})
            print(f"seed {seed} {name:11s}: validation {100 * out['validation_accuracy']:.2f}% "
                  f"(epoch {out['best_epoch']}), {out['seconds']:.2f} s", flush=True)
        accuracy.append({"seed": seed, "max_abs_weight_diff": (tables["sparse_adam"] - tables["lazy_adam"]).abs().max().item()})

    rows = {}
    for name in OPTIMIZERS:
        mine = [t for t in timings if t["optimizer"] == name]
        accs = [a["validation_accuracy"] for a in accuracy if a.get("optimizer") == name]
        secs = [a["seconds"] for a in accuracy if a.get("optimizer") == name]
        rows[name] = {"step_ms": statistics.median(t["step_ms"] for t in mine),
                      "step_ms_min": min(t["step_ms"] for t in mine), "step_ms_max": max(t["step_ms"] for t in mine),
                      "sparse_step_ms": statistics.median(t["sparse_step_ms"] for t in mine),
                      "validation_accuracy": statistics.median(accs), "validation_accuracies": accs,
                      "fit_seconds": statistics.median(secs)}
    diffs = [a["max_abs_weight_diff"] for a in accuracy if "max_abs_weight_diff" in a]
    s, lz = rows["sparse_adam"], rows["lazy_adam"]
    lines = ["| sparse optimiser | whole step, ms, median (min-max) | optimiser step, ms | validation accuracy per seed "
             "| benchmark run s (median) |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['step_ms']:.3f} ({r['step_ms_min']:.3f}-{r['step_ms_max']:.3f}) | "
                     f"{r['sparse_step_ms']:.3f} | {', '.join(f'{100 * a:.2f}%' for a in r['validation_accuracies'])} "
                     f"| {r['fit_seconds']:.2f} |")
    lines += ["", f"{args.dataset}, batch {settings['batch_size']}, {batches[0].ids.shape[0]}-row batches, "
              f"{len(batches)} steps per epoch, {args.threads} threads; {args.repeats} alternating repeats of one epoch "
              f"each. LazyAdam: whole step {lz['step_ms'] / s['step_ms']:.2f}x SparseAdam's, optimiser step "
              f"{lz['sparse_step_ms'] / s['sparse_step_ms']:.2f}x. Validation accuracy from the benchmark's `run_ours` "
              f"({settings['epochs']} epochs, lr {settings['lr']}), seeds 0..{args.seeds - 1}; largest difference "
              f"between the two optimisers' final embedding tables: {max(diffs):.2e}."]
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    out = Path(args.out)
    out.with_suffix(".md").write_text(table, encoding="utf-8")
    meta = {"dataset": args.dataset, "settings": settings, "threads": args.threads, "repeats": args.repeats,
            "torch": torch.__version__, "cpus": os.cpu_count(), "argv": sys.argv[1:]}
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "summary": rows, "timings": timings,
                                                    "accuracy": accuracy}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
