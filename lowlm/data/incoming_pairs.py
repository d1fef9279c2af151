"""New source -> target pairs arriving for a parallel corpus: the seq2seq side of ``lowlm.data.incoming``.

The same folders and rules as labelled data (``incoming/``, ``accepted/``, ``rejected/`` with the
reason; one merge at a time; arrival order), for pairs: a file is one pair a line, ``source<TAB>target``
(``.tsv``/``.txt``), or JSON Lines with the corpus's ``source_field``/``target_field`` keys
(``.jsonl``); it is read with the corpus's filters (lengths, empty sides). The merged corpus is the
base corpus split as a plain run splits it, with the accepted pairs added to train: a pair already
in train is dropped, and so is a pair whose source is in the validation or test split (it would
leak). Validation and test stay fixed, so champion and challenger are scored on the same pairs. The
result is written as ``train.tsv``/``validation.tsv``/``test.tsv`` in a folder named by its content
digest (order-free: the same pairs in any order give the same digest, and no new data gives the
base corpus's digest).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from lowlm.config import PairCorpusConfig
from lowlm.data.incoming import ACCEPTED, REJECTED, _locked, _move, check_incoming_dir, pending
from lowlm.data.pairs import SPLITS, PairCorpusError, _filter, _read_jsonl, _read_tsv, load_pairs
from lowlm.files import write_once

PAIR_SUFFIXES = {".tsv", ".txt", ".jsonl"}


@dataclass
class MergedPairs:
    config: PairCorpusConfig
    digest: str
    split_digests: dict[str, str] = field(default_factory=dict)
    accepted: list[str] = field(default_factory=list)
    rejected: dict[str, str] = field(default_factory=dict)
    new_rows: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def pairs_content_digest(splits: dict[str, list]) -> str:
    """Order-free digest of split -> pairs.

    >>> pairs_content_digest({"train": [("a", "b"), ("c", "d")]}) == pairs_content_digest({"train": [("c", "d"), ("a", "b")]})
    True
    """
    h = hashlib.sha256()
    for name in sorted(splits):
        h.update(f"[{name}]\n".encode())
        for line in sorted(json.dumps(list(p), ensure_ascii=False) for p in splits[name]):
            h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


def _key(text: str) -> str:
    return " ".join(str(text).casefold().split())


def read_pair_file(path: str | Path, cfg: PairCorpusConfig) -> list[tuple[str, str]]:
    """An added file's pairs, through the corpus's filters; errors name the file and line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PAIR_SUFFIXES:
        raise PairCorpusError(f"{path}: not a file of pairs (expected {', '.join(sorted(PAIR_SUFFIXES))})")
    if suffix == ".jsonl":
        if cfg.format != "jsonl":
            raise PairCorpusError(f"{path}: a JSON Lines file, but the corpus is {cfg.format}: give source<TAB>target "
                                  f"lines (.tsv)")
        rows = _read_jsonl(str(path), cfg)
    else:
        tsv = cfg if cfg.format == "tsv" else PairCorpusConfig.model_validate(
            {**cfg.model_dump(), "format": "tsv", "path": str(path), "source_path": None, "target_path": None,
             "validation_source": None, "validation_target": None, "test_source": None, "test_target": None,
             "source_field": 0, "target_field": 1})
        rows = _read_tsv(str(path), tsv)
    pairs, _ = _filter(rows, cfg)
    if not pairs:
        raise PairCorpusError(f"{path}: no pairs left after the corpus's filters")
    return pairs


def _merged_config(cfg: PairCorpusConfig, folder: Path) -> PairCorpusConfig:
    return PairCorpusConfig.model_validate({
        **cfg.model_dump(), "format": "tsv", "path": str(folder / "train.tsv"),
        "validation_path": str(folder / "validation.tsv"), "test_path": str(folder / "test.tsv"),
        "source_path": None, "target_path": None, "validation_source": None, "validation_target": None,
        "test_source": None, "test_target": None, "source_field": 0, "target_field": 1, "encoding": "utf-8",
        "max_pairs": None, "dedupe": False})


def _write(splits: dict[str, list], out_dir: Path) -> tuple[Path, str]:
    for name, pairs in splits.items():
        for source, target in pairs:
            if "\t" in source + target or "\n" in source + target or "\r" in source + target:
                raise PairCorpusError(f"a {name} pair holds a tab or line break ({source[:40]!r}); it cannot be "
                                      f"written as TSV")
    digest = pairs_content_digest(splits)

    def write(partial: Path) -> None:
        for name, pairs in splits.items():
            (partial / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")

    return write_once(out_dir / f"pairs-{digest}", write), digest


def merge_incoming_pairs(cfg: PairCorpusConfig, incoming_dir: str | Path, out_dir: str | Path) -> MergedPairs:
    """Accept the waiting pair files, merge base + accepted pairs, write the result (see the module doc)."""
    incoming, out_dir = Path(incoming_dir), Path(out_dir)
    check_incoming_dir(incoming, cfg)
    with _locked(incoming):
        base = load_pairs(cfg)
        held = {_key(s) for name in ("validation", "test") for s, _ in base.splits[name]}
        train = list(base.splits["train"])
        seen = {(_key(s), _key(t)) for s, t in train}
        counts = {"duplicate": 0, "source_in_validation_or_test": 0}

        def add(pairs, tally):
            added = []
            for source, target in pairs:
                key = (_key(source), _key(target))
                if _key(source) in held:
                    tally["source_in_validation_or_test"] += 1
                elif key in seen:
                    tally["duplicate"] += 1
                else:
                    seen.add(key)
                    added.append((source, target))
            return added

        for file in pending(incoming / ACCEPTED):
            train += add(read_pair_file(file, cfg), dict(counts))
        before = len(train)
        result = MergedPairs(config=cfg, digest="")
        for file in pending(incoming):
            try:
                pairs = read_pair_file(file, cfg)
            except PairCorpusError as exc:
                moved = _move(file, incoming / REJECTED)
                Path(f"{moved}.error.txt").write_text(f"{file.name}: {exc}\n")
                result.rejected[str(moved)] = str(exc)
                continue
            train += add(pairs, counts)
            result.accepted.append(str(_move(file, incoming / ACCEPTED)))
        splits = {"train": train, "validation": base.splits["validation"], "test": base.splits["test"]}
        folder, result.digest = _write(splits, out_dir)
    result.new_rows, result.dropped = len(train) - before, counts
    result.config = _merged_config(cfg, folder)
    merged = load_pairs(result.config)  # what the pipeline's ingest will read and digest
    result.split_digests = {name: merged.digests[name] for name in SPLITS}
    result.digest = pairs_content_digest(merged.splits)
    return result
