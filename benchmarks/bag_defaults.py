"""One set of bag-of-n-grams training defaults for data nobody tuned them to, chosen on validation only.

The foundation work's selection grid (``benchmarks/bag_vs_fasttext.py --select``; every run in
``benchmarks/results/bag_vs_fasttext_selection.json``) scored lr x epochs x batch size on the
validation splits of SST-2, TREC-6 and BANKING77, seeds 0-2. This script reads those runs, keeps the
grid points every data set ran, and ranks them by the mean over data sets of the median validation
accuracy over seeds (each data set weighs the same, whatever its size). The pick is the pipeline's
default for ``model.kind: bag_of_ngrams`` (``lowlm/config/pipelines.py``). No test split is read.

    .venv/bin/python benchmarks/bag_defaults.py        # prints the table, writes results/bag_defaults.json
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "results" / "bag_vs_fasttext_selection.json"
OUT = HERE / "results" / "bag_defaults.json"
KEYS = ("lr", "epochs", "batch_size")


def main() -> int:
    runs = json.loads(SOURCE.read_text())["runs"]
    scores: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        point = tuple(run["settings"][k] for k in KEYS)
        scores[point][run["dataset"]].append(run["validation_accuracy"])
    datasets = sorted({run["dataset"] for run in runs})
    table = []
    for point, by_data in scores.items():
        if set(by_data) != set(datasets):
            continue  # not run on every data set
        medians = {name: statistics.median(values) for name, values in by_data.items()}
        table.append({**dict(zip(KEYS, point)), **{f"validation_{n}": medians[n] for n in datasets},
                      "mean_validation": statistics.mean(medians.values())})
    table.sort(key=lambda row: (-row["mean_validation"], row["epochs"], -row["batch_size"]))
    OUT.write_text(json.dumps({"source": SOURCE.name, "datasets": datasets, "chosen": table[0], "table": table},
                              indent=1))
    print(f"grid points run on all of {', '.join(datasets)}: {len(table)}; mean of per-data-set median "
          f"validation accuracy (seeds 0-2)")
    print(f"{'lr':>6} {'epochs':>6} {'batch':>5}  " + "  ".join(f"{n:>9}" for n in datasets) + "       mean")
    for row in table[:10]:
        print(f"{row['lr']:>6} {row['epochs']:>6} {row['batch_size']:>5}  "
              + "  ".join(f"{100 * row[f'validation_{n}']:8.2f}%" for n in datasets)
              + f"  {100 * row['mean_validation']:8.2f}%")
    print(f"chosen: lr {table[0]['lr']}, {table[0]['epochs']} epochs, batch {table[0]['batch_size']} -> {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
