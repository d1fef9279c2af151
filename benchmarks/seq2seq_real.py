"""Seq2seq presets on real corpora: the flow's tokenize/train/evaluate steps, timed, with a table.

    .venv/bin/python benchmarks/seq2seq_real.py multi30k
    .venv/bin/python benchmarks/seq2seq_real.py tatoeba-en-zh --set train.epochs=8
    .venv/bin/python benchmarks/seq2seq_real.py bbc-summary --set model.coverage=true --pretrained LM_DIR

Prints and saves benchmarks/results/seq2seq_<preset>.{md,json}: detokenised sacreBLEU (greedy and
beam), chrF, ROUGE, training time and target tokens per second, and (for summarization presets)
the lead baseline: the article's first sentence scored against the same references.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.runtime import prepare_environment  # noqa: E402

prepare_environment()  # OMP_WAIT_POLICY=PASSIVE and offline settings, before torch loads

import torch  # noqa: E402

from lowlm.config import Seq2SeqPipelineConfig, load_pipeline_config, parse_override  # noqa: E402
from lowlm.evaluation.metrics import bleu, chrf, repetition, rouge  # noqa: E402
from lowlm.inference.language_model import LanguageModelBundle  # noqa: E402
from lowlm.models.kinds import build_model  # noqa: E402
from lowlm.data.pairs import load_pairs  # noqa: E402
from lowlm.text.tokenizer import Tokenizer  # noqa: E402
from lowlm.text.batching import PairBatches  # noqa: E402
from lowlm.training.objectives import train_translator  # noqa: E402
from lowlm.training.pretrained import load_encoder  # noqa: E402
from lowlm.training.trainer import EpochMetrics, seed_everything  # noqa: E402
from lowlm.inference.translator import Translator  # noqa: E402


def lead(text: str, sentences: int = 1) -> str:
    """The first ``sentences`` sentences of ``text`` (the lead baseline of news summarization)."""
    return " ".join(re.split(r"(?<=[.!?])\s+", text.strip())[:sentences])


def run(config: Seq2SeqPipelineConfig, log, pretrained: str | None = None) -> dict:
    """``pretrained``: a language-model bundle folder whose tokenizer and encoder the model starts from,
    as the pipeline's ``pretrained`` setting does (source side, and target side when joint)."""
    data = load_pairs(config.corpus)
    train, val, test = data.splits["train"], data.splits["validation"], data.splits["test"]
    t = config.tokenizer
    start = time.perf_counter()

    def fit_tok(texts, c):
        return Tokenizer.train(texts, kind=c.kind, vocab_size=c.vocab_size, min_frequency=c.min_frequency,
                               lowercase=c.lowercase, nfkc=c.nfkc, max_length=c.max_length)

    lm = LanguageModelBundle.load(pretrained) if pretrained else None
    if lm is not None:
        source = Tokenizer.from_json(lm.tokenizer.to_json())
        source.max_length = t.source.max_length
        target = Tokenizer.from_json(source.to_json()) if t.joint else fit_tok([y for _, y in train], t.target)
        target.max_length = t.target.max_length
    elif t.joint:
        source = fit_tok([s for s, _ in train] + [y for _, y in train], t.source)
        target = Tokenizer.from_json(source.to_json())
        target.max_length = t.target.max_length
    else:
        source, target = fit_tok([s for s, _ in train], t.source), fit_tok([y for _, y in train], t.target)
    m = config.model
    seed_everything(config.train.seed)  # as the train stage does: the initial weights are part of the result
    net = build_model(m, src_vocab=source.vocab_size, tgt_vocab=target.vocab_size)
    if lm is not None:
        log(f"encoder from {pretrained}: {len(load_encoder(net, lm, source))} tensors; source [UNK] rate "
            f"{source.stats([s for s, _ in val])['unk_rate']:.2%} on validation")
    translator = Translator(net, source, target)
    batches = PairBatches(source.encode_batch([s for s, _ in train]), target.encode_target_batch([y for _, y in train]),
                          config.train.batch_size, shuffle=True, seed=config.train.seed)
    val_batches = PairBatches(source.encode_batch([s for s, _ in val]), target.encode_target_batch([y for _, y in val]),
                              128)
    cfg = config.train.model_copy(update={"progress": False})
    result = train_translator(translator, batches, val_batches, [s for s, _ in val], [y for _, y in val], cfg,
                              callbacks=[EpochMetrics(lambda e, metrics: log(f"epoch {e}: {json.dumps(metrics)}"))])
    train_seconds = time.perf_counter() - start
    sources, refs = [s for s, _ in test], [y for _, y in test]
    decode = config.decode
    t0 = time.perf_counter()
    greedy = translator.translate(sources, beam_size=1, max_length=decode.max_length)
    greedy_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    beam = translator.translate(sources, beam_size=decode.beam_size, max_length=decode.max_length,
                                length_penalty=decode.length_penalty)
    beam_s = time.perf_counter() - t0
    tok = config.train.bleu_tokenize
    out = {"rows": {k: len(v) for k, v in data.splits.items()}, "filtered": data.filtered,
           "epochs_run": len(result.history), "best_epoch": result.best_epoch, "history": result.history,
           "train_seconds": train_seconds, "tokens_per_second": result.throughput,
           "bleu_greedy": bleu(greedy, refs, tokenize=tok), "bleu_beam": bleu(beam, refs, tokenize=tok),
           "chrf_beam": chrf(beam, refs), "rouge_beam": rouge(beam, refs),
           "repeated_trigrams": repetition(beam), "reference_repeated_trigrams": repetition(refs),
           "greedy_seconds": greedy_s, "beam_seconds": beam_s, "samples": list(zip(sources[:5], refs[:5], beam[:5]))}
    if config.corpus.format == "jsonl":  # summarization: the lead baseline
        out["lead_rouge"] = rouge([lead(s, 1) for s in sources], refs)
        out["lead3_rouge"] = rouge([lead(s, 3) for s in sources], refs)
    return out


