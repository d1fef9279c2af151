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
import copy
import hashlib
import json
import os
import statistics
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

from lowlm.config import CorpusConfig, TrainConfig, load_pipeline_config  # noqa: E402
from lowlm.config.models import LanguageModelConfig, RNNAttentionConfig  # noqa: E402
from lowlm.config.stages import FineTuneConfig, LanguageModelTrainConfig  # noqa: E402
from lowlm.data.corpus import load_corpus  # noqa: E402
from lowlm.inference.classifier import TextClassifier  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.text.batching import Batches  # noqa: E402
from lowlm.training.fewshot import (GradualUnfreezing, evaluate, fine_tune, layer_groups,  # noqa: E402
                                    sample_k_per_class)
from lowlm.training.objectives import train_classifier  # noqa: E402
from lowlm.training.pretrained import load_encoder  # noqa: E402
from lowlm.training.trainer import seed_everything  # noqa: E402
from lowlm.data.unlabelled import load_texts, read_source  # noqa: E402
from lowlm.inference.language_model import LanguageModelBundle  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.training.pretrain import pretrain  # noqa: E402
from lowlm.training.trainer import Checkpoint, EpochMetrics  # noqa: E402
from transfer_data import CACHE, banking77_corpus, pretraining_mix, target_texts  # noqa: E402

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


def pretrain_key() -> str:
    """The key of the LM that ``pretrain`` makes with today's code and settings."""
    key = f"pretrain-{code_digest()}-{json.dumps([LM.model_dump(), LM_TRAIN.model_dump(), VOCAB], sort_keys=True)}"
    return "pretrain-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def stage_pretrain() -> LanguageModelBundle:
    key = pretrain_key()
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


# -- shared ------------------------------------------------------------------------------------------

def latest_lm(name: str = "pretrain") -> tuple[dict, LanguageModelBundle]:
    """The newest finished pretraining (or ``stage2-*``) record and its bundle: later stages reuse the LM
    that was pretrained, whatever library edits came after (the record names its key)."""
    done = [r for r in records() if r["stage"] == name and (CACHE / r["key"] / "lm").exists()]
    if not done:
        raise SystemExit(f"no finished {name} run: run `benchmarks/transfer.py pretrain` first")
    return done[-1], LanguageModelBundle.load(CACHE / done[-1]["key"] / "lm")


def split_texts(corpus, split: str) -> tuple[list[str], list[int]]:
    data = corpus.splits[split][:]
    return list(data["text"]), list(data["label"])


def classifier_config(**changes) -> RNNAttentionConfig:
    return RNNAttentionConfig(embedding_dim=LM.embedding_dim, hidden_dim=LM.hidden_dim, attention_dim=128,
                              dropout=0.3, **changes)


def base_classifier(lm: LanguageModelBundle, labels: list[str], config: RNNAttentionConfig, seed: int = 0):
    seed_everything(seed)
    net = build_model(config, vocab_size=lm.tokenizer.vocab_size, num_labels=len(labels), words=lm.tokenizer.tokens())
    load_encoder(net, lm, lm.tokenizer)
    return TextClassifier(net, lm.tokenizer, labels)


# -- few-shot BANKING77 ------------------------------------------------------------------------------

SHOTS, SEEDS = 10, [0, 1, 2]
LRS = [3e-3, 1e-2]  # the encoder strategies' rate, chosen on validation with seed 0
HEAD_LRS = [0.03, 0.1]


