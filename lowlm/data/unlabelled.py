"""Unlabelled text for language models: read from several sources, cleaned, split.

Each source is a file of texts (lines, a TSV/CSV column, a JSONL key, SQuAD contexts) or the train
split of a labelled corpus. Whitespace is collapsed, empty texts and texts under ``min_words`` words
are dropped, a text read twice is kept once, and any text that an ``exclude`` source holds is dropped
(a benchmark's held-out split never reaches pretraining). What was dropped is counted by reason.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "t.txt"; _ = p.write_text("a dog ran\\n\\na dog ran\\nthe end\\nat last\\n")
>>> cfg = TextCorpusConfig(sources=[{"format": "lines", "path": str(p)}], validation_size=1, test_size=1)
>>> texts = load_texts(cfg); sum(len(v) for v in texts.splits.values()), texts.dropped["repeat"]
(3, 1)
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from lowlm.config.data import TextCorpusConfig, TextSourceConfig
from lowlm.data.pairs import read_lines
from lowlm.data.textfiles import CorpusError

SPLITS = ("train", "validation", "test")


@dataclass
class TextCorpus:
    splits: dict[str, list[str]]
    dropped: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # source -> texts kept from it

    def digest(self, split: str) -> str:
        return hashlib.sha256("\n".join(self.splits[split]).encode()).hexdigest()[:16]


def _column(header: list[str], want: str | int, where: str) -> int:
    if isinstance(want, int):
        if not 0 <= want < len(header):
            raise CorpusError(f"{where}: column {want} does not exist; the first row has {len(header)} columns")
        return want
    if want not in header:
        raise CorpusError(f"{where}: no column {want!r}; columns {header[:20]}")
    return header.index(want)


def _table(cfg: TextSourceConfig) -> list[str]:
    delimiter = "\t" if cfg.format == "tsv" else ","
    lines = [text for _, text in read_lines(cfg.path, cfg.encoding)]
    rows = list(csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter, quoting=csv.QUOTE_NONE
                           if cfg.format == "tsv" else csv.QUOTE_MINIMAL))
    if not rows:
        return []
    header = rows[0] if cfg.header else [str(i) for i in range(len(rows[0]))]
    col = _column(header, cfg.field if cfg.header or isinstance(cfg.field, int) else int(cfg.field), cfg.path)
    out = []
    for lineno, row in enumerate(rows[1:] if cfg.header else rows, start=2 if cfg.header else 1):
        if col >= len(row):
            raise CorpusError(f"{cfg.path}, line {lineno}: {len(row)} columns, no column {cfg.field!r}")
        out.append(row[col])
    return out


def _jsonl(cfg: TextSourceConfig) -> list[str]:
    out = []
    for lineno, line in read_lines(cfg.path, cfg.encoding):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CorpusError(f"{cfg.path}, line {lineno}: not a JSON object ({exc.msg})") from None
        if not isinstance(record, dict) or cfg.field not in record:
            raise CorpusError(f"{cfg.path}, line {lineno}: expected an object with the key {cfg.field!r}")
        value = record[cfg.field]
        if not isinstance(value, str):
            raise CorpusError(f"{cfg.path}, line {lineno}: {cfg.field!r} is {type(value).__name__}, not text")
        out.append(value)
    return out


def _squad(cfg: TextSourceConfig) -> list[str]:
    try:
        doc = json.loads(Path(cfg.path).read_text(encoding=cfg.encoding))
        articles = doc["data"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise CorpusError(f"{cfg.path}: not a SQuAD-format JSON file (data -> paragraphs -> context): {exc}") from None
    first, last = cfg.articles or (1, len(articles))
    return [p["context"] for a in articles[first - 1:last] for p in a.get("paragraphs", [])]


def read_source(cfg: TextSourceConfig) -> list[str]:
    """The raw texts of one source, in file order (``max_texts``: the first that many)."""
    if cfg.format == "corpus":
        from lowlm.data.corpus import load_corpus

        texts = load_corpus(cfg.corpus).frame("train")["text"].tolist()
    else:
        if not Path(cfg.path).is_file():
            raise CorpusError(f"text source not found: {cfg.path}")
        reader = {"lines": lambda c: [t for _, t in read_lines(c.path, c.encoding)], "tsv": _table, "csv": _table,
                  "jsonl": _jsonl, "squad": _squad}[cfg.format]
        texts = reader(cfg)
    return texts[: cfg.max_texts] if cfg.max_texts else texts


def _size(size: float | int, total: int) -> int:
    return int(size) if size >= 1 else int(round(size * total))


def load_texts(cfg: TextCorpusConfig) -> TextCorpus:
    """Read, clean and split; a source that yields no text, or nothing left to train on, is an error naming it."""
    excluded = {" ".join(t.split()) for source in cfg.exclude for t in read_source(source)}
    dropped = dict.fromkeys(("empty", "short", "repeat", "excluded"), 0)
    seen: dict[str, None] = {}
    counts: dict[str, int] = {}
    for source in cfg.sources:
        raw = read_source(source)
        if not raw:
            raise CorpusError(f"{source.name}: no texts")
        before = len(seen)
        for text in raw:
            text = " ".join(text.split())
            reason = ("empty" if not text else "short" if len(text.split()) < cfg.min_words
                      else "repeat" if text in seen else "excluded" if text in excluded else None)
            if reason:
                dropped[reason] += 1
            else:
                seen[text] = None
        counts[source.name] = len(seen) - before
    texts = list(seen)
    rng = random.Random(cfg.seed)
    rng.shuffle(texts)
    n_val, n_test = _size(cfg.validation_size, len(texts)), _size(cfg.test_size, len(texts))
    if n_val < 1 or n_test < 1 or n_val + n_test >= len(texts):
        raise CorpusError(f"{len(texts)} texts left after dropping {dropped}: too few for validation_size "
                          f"{cfg.validation_size} and test_size {cfg.test_size} with texts left to train on")
    splits = {"validation": texts[:n_val], "test": texts[n_val:n_val + n_test], "train": texts[n_val + n_test:]}
    return TextCorpus(splits, dropped, counts)


def texts_fingerprint(cfg: TextCorpusConfig) -> str:
    """Hash of every file the sources and exclusions read: changes whenever the text on disk changes."""
    from lowlm.data.corpus import corpus_fingerprint, files_fingerprint

    parts = []
    for source in [*cfg.sources, *cfg.exclude]:
        parts.append(corpus_fingerprint(source.corpus) if source.format == "corpus"
                     else files_fingerprint([source.path]))
    return hashlib.sha256("".join(parts).encode()).hexdigest()[:16]
