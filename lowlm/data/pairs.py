"""Parallel text: source -> target pairs for translation and summarization, read, filtered, split, digested.

>>> cfg = PairCorpusConfig(format="aligned", source_path="train.de.gz", target_path="train.en.gz")  # doctest: +SKIP
>>> pairs = load_pairs(cfg)                                                   # doctest: +SKIP
>>> pairs.splits["train"][0], pairs.digests["train"], pairs.filtered["train"]  # doctest: +SKIP

Three layouts (``PairCorpusConfig.format``): ``aligned`` (two files, line i of one translates line i
of the other), ``tsv`` (fields by column index, no quoting: Tatoeba's ``english<TAB>chinese<TAB>...``)
and ``jsonl`` (fields by key). Any file may be gzipped; that is told by its first bytes, not its name.

Every split is a plain list of ``(source, target)`` string tuples, stripped of surrounding space.
Pairs with an empty side, or fewer than ``min_tokens`` / more than ``max_*_tokens`` tokens on a side,
are dropped and counted per split and reason in ``filtered``, as are repeats of a pair already read
(``dedupe``); a bad layout is an error that names the file, the line (1-based) and the field. Splits
that no file gives are held out of train with a seeded shuffle, whole source groups at a time
(``group_by_source``: Tatoeba gives one English sentence several Chinese translations, and a test
source seen in training would flatter the score); train itself is shuffled (seeded) because corpora
such as Tatoeba come sorted by length.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd

from lowlm.config import PairCorpusConfig
from lowlm.data.corpus import CorpusError, files_fingerprint, save_splits
from lowlm.data.textfiles import decoded_lines, is_unicode, json_object

Pair = tuple[str, str]
SPLITS = ("train", "validation", "test")
REASONS = ("empty", "too_short", "too_long", "duplicate")


class PairCorpusError(CorpusError):
    """A parallel corpus that cannot be used as given; the message says where and what was expected."""


@dataclass
class PairCorpus:
    """``splits``: split -> list of (source, target); where each came from, its digest, and what was dropped."""

    splits: dict[str, list[Pair]]
    sources: dict[str, str] = field(default_factory=dict)
    filtered: dict[str, dict[str, int]] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, pairs in self.splits.items():
            self.digests.setdefault(name, pairs_digest(pairs))
            self.filtered.setdefault(name, dict.fromkeys(REASONS, 0))

    def side(self, split: str, which: str) -> list[str]:
        """All ``"source"`` or ``"target"`` texts of a split, in order (e.g. to train a tokenizer)."""
        if which not in ("source", "target"):
            raise ValueError(f"which must be 'source' or 'target', got {which!r}")
        index = 0 if which == "source" else 1
        return [pair[index] for pair in self.splits[split]]

    def frame(self, split: str) -> pd.DataFrame:
        """The split as a DataFrame(source, target), for logging and inspection."""
        return pairs_frame(self.splits[split])

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write each split as Parquet with ``source``/``target`` columns; returns split -> path."""
        return save_splits(folder, {name: self.frame(name) for name in self.splits})


def pairs_frame(pairs: list[Pair]) -> pd.DataFrame:
    """``[(source, target), ...]`` -> DataFrame with columns ``source`` and ``target``.

    >>> pairs_frame([("Hallo", "Hello")]).to_dict("records")
    [{'source': 'Hallo', 'target': 'Hello'}]
    """
    return pd.DataFrame(list(pairs), columns=["source", "target"], dtype=object)


