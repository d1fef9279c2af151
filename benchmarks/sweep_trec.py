"""A 16-trial Optuna sweep of the bag of n-grams on TREC-6 against the preset as it is.

    .venv/bin/python benchmarks/sweep_trec.py [--trials 16] [--workers 1 2]

Runs, each through the CLI in its own MLflow store (benchmarks/.cache/sweep_trec/NAME/) and work folder:

- ``preset``: ``lowlm run trec --set model.kind=bag_of_ngrams``: the trec preset's train settings (lr 0.003,
  up to 25 epochs, batch 32, patience 6) with the bag's model defaults (100 dimensions, bigrams);
- ``sweep-wN``: ``lowlm sweep trec --set model.kind=bag_of_ngrams --space configs/sweeps/bag-of-ngrams.yaml
  --trials T --workers N``: TPE proposes, the median pruner stops trials behind the median on the
  per-epoch validation accuracy, and the best trial (on validation) is registered. Trial 0 is the
  preset's own values (all inside the space), so with one worker it is the ``preset`` run again.

Protocol (../shared/data/README.md): validation is the 10% carve of train_5500.label (seed 13); trials
are chosen on it alone; TREC_10.label (500 questions) is read once per run, by the evaluate stage of
the one model each run registers. Reported: the registered model's validation and test accuracy,
wall time of the whole command (Prefect's temporary server, data stages, trials, evaluation with the
preset's attack, registration), trials completed and pruned. Each run is saved as it finishes
(results/sweep_trec_runs.jsonl) and skipped on a rerun; the table goes to results/sweep_trec.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CACHE = ROOT / "benchmarks" / ".cache" / "sweep_trec"
RUNS = RESULTS / "sweep_trec_runs.jsonl"
SPACE = ROOT / "configs" / "sweeps" / "bag-of-ngrams.yaml"
BAG = ["--set", "model.kind=bag_of_ngrams"]


def command(name: str, trials: int) -> list[str]:
    where = ["--set", f"work_dir={CACHE / name / 'work'}", "--set", "registry.model_name=trec6-bag"]
    lowlm = [str(ROOT / ".venv" / "bin" / "lowlm")]
    if name == "preset":
        return lowlm + ["run", "trec", *BAG, *where]
    workers = name.split("-w")[1]
    return lowlm + ["sweep", "trec", *BAG, *where, "--space", str(SPACE), "--trials", str(trials),
                    "--workers", workers]


def measure(name: str, trials: int) -> dict:
    store = CACHE / name
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "OMP_WAIT_POLICY": "PASSIVE",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}
    env.pop("PREFECT_API_URL", None)
    log = store / "run.log"
    start = time.perf_counter()
    with log.open("w") as out:
        code = subprocess.run(command(name, trials), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    wall = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"{name}: exit {code}; see {log}")
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("lowlm-trec")
    flow = "classification" if name == "preset" else "sweep"
    parent = client.search_runs([experiment.experiment_id], filter_string=f"tags.`lowlm.flow` = '{flow}'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    m = parent.data.metrics
    row = {"run": name, "wall_seconds": round(wall, 1), "validation_accuracy": m["best_val"],
           "test_accuracy": m["test_accuracy"], "test_macro_f1": m["test_macro_f1"],
           "trials_complete": int(m.get("trials_complete", 1)), "trials_pruned": int(m.get("trials_pruned", 0)),
           "trials_fail": int(m.get("trials_fail", 0)),
           "best_params": {k[len("best."):]: v for k, v in parent.data.params.items() if k.startswith("best.")}}
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    done = {}
    if RUNS.exists():
        for line in RUNS.read_text().splitlines():
            row = json.loads(line)
            done[row["run"]] = row
    names = ["preset", *[f"sweep-w{w}" for w in args.workers]]
    for name in names:
        if name in done:
            print(f"{name}: saved earlier, skipped")
            continue
        print(f"{name}: running ...", flush=True)
        row = measure(name, args.trials)
        with RUNS.open("a") as out:
            out.write(json.dumps(row) + "\n")
        done[name] = row
    rows = [done[n] for n in names]
    anchor = done["preset"]
    for row in rows:
        row["wall_vs_preset"] = round(row["wall_seconds"] / anchor["wall_seconds"], 2)
        row["test_accuracy_gain"] = round(row["test_accuracy"] - anchor["test_accuracy"], 4)
    result = {"dataset": "TREC-6 (train_5500 minus a 10% validation carve, seed 13; test TREC_10)",
              "trials": args.trials, "space": SPACE.name, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "runs": rows}
    (RESULTS / "sweep_trec.json").write_text(json.dumps(result, indent=1))
    lines = ["| run | wall s | x preset | trials complete / pruned | val acc | test acc | test macro-F1 | best settings |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        best = ", ".join(f"{k}={float(v):.3g}" if "." in v else f"{k}={v}" for k, v in r["best_params"].items())
        lines.append(f"| {r['run']} | {r['wall_seconds']:.0f} | {r['wall_vs_preset']:.2f} | "
                     f"{r['trials_complete']} / {r['trials_pruned']} | {100 * r['validation_accuracy']:.2f} | "
                     f"{100 * r['test_accuracy']:.2f} | {100 * r['test_macro_f1']:.2f} | {best or '-'} |")
    (RESULTS / "sweep_trec.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
