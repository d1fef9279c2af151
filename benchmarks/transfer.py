"""What a pretrained language model buys: LM pretraining, few-shot BANKING77, full-data TREC-6 and SST-2.

Stages (each resumable; a finished one is read back from ``benchmarks/.cache/transfer/``):

- ``pretrain``: the bidirectional GRU language model on the unlabelled English mix of
  ``transfer_data.py`` (perplexity of the forward model on the mix's held-out 1%, training tokens per
  second). Writes ``benchmarks/results/lm_pretrain.json``.
- ``fewshot``: BANKING77, 10 examples per intent, seeds 0-2, every fine-tuning strategy, from the
  pretrained LM (and from it after ULMFiT's second stage on BANKING77's own unlabelled train text);
  the best strategy chosen on the validation carve (10% of train.csv, seed 13); test reported once;
  ``full_data``: the same architecture trained from scratch on the whole train split.
  Writes ``benchmarks/results/fewshot_banking77.json``.
- ``full``: TREC-6 and SST-2 with all their training data, the classifier started from the LM against
  the same classifier from scratch, seeds 0-2, medians. Writes ``benchmarks/results/pretrained_full.json``.

    .venv/bin/python benchmarks/transfer.py pretrain
    .venv/bin/python benchmarks/transfer.py fewshot full

Each finished run goes to ``benchmarks/results/transfer_runs.jsonl`` at once and is skipped on a
restart (records made under other settings, or other library code, are ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.chdir(ROOT)  # presets name ../shared/data relative to the project's root

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()

import torch  # noqa: E402

from lowlm.config.models import LanguageModelConfig  # noqa: E402
from lowlm.config.stages import LanguageModelTrainConfig  # noqa: E402
from lowlm.data.unlabelled import load_texts, read_source  # noqa: E402
from lowlm.inference.language_model import LanguageModelBundle  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.pretrain import pretrain  # noqa: E402
from lowlm.training.trainer import Checkpoint, EpochMetrics  # noqa: E402
from transfer_data import CACHE, pretraining_mix, target_texts  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "transfer_runs.jsonl"
LM = LanguageModelConfig(embedding_dim=200, hidden_dim=256)
LM_TRAIN = LanguageModelTrainConfig(epochs=2, lr=2e-3, batch_size=64, window=70, sampled_softmax=4096,
                                    warmup_ratio=0.05, threads=int(os.environ.get("BENCH_THREADS", "1")))
VOCAB = 30000
CODE = ["lowlm/models/language_model.py", "lowlm/training/pretrain.py", "lowlm/training/trainer.py",
        "lowlm/training/objectives.py", "lowlm/data/unlabelled.py", "benchmarks/transfer_data.py"]


def code_digest(files=CODE) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update((ROOT / f).read_bytes())
    return h.hexdigest()[:12]


def records() -> list[dict]:
    return [json.loads(line) for line in RUNS.read_text().splitlines()] if RUNS.exists() else []


def find(key: str) -> dict | None:
    return next((r for r in records() if r["key"] == key), None)


def save(record: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    with RUNS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def stage_pretrain() -> LanguageModelBundle:
    key = f"pretrain-{code_digest()}-{json.dumps([LM.model_dump(), LM_TRAIN.model_dump(), VOCAB], sort_keys=True)}"
    key = "pretrain-" + hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = CACHE / key
    done = find(key)
    if done and (folder / "lm").exists():
        print(f"pretrain: done ({done['test_perplexity']:.1f} test perplexity)")
        return LanguageModelBundle.load(folder / "lm")
    mix = load_texts(pretraining_mix())
    targets = [t for s in target_texts() for t in read_source(s)]
    tok = Tokenizer.train(mix.splits["train"] + targets, vocab_size=VOCAB, max_length=512)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt = folder / "checkpoint.pt"

    def show(epoch, m):
        print(f"epoch {epoch}: val perplexity {m['val_perplexity']:.1f}, {m['tokens_per_second']:.0f} tokens/s, "
              f"{m['seconds']:.0f} s", flush=True)

    start = time.perf_counter()
    bundle, result = pretrain(LM, tok, mix.splits["train"], mix.splits["validation"], LM_TRAIN.model_copy(
        update={"progress": False}), callbacks=[EpochMetrics(show), Checkpoint(ckpt)],
        resume=ckpt if ckpt.exists() else None)
    bundle.save(folder / "lm")
    test_ppl = bundle.perplexity(mix.splits["test"])
    words = sum(len(t.split()) for t in mix.splits["train"])
    record = {"key": key, "stage": "pretrain", "test_perplexity": test_ppl,
              "validation_perplexity": [h["val_perplexity"] for h in result.history],
              "train_tokens_per_second": result.throughput, "train_texts": len(mix.splits["train"]),
              "train_words": words, "vocab_size": tok.vocab_size, "seconds": time.perf_counter() - start,
              "best_epoch": result.best_epoch, "dropped": mix.dropped, "sources": mix.counts,
              "model": LM.model_dump(), "train": LM_TRAIN.model_dump(), "threads": LM_TRAIN.threads,
              "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip()}
    save(record)
    (RESULTS / "lm_pretrain.json").write_text(json.dumps(
        {k: record[k] for k in ("test_perplexity", "validation_perplexity", "train_tokens_per_second",
                                "train_texts", "train_words", "vocab_size", "seconds", "best_epoch", "sources",
                                "dropped", "model", "train", "threads")}, indent=1))
    ckpt.unlink(missing_ok=True)
    print(f"pretrain: test perplexity {test_ppl:.1f}, {result.throughput:.0f} tokens/s")
    return bundle


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", default=["pretrain"], choices=["pretrain", "fewshot", "full"])
    args = parser.parse_args(argv)
    torch.set_num_threads(LM_TRAIN.threads)
    for stage in args.stages:
        {"pretrain": stage_pretrain}[stage]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