def pairs_digest(pairs: list[Pair]) -> str:
    """Content digest of a split: order and both sides count (16 hex characters of sha256).

    >>> pairs_digest([("a", "b")]) == pairs_digest([("a", "b")]) != pairs_digest([("b", "a")])
    True
    """
    h = hashlib.sha256()
    for pair in pairs:  # JSON keeps "a\\tb" + "c" apart from "a" + "b\\tc"
        h.update(json.dumps(pair, ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def count_tokens(text: str, unit: str = "word") -> int:
    """Whitespace-separated words, or non-space characters (for unsegmented scripts).

    >>> count_tokens("two words"), count_tokens("你好。", "char"), count_tokens("a b", "char")
    (2, 3, 2)
    """
    return len(text.split()) if unit == "word" else len("".join(text.split()))


# ----------------------------------------------------------------------------------------- reading


def _open(path: Path):
    if not path.is_file():
        raise PairCorpusError(f"pair corpus file not found: {path}")
    with open(path, "rb") as fh:
        gzipped = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


def read_lines(path: str | Path, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(line number, line without its line break) for every line of a plain or gzipped file.

    Lines end at ``\\n`` only (a stray ``\\r`` or U+2028 inside a line never shifts the alignment),
    and each line is decoded on its own, so a bad byte is reported with its line number, its offset and
    its value; a binary file is named as one (see ``corpus.decoded_lines``). A UTF-8 byte-order mark
    opening the file is not part of its first line.
    """
    for lineno, text in decoded_lines(Path(path), encoding, _open, universal=False, error=PairCorpusError):
        text = text.lstrip("\ufeff") if lineno == 1 else text
        yield lineno, text.rstrip("\n").rstrip("\r")


def _read_aligned(source: str, target: str, encoding: str) -> list[tuple[int, str, str]]:
    src = [text for _, text in read_lines(source, encoding)]
    tgt = [text for _, text in read_lines(target, encoding)]
    if len(src) != len(tgt):
        raise PairCorpusError(
            f"misaligned files: {source} has {len(src)} lines but {target} has {len(tgt)}; "
            f"line i of one must translate line i of the other"
        )
    return [(lineno, s, t) for lineno, (s, t) in enumerate(zip(src, tgt), start=1)]


def _read_tsv(path: str, cfg: PairCorpusConfig) -> list[tuple[int, str, str]]:
    si, ti = cfg.source_field, cfg.target_field
    need = max(si, ti) + 1
    rows = []
    for lineno, line in read_lines(path, cfg.encoding):
        if not line.strip():
            rows.append((lineno, "", ""))  # a blank line: counted as empty, not an error
            continue
        fields = line.split("\t")
        if len(fields) < need:
            raise PairCorpusError(
                f"{path}, line {lineno}: expected at least {need} tab-separated fields "
                f"(source_field {si}, target_field {ti}), got {len(fields)}: {line[:60]!r}"
            )
        rows.append((lineno, fields[si], fields[ti]))
    return rows


def _read_jsonl(path: str, cfg: PairCorpusConfig) -> list[tuple[int, str, str]]:
    rows = []
    for lineno, line in read_lines(path, cfg.encoding):
        if not line.strip():
            rows.append((lineno, "", ""))
            continue
        record = json_object(line, f"{path}, line {lineno}", PairCorpusError)
        values = []
        for name in (cfg.source_field, cfg.target_field):
            if name not in record:
                raise PairCorpusError(
                    f"{path}, line {lineno}: no field {name!r}; the record has fields {sorted(record)}"
                )
            value = record[name]
            if value is None:
                value = ""  # null: an empty side, filtered and counted
            elif not isinstance(value, str):
                raise PairCorpusError(
                    f"{path}, line {lineno}: field {name!r} should be a string, got {type(value).__name__}"
                )
            elif not is_unicode(value):
                raise PairCorpusError(f"{path}, line {lineno}: field {name!r} holds an unpaired surrogate "
                                      f"(such as \\ud800), which is not Unicode text")
            values.append(value)
        rows.append((lineno, values[0], values[1]))
    return rows


def _filter(rows: list[tuple[int, str, str]], cfg: PairCorpusConfig) -> tuple[list[Pair], dict[str, int]]:
    counts = dict.fromkeys(REASONS, 0)
    kept, seen = [], set()
    for _, source, target in rows:
        source, target = source.strip(), target.strip()
        n_src, n_tgt = count_tokens(source, cfg.source_unit), count_tokens(target, cfg.target_unit)
        if n_src == 0 or n_tgt == 0:
            counts["empty"] += 1
        elif n_src < cfg.min_tokens or n_tgt < cfg.min_tokens:
            counts["too_short"] += 1
        elif (cfg.max_source_tokens and n_src > cfg.max_source_tokens) or (
            cfg.max_target_tokens and n_tgt > cfg.max_target_tokens
        ):
            counts["too_long"] += 1
        elif cfg.dedupe and (source, target) in seen:
            counts["duplicate"] += 1
        else:
            seen.add((source, target))
            kept.append((source, target))
    return kept, counts


def _files(cfg: PairCorpusConfig) -> dict[str, tuple[str, ...]]:
    """Split -> the file(s) that give it."""
    if cfg.format == "aligned":
        given = {"train": (cfg.source_path, cfg.target_path),
                 "validation": (cfg.validation_source, cfg.validation_target),
                 "test": (cfg.test_source, cfg.test_target)}
    else:
        given = {"train": (cfg.path,), "validation": (cfg.validation_path,), "test": (cfg.test_path,)}
    return {split: files for split, files in given.items() if files[0] is not None}


def _read_split(files: tuple[str, ...], cfg: PairCorpusConfig) -> tuple[list[tuple[int, str, str]], str]:
    if cfg.format == "aligned":
        return _read_aligned(*files, cfg.encoding), f"{files[0]} -> {files[1]}"
    reader = _read_tsv if cfg.format == "tsv" else _read_jsonl
    return reader(files[0], cfg), f"{files[0]} [{cfg.source_field} -> {cfg.target_field}]"


# --------------------------------------------------------------------------------------- splitting


def _size(size: float | int, total: int) -> int:
    """A fraction of ``total`` (rounded up, as datasets and scikit-learn do) or a count as given."""
    return math.ceil(size * total) if isinstance(size, float) else int(size)


def _groups(train: list[Pair], by_source: bool) -> list[list[int]]:
    """Indices of ``train`` in groups that must stay in one split: pairs sharing a source, or singletons."""
    if not by_source:
        return [[i] for i in range(len(train))]
    groups: dict[str, list[int]] = {}
    for i, (source, _) in enumerate(train):
        groups.setdefault(source, []).append(i)
    return list(groups.values())


def _carve(train: list[Pair], need: dict[str, float | int], cfg: PairCorpusConfig, source: str):
    """Shuffle train (seeded); hold out the splits in ``need`` from its front, in original order.

    Whole groups (``_groups``) are held out; a group that would overshoot a split's size is passed
    over for the next one, so sizes are exact whenever enough single-pair groups remain.
    """
    groups = _groups(train, cfg.group_by_source)
    random.Random(cfg.seed).shuffle(groups)
    sizes = {split: _size(size, len(train)) for split, size in need.items()}
    if sum(sizes.values()) >= len(train):
        asked = ", ".join(f"{split} {n}" for split, n in sizes.items())
        raise PairCorpusError(
            f"{source}: {len(train)} pairs after filtering cannot give {asked} and still leave train pairs; "
            f"lower test_size/validation_size or give separate files"
        )
    held, rest = {}, groups
    for split, n in sizes.items():
        taken, left = [], []
        for group in rest:
            if len(taken) + len(group) <= n:
                taken.extend(group)
            else:
                left.append(group)
        held[split], rest = [train[i] for i in sorted(taken)], left
    return [train[i] for group in rest for i in group], held


def load_pairs(cfg: PairCorpusConfig | None = None, **overrides) -> PairCorpus:
    """Read, filter and split a parallel corpus into train/validation/test.

    Give a ``PairCorpusConfig`` (or its fields as keyword arguments; keyword arguments given with a
    config override its fields and are validated again).
    """
    if cfg is None:
        cfg = PairCorpusConfig(**overrides)
    elif overrides:
        cfg = PairCorpusConfig.model_validate(cfg.model_dump() | overrides)
    splits: dict[str, list[Pair]] = {}
    sources: dict[str, str] = {}
    filtered: dict[str, dict[str, int]] = {}
    for split, files in _files(cfg).items():
        rows, sources[split] = _read_split(files, cfg)
        splits[split], filtered[split] = _filter(rows, cfg)
        if not splits[split]:
            dropped = ", ".join(f"{n} {reason}" for reason, n in filtered[split].items() if n) or "the file is empty"
            raise PairCorpusError(f"{sources[split]}: no {split} pairs left after filtering ({dropped})")
    need = {split: getattr(cfg, f"{split}_size") for split in ("test", "validation") if split not in splits}
    splits["train"], held = _carve(splits["train"], need, cfg, sources["train"])
    for split, pairs in held.items():
        splits[split] = pairs
        filtered[split] = dict.fromkeys(REASONS, 0)  # its drops are counted under train, where it came from
        sources[split] = f"{sources['train']} (held out {len(pairs)}, seed {cfg.seed})"
    if cfg.max_pairs and len(splits["train"]) > cfg.max_pairs:
        splits["train"] = splits["train"][: cfg.max_pairs]  # already a seeded shuffle: the front is a sample
        sources["train"] += f" (seeded sample of {cfg.max_pairs})"
    order = {name: splits[name] for name in SPLITS}
    return PairCorpus(order, {n: sources[n] for n in SPLITS}, {n: filtered[n] for n in SPLITS})


def pairs_fingerprint(cfg: PairCorpusConfig) -> str:
    """Hash of the bytes of every file a config reads: changes whenever the data on disk changes."""
    return files_fingerprint([file for files in _files(cfg).values() for file in files], PairCorpusError)
