"""Extractive QA on SQuAD v1.1 (the rebuilt dev set in ../shared/data), by the benchmark protocol:
train on articles 1-34, select epochs on 35-38, report on 39-48 once; beside the lexical sliding-window
baseline on the same test questions.

Runs the same library steps as the qa flow's stages (no Prefect, no MLflow), with the `squad` preset:

    .venv/bin/python benchmarks/qa_squad.py                       # the preset as it is
    .venv/bin/python benchmarks/qa_squad.py --set model.attention=aligned --name aligned

Each finished run is appended to benchmarks/results/qa_squad_runs.jsonl (a run already there under the
same name and config is not run again); benchmarks/results/qa_squad.json holds the run named `--report`
(default: the preset's) with `em`, `f1`, `baseline_em`, `baseline_f1` in points, and qa_squad.md the table.
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

from lowlm.config import load_pipeline_config, parse_override  # noqa: E402
from lowlm.data.squad import load_qa  # noqa: E402
from lowlm.evaluation.lexical import lexical_answers  # noqa: E402
from lowlm.evaluation.squad import squad_scores  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.reading import train_reader  # noqa: E402
from lowlm.training.trainer import Checkpoint, EpochMetrics  # noqa: E402
from tasks.qa import _texts  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def run(config, checkpoint: Path) -> dict:
    """Train, read the test questions, score; ``checkpoint`` is written after every epoch, and a run
    stopped part-way (a session's end) goes on from it when started again with the same config."""
    data = load_qa(config.corpus)
    t = config.tokenizer
    tok = Tokenizer.train(_texts(data.splits["train"]), kind=t.kind, vocab_size=t.vocab_size,
                          min_frequency=t.min_frequency, lowercase=t.lowercase, nfkc=t.nfkc, max_length=t.max_length)
    show = EpochMetrics(lambda epoch, m: print(f"  epoch {epoch}: val EM {m['val_exact_match']:.1f} F1 "
                                               f"{m['val_f1']:.1f} loss {m['val_loss']:.3f} ({m['seconds']:.0f} s)",
                                               flush=True))
    start = time.perf_counter()
    resume = str(checkpoint) if checkpoint.exists() else None
    if resume:
        print(f"  resuming from {checkpoint}", flush=True)
    reader, result, counts = train_reader(config.model, tok, data.splits["train"], data.splits["validation"],
                                          config.train.model_copy(update={"progress": False}),
                                          callbacks=[show, Checkpoint(checkpoint)], resume=resume)
    train_seconds = result.seconds  # the trainer's clock: carried over a resume
    test = data.splits["test"]
    golds = [list(a) for a in test["answers"]]
    start = time.perf_counter()
    answers = [a["answer"] for a in reader.answer(test["context"].tolist(), test["question"].tolist())]
    read_seconds = time.perf_counter() - start
    ours = squad_scores(answers, golds)
    lexical = squad_scores(lexical_answers(test["context"].tolist(), test["question"].tolist(),
                                           config.model.max_answer_tokens), golds)
    best = result.history[result.best_epoch - 1]
    return {"em": ours["exact_match"], "f1": ours["f1"], "baseline_em": lexical["exact_match"],
            "baseline_f1": lexical["f1"], "val_em": best["val_exact_match"], "val_f1": best["val_f1"],
            "best_epoch": result.best_epoch, "epochs_run": len(result.history), "train_seconds": train_seconds,
            "test_questions_per_second": len(test) / read_seconds,
            "parameters": sum(p.numel() for p in reader.model.parameters()), "vocab_size": tok.vocab_size,
            "questions": {s: len(f) for s, f in data.splits.items()}, "encoding": counts,
            "history": result.history}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="squad")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="bidaf")
    parser.add_argument("--report", default="bidaf", help="the run whose figures go to qa_squad.json")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = dict(parse_override(o) for o in args.overrides)
    config = load_pipeline_config(args.preset, overrides)
    config.corpus.path = str((ROOT / config.corpus.path).resolve()) if not Path(config.corpus.path).is_absolute() \
        else config.corpus.path
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / "qa_squad_runs.jsonl"
    runs = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    key = {"name": args.name, "config": config.model_dump(mode="json")}
    if not any(r["name"] == key["name"] and r["config"] == key["config"] for r in runs):
        print(f"{args.name}: training on {config.corpus.path} ...", flush=True)
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        checkpoint = ROOT / "benchmarks" / ".cache" / "qa_squad" / f"{args.name}-{digest}" / "checkpoint.pt"
        runs.append({**key, "threads": args.threads, **run(config, checkpoint)})
        with log.open("a") as fh:
            fh.write(json.dumps(runs[-1]) + "\n")
    latest = {r["name"]: r for r in runs}
    table = ["| run | test EM | test F1 | val F1 (selects) | best epoch | train min | params | baseline EM | "
             "baseline F1 |", "|---|---|---|---|---|---|---|---|---|"]
    for name, r in latest.items():
        table.append(f"| {name} | {r['em']:.1f} | {r['f1']:.1f} | {r['val_f1']:.1f} | {r['best_epoch']} of "
                     f"{r['epochs_run']} | {r['train_seconds'] / 60:.0f} | {r['parameters']:,} | "
                     f"{r['baseline_em']:.1f} | {r['baseline_f1']:.1f} |")
    print("\n".join(table))
    (RESULTS / "qa_squad.md").write_text("\n".join(table) + "\n")
    if args.report in latest:
        r = latest[args.report]
        (RESULTS / "qa_squad.json").write_text(json.dumps(
            {"em": r["em"], "f1": r["f1"], "baseline_em": r["baseline_em"], "baseline_f1": r["baseline_f1"],
             "run": args.report, "val_f1": r["val_f1"], "best_epoch": r["best_epoch"],
             "train_seconds": r["train_seconds"], "parameters": r["parameters"], "questions": r["questions"],
             "config": r["config"]}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