def _triple(scores: dict) -> str:
    return "/".join(f"{scores[k]:.2f}" for k in ("rouge1", "rouge2", "rougeL"))


def table(preset: str, config: dict, r: dict) -> str:
    """The markdown result table (and lead baselines) of one run, from ``run``'s result and the config."""
    repeated = f"{r['repeated_trigrams']:.1f}%" if "repeated_trigrams" in r else "-"  # older runs did not count
    rows = [
        "| preset | copy | train/val/test pairs | epochs (best) | train min | target tok/s | BLEU greedy | BLEU beam "
        "| chrF | ROUGE-1/2/L | repeated trigrams |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {preset} | {'yes' if config['model']['pointer'] else 'no'} | "
        f"{r['rows']['train']}/{r['rows']['validation']}/{r['rows']['test']} | "
        f"{r['epochs_run']} ({r['best_epoch']}) | {r['train_seconds'] / 60:.1f} | {r['tokens_per_second']:.0f} | "
        f"{r['bleu_greedy']:.2f} | {r['bleu_beam']:.2f} (beam {config['decode']['beam_size']}) | "
        f"{r['chrf_beam']:.2f} | {_triple(r['rouge_beam'])} | {repeated} |",
    ]
    for key, what in (("lead_rouge", "first sentence"), ("lead3_rouge", "first three sentences")):
        if key in r:
            rows.append(f"\nLead baseline ({what} of the source): ROUGE-1/2/L {_triple(r[key])}")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    parser.add_argument("--pretrained", default=None, metavar="LM_DIR",
                        help="a language-model bundle folder (benchmarks/transfer.py pretrain) to start the encoder from")
    parser.add_argument("--from-json", default=None, metavar="PATH",
                        help="only rewrite the .md table of a finished run from its .json")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = json.loads(Path(args.from_json).read_text())
        rows = table(saved["preset"], saved["config"], saved["result"])
        Path(args.from_json).with_suffix(".md").write_text(rows + "\n")
        print(rows)
        return 0
    torch.set_num_threads(args.threads)
    config = load_pipeline_config(args.preset, dict(parse_override(o) for o in args.overrides), Seq2SeqPipelineConfig)
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"seq2seq_{args.preset}")
    out.parent.mkdir(parents=True, exist_ok=True)
    log_file = out.with_suffix(".log").open("w")

    def log(line: str) -> None:
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    r = run(config, log, args.pretrained)
    rows = table(args.preset, config.model_dump(mode="json"), r)
    log(rows)
    out.with_suffix(".md").write_text(rows + "\n")
    out.with_suffix(".json").write_text(json.dumps({"preset": args.preset, "overrides": args.overrides,
                                                    "pretrained": args.pretrained,
                                                    "config": config.model_dump(mode="json"), "result": r},
                                                   indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
