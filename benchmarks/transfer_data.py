"""The unlabelled English mix that lowlm's language model is pretrained on, for the transfer benchmark.

Sources (all under ../shared/data, each read by path): SST-2 train sentences, the English side of
Multi30k train and of Tatoeba, BBC News articles, SQuAD contexts of articles 1-34. Excluded, as the
benchmark protocol asks: every split any benchmark reports on or selects with: SST-2 dev and test,
Multi30k val and test (not read), Tatoeba's and BBC's validation and test (the split their presets
make, written to ``benchmarks/.cache/``), SQuAD articles 35-48 (not read), TREC and BANKING77 test (not
in the mix). The tokenizer's vocabulary is fitted on the mix's train texts plus the unlabelled train
splits of TREC-6 and BANKING77 (so a word of a target task has its own row; no labels are read).
"""

from __future__ import annotations

from pathlib import Path

from lowlm.config import load_pipeline_config
from lowlm.config.data import TextCorpusConfig, TextSourceConfig
from lowlm.data.pairs import load_pairs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE = ROOT / "benchmarks" / ".cache" / "transfer"


def held_out_lines(preset: str, side: str, name: str) -> Path:
    """The validation and test texts of a seq2seq preset's split (one whitespace-normalised text a line)."""
    path = CACHE / f"{name}_heldout.txt"
    if not path.exists():
        corpus = load_pairs(load_pipeline_config(preset).corpus)
        texts = [" ".join(p[0 if side == "source" else 1].split()) for split in ("validation", "test") for p in corpus.splits[split]]
        CACHE.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


def banking77_corpus() -> dict:
    return {"path": str(DATA / "banking77" / "train.csv"), "test_file": str(DATA / "banking77" / "test.csv"),
            "text_column": "text", "label_column": "category", "validation_size": 0.1, "seed": 13}


def trec_corpus() -> dict:
    return {"path": str(DATA / "trec" / "train_5500.label"), "test_file": str(DATA / "trec" / "TREC_10.label"),
            "format": "trec", "label_level": "coarse", "encoding": "latin-1", "validation_size": 0.1, "seed": 13}


def pretraining_mix() -> TextCorpusConfig:
    return TextCorpusConfig(
        sources=[
            TextSourceConfig(format="tsv", path=str(DATA / "sst2" / "train.tsv"), field="sentence"),
            TextSourceConfig(format="lines", path=str(DATA / "multi30k" / "train.en.gz")),
            TextSourceConfig(format="tsv", path=str(DATA / "tatoeba_cmn_eng" / "cmn.txt"), field=0, header=False),
            TextSourceConfig(format="jsonl", path=str(DATA / "bbc_news_summary" / "bbc_news_summary.jsonl"),
                             field="article"),
            TextSourceConfig(format="squad", path=str(DATA / "squad_v1.1" / "dev-v1.1.reconstructed.json"),
                             articles=(1, 34)),
        ],
        exclude=[
            TextSourceConfig(format="tsv", path=str(DATA / "sst2" / "dev.tsv"), field="content"),
            TextSourceConfig(format="tsv", path=str(DATA / "sst2" / "test.tsv"), field="content"),
            TextSourceConfig(format="lines", path=str(held_out_lines("bbc-summary", "source", "bbc"))),
            TextSourceConfig(format="lines", path=str(held_out_lines("tatoeba-en-zh", "source", "tatoeba"))),
        ],
        validation_size=0.01, test_size=0.01, seed=13)


def target_texts() -> list[TextSourceConfig]:
    """The unlabelled train splits of the classification targets (vocabulary, and ULMFiT's second stage)."""
    return [TextSourceConfig(format="corpus", corpus=banking77_corpus()),
            TextSourceConfig(format="corpus", corpus=trec_corpus())]