def stage2(lm_record: dict, lm: LanguageModelBundle) -> LanguageModelBundle:
    """ULMFiT's second stage: the pretrained LM fine-tuned on BANKING77's unlabelled train texts."""
    key = "stage2-" + hashlib.sha256(f"{lm_record['key']}-banking77-3ep".encode()).hexdigest()[:12]
    folder = CACHE / key
    if find(key) and (folder / "lm").exists():
        return LanguageModelBundle.load(folder / "lm")
    corpus = load_corpus(CorpusConfig(**banking77_corpus()))
    train, _ = split_texts(corpus, "train")
    validation, _ = split_texts(corpus, "validation")
    cfg = LM_TRAIN.model_copy(update={"epochs": 3, "lr": 1e-3, "progress": False, "warmup_ratio": 0.1})
    start = time.perf_counter()
    bundle, result = pretrain(LM, lm.tokenizer, train, validation, cfg, model=copy.deepcopy(lm.model))
    folder.mkdir(parents=True, exist_ok=True)
    bundle.save(folder / "lm")
    save({"key": key, "stage": "stage2", "from": lm_record["key"], "seconds": time.perf_counter() - start,
          "validation_perplexity_before": LanguageModelBundle(lm.model, lm.tokenizer).perplexity(validation),
          "validation_perplexity": [h["val_perplexity"] for h in result.history]})
    return bundle


def fewshot_run(name: str, strategy: str, base: TextClassifier, corpus, seed: int, finetune: FineTuneConfig) -> dict:
    key = f"fewshot-{name}-{strategy}-s{seed}-" + hashlib.sha256(json.dumps(
        [finetune.model_dump(), code_digest(CODE + ["lowlm/training/fewshot.py", "lowlm/training/pretrained.py"]),
         SHOTS]).encode()).hexdigest()[:12]
    done = find(key)
    if done:
        return done
    texts, labels = split_texts(corpus, "train")
    shots = sample_k_per_class(labels, SHOTS, seed)
    validation = split_texts(corpus, "validation")
    result = fine_tune(base, strategy, [texts[i] for i in shots], [labels[i] for i in shots], corpus.labels,
                       finetune, seed, validation=validation)
    record = {"key": key, "stage": "fewshot", "base": name, "strategy": strategy, "seed": seed,
              "finetune": finetune.model_dump(), "shots": len(shots), "seconds": result.seconds,
              "val_accuracy": evaluate(result.classifier, *validation)["accuracy"],
              "test_accuracy": evaluate(result.classifier, *split_texts(corpus, "test"))["accuracy"]}
    save(record)
    print(f"fewshot {name} {strategy} seed {seed} lr {finetune.lr}/{finetune.head_lr}: val {record['val_accuracy']:.4f} "
          f"test {record['test_accuracy']:.4f} ({record['seconds']:.0f} s)", flush=True)
    return record


def full_data_banking77(lm: LanguageModelBundle, corpus) -> dict:
    """The same architecture from scratch on the whole train split (the trainer's defaults, seed 0)."""
    key = "fulldata-banking77-" + hashlib.sha256(json.dumps(code_digest(CODE)).encode()).hexdigest()[:12]
    done = find(key)
    if done:
        return done
    config = TrainConfig(epochs=10, batch_size=32, lr=2e-3, patience=3, seed=0, progress=False,
                         threads=LM_TRAIN.threads)
    tok = lm.tokenizer
    seed_everything(0)
    net = build_model(classifier_config(), vocab_size=tok.vocab_size, num_labels=len(corpus.labels))
    texts, labels = split_texts(corpus, "train")
    vt, vl = split_texts(corpus, "validation")
    start = time.perf_counter()
    result = train_classifier(net, Batches(tok.encode_batch(texts), labels, 32, shuffle=True, seed=0),
                              Batches(tok.encode_batch(vt), vl, 256), len(corpus.labels), config)
    clf = TextClassifier(net, tok, corpus.labels)
    record = {"key": key, "stage": "fulldata", "seconds": time.perf_counter() - start, "best_epoch": result.best_epoch,
              "val_accuracy": evaluate(clf, vt, vl)["accuracy"],
              "test_accuracy": evaluate(clf, *split_texts(corpus, "test"))["accuracy"]}
    save(record)
    print(f"full data BANKING77: test {record['test_accuracy']:.4f}", flush=True)
    return record


