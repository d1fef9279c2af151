"""Back-translation where it helps: Multi30k De->En with 10,000 parallel pairs, with and without
synthetic German for the English side of the other training pairs.

    .venv/bin/python benchmarks/backtranslation.py            # resumes: finished steps are kept
    .venv/bin/python benchmarks/backtranslation.py --fresh    # start again

Protocol (../shared/data/README.md): the multi30k preset's model, tokenizers and training settings;
a seeded permutation of the 28,997 training pairs gives 10,000 parallel pairs and the English of
the rest (their German is never read). The reverse model (En->De) trains on the same 10,000 pairs.
Every choice (which back-translation variant, and each model's decoding: greedy or beam and its
length penalty) is made on the validation split; test2016 is decoded once per model, for the table.

Steps, each saved under benchmarks/.cache/backtranslation/ as it finishes (bundles and synthetic
text) and in benchmarks/results/backtranslation_runs.jsonl (metrics): reverse, baseline, then per
variant its synthetic sources and its model. The result file benchmarks/results/backtranslation.json
has ``baseline_bleu`` and ``backtranslated_bleu`` (test BLEU of the baseline and of the variant
chosen on validation) and the rest of the table.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()

import torch  # noqa: E402

from lowlm.config import Seq2SeqPipelineConfig, load_pipeline_config, parse_override  # noqa: E402
from lowlm.data.pairs import load_pairs  # noqa: E402
from lowlm.evaluation.decoding import candidates, choose_decoding  # noqa: E402
from lowlm.evaluation.metrics import bleu, chrf  # noqa: E402
from lowlm.inference.translator import Translator  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.robustness.backtranslation import BackTranslationAug, Generation  # noqa: E402
from lowlm.text.batching import PairBatches  # noqa: E402
from lowlm.text.tokenizer import BT_TAG, Tokenizer  # noqa: E402
from lowlm.training.objectives import train_translator  # noqa: E402
from lowlm.training.trainer import EpochMetrics, seed_everything  # noqa: E402

CACHE = ROOT / "benchmarks" / ".cache" / "backtranslation"
RESULTS = ROOT / "benchmarks" / "results"
RUNS = RESULTS / "backtranslation_runs.jsonl"
PARALLEL = 10_000  # --parallel changes it (a quick trial of the script)
VARIANTS = {  # how the reverse model writes the synthetic German
    "beam": dict(generation=Generation("beam", beam_size=5), tag=False),
    "beam+tag": dict(generation=Generation("beam", beam_size=5), tag=True),
    "sample": dict(generation=Generation("sample", top_k=10), tag=False),
}


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def done_runs() -> dict:
    if not RUNS.exists():
        return {}
    return {r["step"]: r for r in map(json.loads, RUNS.read_text().splitlines()) if r.get("step")}


def save_run(row: dict) -> None:
    with RUNS.open("a") as f:
        f.write(json.dumps(row) + "\n")


def fit_tokenizer(texts, c) -> Tokenizer:
    return Tokenizer.train(texts, kind=c.kind, vocab_size=c.vocab_size, min_frequency=c.min_frequency,
                           lowercase=c.lowercase, nfkc=c.nfkc, max_length=c.max_length, reserved=[BT_TAG])


def train(name: str, pairs, val, config: Seq2SeqPipelineConfig, languages, source_cfg, target_cfg) -> tuple[Translator, dict]:
    """One seq2seq model as the train stage builds it; the bundle is saved under the cache."""
    folder = CACHE / name
    if (folder / "bundle.json").exists():
        return Translator.load(folder), json.loads((folder.parent / f"{name}.train.json").read_text())
    start = time.perf_counter()
    source = fit_tokenizer([s for s, _ in pairs], source_cfg)
    target = fit_tokenizer([y for _, y in pairs], target_cfg)
    seed_everything(config.train.seed)
    net = build_model(config.model, src_vocab=source.vocab_size, tgt_vocab=target.vocab_size)
    translator = Translator(net, source, target, languages)
    batches = PairBatches(source.encode_batch([s for s, _ in pairs]), target.encode_target_batch([y for _, y in pairs]),
                          config.train.batch_size, shuffle=True, seed=config.train.seed)
    val_batches = PairBatches(source.encode_batch([s for s, _ in val]), target.encode_target_batch([y for _, y in val]),
                              128)
    result = train_translator(translator, batches, val_batches, [s for s, _ in val], [y for _, y in val],
                              config.train.model_copy(update={"progress": False}),
                              callbacks=[EpochMetrics(lambda e, m: log(f"{name} epoch {e}: {json.dumps(m)}"))])
    info = {"train_seconds": time.perf_counter() - start, "epochs_run": len(result.history),
            "best_epoch": result.best_epoch, "best_val_bleu": result.best_metric, "train_pairs": len(pairs),
            "history": result.history}
    (folder.parent / f"{name}.train.json").write_text(json.dumps(info))
    translator.save(folder)
    return translator, info


def score(name: str, translator: Translator, val, test, config: Seq2SeqPipelineConfig) -> dict:
    """Decoding chosen on validation, then test2016 decoded once with it."""
    d = config.decode
    best, rows = choose_decoding(translator.translate, [s for s, _ in val][: d.selection_max_pairs],
                                 [y for _, y in val][: d.selection_max_pairs], candidates(d.beam_size, d.length_penalties),
                                 "bleu", config.train.bleu_tokenize, d.max_length)
    val_out = translator.translate([s for s, _ in val], beam_size=best.beam_size, max_length=d.max_length,
                                   length_penalty=best.length_penalty)
    out = translator.translate([s for s, _ in test], beam_size=best.beam_size, max_length=d.max_length,
                               length_penalty=best.length_penalty)
    refs = [y for _, y in test]
    beam = translator.translate([s for s, _ in test], beam_size=d.beam_size, max_length=d.max_length)
    return {"decoding": best.name, "selection": rows,
            "val_bleu": bleu(val_out, [y for _, y in val], tokenize=config.train.bleu_tokenize),
            "test_bleu": bleu(out, refs, tokenize=config.train.bleu_tokenize), "test_chrf": chrf(out, refs),
            "test_bleu_beam5": bleu(beam, refs, tokenize=config.train.bleu_tokenize),
            "samples": [list(t) for t in zip([s for s, _ in test][:3], refs[:3], out[:3])]}


def main(argv=None) -> int:
    global CACHE, RESULTS, RUNS
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="overrides of the multi30k preset (both directions)")
    parser.add_argument("--variants", default="beam+tag,sample", help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--parallel", type=int, default=PARALLEL, help="parallel pairs (the rest: monolingual)")
    parser.add_argument("--monolingual", type=int, default=None, help="at most this many monolingual sentences")
    parser.add_argument("--cache", default=str(CACHE), help="where bundles and synthetic text are kept")
    parser.add_argument("--results", default=str(RESULTS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    CACHE, RESULTS = Path(args.cache), Path(args.results)
    RUNS = RESULTS / "backtranslation_runs.jsonl"
    if args.fresh:
        shutil.rmtree(CACHE, ignore_errors=True)
        RUNS.unlink(missing_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    config = load_pipeline_config("multi30k", dict(parse_override(o) for o in args.overrides), Seq2SeqPipelineConfig)
    data = load_pairs(config.corpus)
    pairs, val, test = data.splits["train"], data.splits["validation"], data.splits["test"]
    order = list(range(len(pairs)))
    random.Random(config.corpus.seed).shuffle(order)
    parallel = [pairs[i] for i in order[: args.parallel]]
    parallel_targets = {y for _, y in parallel}
    # the English of the rest; sentences that are also a parallel target add nothing and are left out
    monolingual = list(dict.fromkeys(pairs[i][1] for i in order[args.parallel:] if pairs[i][1] not in parallel_targets))
    monolingual = monolingual[: args.monolingual]
    log(f"{len(parallel)} parallel pairs, {len(monolingual)} monolingual English sentences, "
        f"{len(val)} validation, {len(test)} test")
    t = config.tokenizer
    runs = done_runs()

    reverse_val = [(y, s) for s, y in val]
    reverse, info = train("reverse-en-de", [(y, s) for s, y in parallel], reverse_val, config, ("en", "de"),
                          t.target.model_copy(update={"lowercase": True}), t.source.model_copy(update={"lowercase": False}))
    if "reverse" not in runs:
        runs["reverse"] = {"step": "reverse", **info, **score("reverse", reverse, reverse_val, [(y, s) for s, y in test], config)}
        save_run(runs["reverse"])
        log(f"reverse En->De: test BLEU {runs['reverse']['test_bleu']:.2f} ({runs['reverse']['decoding']})")

    if "baseline" not in runs:
        model, info = train("baseline", parallel, val, config, ("de", "en"), t.source, t.target)
        runs["baseline"] = {"step": "baseline", **info, **score("baseline", model, val, test, config)}
        save_run(runs["baseline"])
        log(f"baseline: val BLEU {runs['baseline']['val_bleu']:.2f}, test BLEU {runs['baseline']['test_bleu']:.2f}")

    for variant in [v.strip() for v in args.variants.split(",") if v.strip()]:
        step = f"bt:{variant}"
        if step in runs:
            continue
        spec = VARIANTS[variant]
        synthetic_file = CACHE / f"synthetic-{variant.replace('+', '-')}.json"
        if synthetic_file.exists():
            synthetic, bt_seconds = json.loads(synthetic_file.read_text()), None
        else:
            aug = BackTranslationAug([reverse], spec["generation"], tag=spec["tag"], seed=config.corpus.seed)
            start = time.perf_counter()
            synthetic = aug.augment(monolingual)
            bt_seconds = time.perf_counter() - start
            synthetic_file.write_text(json.dumps(synthetic, ensure_ascii=False))
            log(f"{variant}: {len(synthetic)} synthetic sources in {bt_seconds:.0f} s; e.g. {synthetic[:2]}")
        extra = [(s, y) for s, y in zip(synthetic, monolingual) if s.replace("[BT]", "").strip()]
        model, info = train(f"bt-{variant.replace('+', '-')}", parallel + extra, val, config, ("de", "en"),
                            t.source, t.target)
        runs[step] = {"step": step, "variant": variant, "synthetic_pairs": len(extra),
                      "backtranslate_seconds": bt_seconds,
                      "sentences_per_second": len(monolingual) / bt_seconds if bt_seconds else None,
                      **info, **score(step, model, val, test, config)}
        save_run(runs[step])
        log(f"{step}: val BLEU {runs[step]['val_bleu']:.2f}, test BLEU {runs[step]['test_bleu']:.2f}")

    bts = [r for k, r in runs.items() if k.startswith("bt:")]
    if not bts:
        return 0
    chosen = max(bts, key=lambda r: r["val_bleu"])  # the variant is chosen on validation
    result = {"baseline_bleu": runs["baseline"]["test_bleu"], "backtranslated_bleu": chosen["test_bleu"],
              "gain_bleu": chosen["test_bleu"] - runs["baseline"]["test_bleu"], "chosen_variant": chosen["variant"],
              "parallel_pairs": len(parallel), "monolingual_sentences": len(monolingual),
              "reverse_test_bleu": runs["reverse"]["test_bleu"],
              "runs": {k: {x: v for x, v in r.items() if x != "selection"} for k, r in runs.items()}}
    (RESULTS / "backtranslation.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
    lines = ["| model | train pairs | decoding (chosen on val) | val BLEU | test BLEU | test chrF | epochs (best) | train min |",
             "|---|---|---|---|---|---|---|---|"]
    for k in ["reverse", "baseline"] + [k for k in runs if k.startswith("bt:")]:
        r = runs[k]
        name = {"reverse": "reverse En->De (10k)", "baseline": "De->En, 10k parallel"}.get(k, f"De->En, 10k + BT ({k[3:]})")
        lines.append(f"| {name} | {r.get('train_pairs', '')} | {r['decoding']} | {r['val_bleu']:.2f} | {r['test_bleu']:.2f} "
                     f"| {r['test_chrf']:.2f} | {r.get('epochs_run', '')} ({r.get('best_epoch', '')}) "
                     f"| {r.get('train_seconds', 0) / 60:.1f} |")
    table = "\n".join(lines)
    (RESULTS / "backtranslation.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
