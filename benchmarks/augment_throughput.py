"""Augmenter throughput, in source sentences per second: one process shard by shard, and shards on 2 threads.

    .venv/bin/python benchmarks/augment_throughput.py [--rows 2000] [--bt-rows 2000] [--repeats 3]

Each augmenter makes one new row per source row (``ratio`` 1) for a seeded sample of SST-2 training
sentences (``random.Random(0).sample`` of train.tsv). Two ways of running the same shards
(``shard_rows`` rows each):

- ``augment_texts``: every shard in turn, in this process (what the stage does with no runner);
- ``augment_shard`` mapped over a ``concurrent.futures.ThreadPoolExecutor(2)``, then ``keep_new``:
  what the flow does with Prefect's ``ThreadPoolTaskRunner`` and 2 workers, without a Prefect server.

Both include ``keep_new``. nlpaug's augmenters draw from the global generators of ``random`` and
numpy, so the library runs them under one global lock: no speed-up is expected for them.
Back-translation (En->De then De->En lowlm translators from benchmarks/backtranslation.py's cache)
spends its time in torch, which releases the GIL. The sharded rows must equal the unsharded rows
(each shard is seeded by (seed, shard)); the script checks it on every repeat. torch runs 1 thread
per Python thread. Time: median of ``--repeats`` after one untimed warm-up call per augmenter.
Results: benchmarks/results/augment_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE, NLTK_DATA, before torch loads

import torch  # noqa: E402

from lowlm.config.augment import (BackTranslationAugmenter, EdaAugmenter, GenerationConfig, ModelRef,  # noqa: E402
                                  NoiseAugmenter)
from lowlm.robustness.augment import augment_shard, augment_texts, augmenter_names, keep_new, shards  # noqa: E402

SHARED = Path(os.environ.get("LOWLM_SHARED", ROOT.parent / "shared")).resolve()
TRAIN = SHARED / "data" / "sst2" / "train.tsv"
RESULTS = ROOT / "benchmarks" / "results"
BT_CACHE = ROOT / "benchmarks" / ".cache" / "backtranslation"
MODELS = [ModelRef(uri="models:/bench-en-de@local"), ModelRef(uri="models:/bench-de-en@local")]
WORKERS = 2


def augmenters() -> dict:
    out = {kind: NoiseAugmenter(kind=kind, ratio=1)
           for kind in ("synonym", "random_swap", "random_delete", "random_insert", "spelling", "keyboard")}
    out["eda"] = EdaAugmenter(ratio=1)
    out["backtranslation greedy"] = BackTranslationAugmenter(ratio=1, models=MODELS,
                                                             generation=GenerationConfig(method="greedy"))
    out["backtranslation sample"] = BackTranslationAugmenter(ratio=1, models=MODELS,
                                                             generation=GenerationConfig(method="sample", top_k=10))
    return out


_TRANSLATORS = None


def translators(name, cfg):
    global _TRANSLATORS
    if _TRANSLATORS is None:
        from lowlm.inference.translator import Translator

        _TRANSLATORS = [Translator.load(BT_CACHE / "reverse-en-de"), Translator.load(BT_CACHE / "baseline")]
    return _TRANSLATORS


def sentences(n: int) -> list[str]:
    header, *lines = TRAIN.read_text(encoding="utf-8").splitlines()
    column = header.split("\t").index("sentence")
    texts = [line.split("\t")[column] for line in lines if line.strip()]
    return random.Random(0).sample(texts, n)


def one_process(texts, cfg, seed, shard_rows):
    return augment_texts(texts, [cfg], seed=seed, shard_rows=shard_rows, translators=translators)


def threaded(texts, cfg, seed, shard_rows, pool):
    named = list(zip(augmenter_names([cfg]), [cfg]))
    futures = [pool.submit(augment_shard, [texts[r] for r in part], list(part), named, seed, i, translators)
               for i, part in enumerate(shards(len(texts), shard_rows))]
    rows = [row for f in futures for row in f.result()]
    return keep_new(texts, rows)


def timed(fn, *args):
    """Wall seconds, the call's result, and the process CPU seconds per wall second (cores used)."""
    start, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    wall = time.perf_counter() - start
    return wall, out, (time.process_time() - cpu) / wall


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--bt-rows", type=int, default=2000, help="rows for the back-translation augmenters")
    parser.add_argument("--shard-rows", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="augmenter names to run (default: all)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    wall = time.perf_counter()
    texts_all = sentences(max(args.rows, args.bt_rows))
    seed = 0
    results = []
    with ThreadPoolExecutor(WORKERS) as pool:
        for name, cfg in augmenters().items():
            if args.only and name not in args.only:
                continue
            n = args.bt_rows if cfg.kind == "backtranslation" else args.rows
            texts = texts_all[:n]
            one_process(texts[:20], cfg, seed, 10)  # warm-up: WordNet, the nlpaug dictionaries, the translators
            threaded(texts[:20], cfg, seed, 10, pool)
            single, multi, cores, same = [], [], [], True
            for _ in range(args.repeats):
                t1, (kept1, dropped1), _ = timed(one_process, texts, cfg, seed, args.shard_rows)
                t2, (kept2, dropped2), c2 = timed(threaded, texts, cfg, seed, args.shard_rows, pool)
                single.append(t1)
                multi.append(t2)
                cores.append(c2)
                same = same and kept1 == kept2 and dropped1 == dropped2
            s1, s2 = statistics.median(single), statistics.median(multi)
            row = {"augmenter": name, "rows": n, "shard_rows": args.shard_rows, "shards": len(shards(n, args.shard_rows)),
                   "one_process_seconds": single, "threads_seconds": multi,
                   "one_process_sps": n / s1, "threads_sps": n / s2, "speedup": s1 / s2,
                   "threads_cores_used": statistics.median(cores),
                   "kept": len(kept1), "dropped": dict(dropped1), "same_rows": same,
                   "examples": [{"source": texts[r.row], "new": r.text} for r in kept1[:3]]}
            results.append(row)
            print(f"{name:24s} {n:5d} rows  one process {row['one_process_sps']:8.1f}/s  2 threads "
                  f"{row['threads_sps']:8.1f}/s  x{row['speedup']:.2f}  cores {row['threads_cores_used']:.2f}  kept {row['kept']}  same rows {same}",
                  flush=True)
    wall = time.perf_counter() - wall
    lines = ["| augmenter | source rows | one process, sentences/s | 2 threads (sharded), sentences/s | "
             "threads / one process | CPU cores used, 2 threads | new rows kept | sharded rows = unsharded |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['augmenter']} | {r['rows']} | {r['one_process_sps']:.1f} | {r['threads_sps']:.1f} | "
                     f"{r['speedup']:.2f}x | {r['threads_cores_used']:.2f} | {r['kept']} ({100 * r['kept'] / r['rows']:.0f}%) | "
                     f"{'yes' if r['same_rows'] else 'NO'} |")
    lines += ["", f"SST-2 training sentences (`random.Random(0).sample` of train.tsv), ratio 1 (one new row asked per "
              f"row), seed {seed}, {args.shard_rows} rows per shard; median of {args.repeats} repeats after an untimed "
              f"warm-up; both columns include `keep_new` (dropping unchanged and repeated rows). \"2 threads\": "
              f"`augment_shard` per shard on a `ThreadPoolExecutor({WORKERS})` (what the flow's "
              f"`ThreadPoolTaskRunner` with 2 workers runs). torch: 1 intra-op thread per Python thread; CPU with 2 "
              f"cores, shared with another benchmark (\"CPU cores used\": this process's CPU seconds per wall second during the "
              f"threaded runs; near 1 means the threads had one core between them). nlpaug augmenters run under the library's global RNG lock. "
              f"Back-translation: En->De then De->En lowlm translators (10k Multi30k pairs each), greedy, or top-k 10 "
              f"sampling; max length 80, batch 64. Wall time {wall / 60:.1f} min."]
    md = "\n".join(lines) + "\n"
    print(md)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "augment_throughput.md").write_text(md)
    (RESULTS / "augment_throughput.json").write_text(json.dumps(
        {"config": {"rows": args.rows, "bt_rows": args.bt_rows, "shard_rows": args.shard_rows,
                    "repeats": args.repeats, "workers": WORKERS, "seed": seed, "torch_threads": 1,
                    "platform": platform.platform(), "wall_seconds": wall}, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