def stage_fewshot() -> dict:
    lm_record, lm = latest_lm()
    corpus = load_corpus(CorpusConfig(**banking77_corpus()))
    bases = {"lm": lm, "lm+target": stage2(lm_record, lm)}
    rows = []
    chosen_lr = {}
    for name, model in bases.items():
        base = base_classifier(model, corpus.labels, classifier_config())
        for strategy in ("prototypes", "head", "gradual_unfreezing", "full", "scratch"):
            if strategy == "scratch" and name != "lm":
                continue  # fresh weights: the base's encoder does not matter
            if strategy == "prototypes":
                grid = [FineTuneConfig()]
            elif strategy == "head":
                grid = [FineTuneConfig(head_lr=lr) for lr in HEAD_LRS]
            else:
                grid = [FineTuneConfig(lr=lr) for lr in LRS]
            tried = [fewshot_run(name, strategy, base, corpus, SEEDS[0], f) for f in grid]
            best = grid[max(range(len(grid)), key=lambda i: tried[i]["val_accuracy"])]
            chosen_lr[f"{name}/{strategy}"] = best.model_dump()
            rows += [fewshot_run(name, strategy, base, corpus, seed, best) for seed in SEEDS]
    full = full_data_banking77(lm, corpus)

    def mean(values):
        return sum(values) / len(values)

    table = {}
    for row in rows:
        table.setdefault(f"{row['strategy']}" + ("" if row["base"] == "lm" or row["strategy"] == "scratch"
                                                 else " (LM fine-tuned on BANKING77 text)"), []).append(row)
    summary = {name: {"test_accuracy": mean([r["test_accuracy"] for r in rs]),
                      "test_std": statistics.pstdev([r["test_accuracy"] for r in rs]),
                      "val_accuracy": mean([r["val_accuracy"] for r in rs]),
                      "seeds": [r["seed"] for r in rs], "finetune": rs[0]["finetune"]} for name, rs in table.items()}
    best = max((n for n in summary if not n.startswith("scratch")), key=lambda n: summary[n]["val_accuracy"])
    out = {"scratch": summary["scratch"]["test_accuracy"], "best": summary[best]["test_accuracy"],
           "best_strategy": best, "full_data": full["test_accuracy"],
           **{name: row["test_accuracy"] for name, row in summary.items()}, "strategies": summary,
           "shots_per_class": SHOTS, "classes": len(corpus.labels), "lm": lm_record["key"],
           "chosen_on_validation": chosen_lr}
    (RESULTS / "fewshot_banking77.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("scratch", "best", "best_strategy", "full_data")}, indent=1))
    return out


# -- full data: TREC-6 and SST-2 ---------------------------------------------------------------------

def full_run(corpus_name: str, variant: str, seed: int, lm: LanguageModelBundle, lm_key: str,
             run: bool = True) -> dict | None:
    """One full-data training (``run=False``: only its finished record, or None)."""
    preset = load_pipeline_config({"trec": "trec", "sst2": "sst2"}[corpus_name])
    key = f"full-{corpus_name}-{variant}-s{seed}-" + hashlib.sha256(json.dumps(
        [preset.model.model_dump(), preset.train.model_dump(), lm_key, code_digest(CODE)]).encode()).hexdigest()[:12]
    done = find(key)
    if done or not run:
        return done
    corpus = load_corpus(preset.corpus)
    texts, labels = split_texts(corpus, "train")
    vt, vl = split_texts(corpus, "validation")
    model = preset.model.model_copy(update={"embedding_dim": LM.embedding_dim, "hidden_dim": LM.hidden_dim})
    train_cfg = preset.train.model_copy(update={"seed": seed, "progress": False, "threads": LM_TRAIN.threads,
                                                "device": "cpu"})
    callbacks, groups = [], None
    if variant == "pretrained":
        tok = lm.tokenizer
        seed_everything(seed)
        net = build_model(model, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
        load_encoder(net, lm, tok)
        layers = layer_groups(net)
        callbacks = [GradualUnfreezing(layers)]
        groups = [{"params": g, "lr": train_cfg.lr / 2.6 ** (len(layers) - 1 - i),
                   "weight_decay": train_cfg.weight_decay} for i, g in enumerate(layers)]
    else:
        tok = Tokenizer.train(texts, kind=preset.tokenizer.kind, vocab_size=preset.tokenizer.vocab_size,
                              lowercase=preset.tokenizer.lowercase, max_length=preset.tokenizer.max_length)
        seed_everything(seed)
        net = build_model(model, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    start = time.perf_counter()
    result = train_classifier(net, Batches(tok.encode_batch(texts), labels, train_cfg.batch_size, shuffle=True,
                                           seed=seed), Batches(tok.encode_batch(vt), vl, 256), len(corpus.labels),
                              train_cfg, callbacks=callbacks, param_groups=groups)
    clf = TextClassifier(net, tok, corpus.labels)
    record = {"key": key, "stage": "full", "corpus": corpus_name, "variant": variant, "seed": seed,
              "seconds": time.perf_counter() - start, "best_epoch": result.best_epoch,
              "model": model.model_dump(), "val_accuracy": evaluate(clf, vt, vl)["accuracy"],
              "test_accuracy": evaluate(clf, *split_texts(corpus, "test"))["accuracy"]}
    save(record)
    print(f"full {corpus_name} {variant} seed {seed}: val {record['val_accuracy']:.4f} test {record['test_accuracy']:.4f} "
          f"({record['seconds']:.0f} s)", flush=True)
    return record


def stage_full(corpora=("trec", "sst2"), seeds=SEEDS, variants=("pretrained", "scratch")) -> dict:
    """Runs ``seeds`` x ``variants`` (paired, seed by seed; several processes can share the seeds), then
    writes a corpus's entry once all of SEEDS x both variants are on record. Scratch runs do not read the
    LM, only name it: a process running only them can start while ``pretrain`` is still training it."""
    if "pretrained" in variants:
        lm_record, lm = latest_lm()
        lm_key = lm_record["key"]
    else:
        done = [r for r in records() if r["stage"] == "pretrain" and (CACHE / r["key"] / "lm").exists()]
        lm, lm_key = None, done[-1]["key"] if done else pretrain_key()
    path = RESULTS / "pretrained_full.json"
    out = json.loads(path.read_text()) if path.exists() else {}
    for name in corpora:
        for seed in seeds:
            for variant in variants:
                full_run(name, variant, seed, lm, lm_key)
        runs = {v: [full_run(name, v, seed, lm, lm_key, run=False) for seed in SEEDS]
                for v in ("pretrained", "scratch")}
        if any(r is None for rs in runs.values() for r in rs):
            print(f"{name}: waiting for other seeds ({ {v: [r is not None for r in rs] for v, rs in runs.items()} })")
            continue
        out[f"{name}_test_accuracy"] = {v: statistics.median(r["test_accuracy"] for r in rs) for v, rs in runs.items()}
        out[f"{name}_runs"] = {v: [{k: r[k] for k in ("seed", "val_accuracy", "test_accuracy", "seconds")} for r in rs]
                               for v, rs in runs.items()}
        path.write_text(json.dumps(out, indent=1))
        print(name, out[f"{name}_test_accuracy"])
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stages", nargs="*", default=["pretrain"], choices=["pretrain", "fewshot", "full"])
    parser.add_argument("--corpora", nargs="*", default=["trec", "sst2"], help="full: which corpora")
    parser.add_argument("--seeds", nargs="*", type=int, default=SEEDS, help="full: which seeds this process runs")
    parser.add_argument("--variants", nargs="*", default=["pretrained", "scratch"], help="full: which variants")
    args = parser.parse_args(argv)
    torch.set_num_threads(LM_TRAIN.threads)
    for stage in args.stages:
        {"pretrain": stage_pretrain, "fewshot": stage_fewshot, "full": lambda: stage_full(args.corpora, args.seeds, args.variants)}[stage]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
