"""New labelled data arriving for a corpus: checked on arrival, merged without duplicates, digested.

    incoming/                 files dropped here (or by ``lowlm data add``) wait for the next retrain
    incoming/accepted/        files already merged: part of the corpus from then on (nothing is lost)
    incoming/rejected/        files that could not be read, each beside ``<name>.error.txt`` saying why

>>> add_file("new.csv", "data/incoming", corpus_cfg)           # doctest: +SKIP
>>> merged = merge_incoming(corpus_cfg, "data/incoming", ".lowlm/retrain/intents")  # doctest: +SKIP
>>> merged.config.path, merged.new_rows, merged.dropped        # doctest: +SKIP

The merged corpus is the base corpus (``CorpusConfig.path``) plus every accepted file, in arrival
order. Rows are compared on their text with case and spacing normalised: a repeat with the same
label is dropped, a repeat with another label replaces the earlier label (the newest word wins),
and a train row whose text is in the validation or test file is dropped (it would leak). Separate
validation/test files keep their rows, so a champion and its challenger are scored on the same
test split. The merged splits are written as ``train.csv`` (and ``validation.csv``/``test.csv``)
in a folder named by their content digest, so an unchanged corpus gives the same config, the same
split digests and cached stages.

No Prefect here: the retrain flow and the CLI call these functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lowlm.config import CorpusConfig
from lowlm.corpus import DATA_SUFFIXES, SPLIT_PATTERNS, CorpusError, _format_of, _validate_rows, read_file

ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass
class Merged:
    """The merged corpus: a config pointing at it, and what merging did."""

    config: CorpusConfig
    digest: str
    accepted: list[str] = field(default_factory=list)  # files accepted by this merge
    rejected: dict[str, str] = field(default_factory=dict)  # file -> why
    new_rows: int = 0  # rows the files accepted by this merge added
    relabelled: int = 0  # rows kept with the label a newer row gave the same text
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows


def _key(text: str) -> str:
    return " ".join(str(text).casefold().split())


def _is_data(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and any(s in DATA_SUFFIXES for s in path.suffixes)


LINE_FORMATS = ("tab_lines", "colon_lines", "trec")


def _for_file(cfg: CorpusConfig, path: Path) -> CorpusConfig:
    """The corpus's settings for one file: a table file (CSV, JSONL...) goes by its extension, a line
    file by the corpus's line format (TREC's ``.label`` lines stay TREC lines, a CSV added beside
    them is still read as CSV), with the corpus's column names and encoding either way."""
    if cfg.format == "auto" or (cfg.format in LINE_FORMATS and path.suffix in (".txt", ".label")):
        return cfg
    return cfg.model_copy(update={"format": "auto"})


def read_rows(path: str | Path, cfg: CorpusConfig, added: bool = True) -> pd.DataFrame:
    """A file's rows as ``text``/``label`` with the corpus's columns and checks; errors name file and row.

    ``added``: an added file (see ``_for_file``); the corpus's own files are read exactly as configured.
    """
    path = Path(path)
    cfg = _for_file(cfg, path) if added else cfg
    frame = read_file(path, cfg)
    word = "line" if _format_of(path, cfg.format) in LINE_FORMATS else "row"
    return _validate_rows(frame, str(path), word)[["text", "label"]]


def _digest_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def add_file(path: str | Path, incoming_dir: str | Path, cfg: CorpusConfig) -> Path:
    """Check ``path`` with the corpus's reader and copy it into ``incoming_dir``; returns the copy.

    The copy is named ``<arrival time>-<content digest>-<name>`` (arrival order is merge order) and
    written under a temporary name first, so a retrain never reads half a file. The same bytes
    already waiting or accepted are not added twice (CorpusError says where they are).
    """
    path, incoming = Path(path), Path(incoming_dir)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    if not _is_data(path):
        raise CorpusError(f"{path}: not a corpus file (expected one of {', '.join(sorted(DATA_SUFFIXES))})")
    read_rows(path, cfg)  # refuse a file the retrain could not read, now, with the reason
    digest = _digest_bytes(path)
    for folder in (incoming, incoming / ACCEPTED):
        if folder.is_dir():
            for known in folder.iterdir():
                if known.is_file() and f"-{digest}-" in known.name:
                    raise CorpusError(f"{path}: the same file was already added as {known}")
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / f"{time.strftime('%Y%m%dT%H%M%S')}-{digest}-{path.name}"
    partial = incoming / f".{target.name}.partial"
    shutil.copyfile(path, partial)
    os.replace(partial, target)
    return target


def pending(incoming_dir: str | Path) -> list[Path]:
    """Files waiting in ``incoming_dir``, in arrival (name) order."""
    folder = Path(incoming_dir)
    return sorted(p for p in folder.iterdir() if _is_data(p)) if folder.is_dir() else []


def _base_files(cfg: CorpusConfig) -> dict[str, list[Path]]:
    path = Path(cfg.path)
    if not path.exists():
        raise CorpusError(f"corpus not found: {path}")
    grouped: dict[str, list[Path]] = {"train": [], "validation": [], "test": []}
    files = sorted(p for p in path.iterdir() if _is_data(p)) if path.is_dir() else [path]
    for file in files:
        split = next((s for s, pat in SPLIT_PATTERNS.items() if pat.match(file.name)), "train")
        grouped[split].append(file)
    if cfg.validation_file:
        grouped["validation"] = [Path(cfg.validation_file)]
    if cfg.test_file:
        grouped["test"] = [Path(cfg.test_file)]
    return grouped


def merge_incoming(cfg: CorpusConfig, incoming_dir: str | Path, out_dir: str | Path) -> Merged:
    """Accept the waiting files, merge base + accepted rows, write the result; see the module doc.

    A waiting file that cannot be read is moved to ``rejected/`` with the reason beside it and the
    merge goes on without it; the base corpus failing to read is an error (CorpusError).
    """
    incoming = Path(incoming_dir)
    accepted_dir, rejected_dir = incoming / ACCEPTED, incoming / REJECTED
    result = Merged(config=cfg, digest="")
    fresh = []
    for file in pending(incoming):
        try:
            read_rows(file, cfg)
        except CorpusError as exc:
            rejected_dir.mkdir(parents=True, exist_ok=True)
            shutil.move(file, rejected_dir / file.name)
            (rejected_dir / f"{file.name}.error.txt").write_text(f"{exc}\n")
            result.rejected[str(file)] = str(exc)
            continue
        accepted_dir.mkdir(parents=True, exist_ok=True)
        shutil.move(file, accepted_dir / file.name)
        result.accepted.append(str(accepted_dir / file.name))
        fresh.append(file.name)

    grouped = _base_files(cfg)
    held = {split: pd.concat([read_rows(f, cfg, added=False) for f in grouped[split]], ignore_index=True)
            for split in ("validation", "test") if grouped[split]}
    held_keys = set(pd.concat(held.values())["text"].map(_key)) if held else set()
    parts = [read_rows(f, cfg, added=False).assign(_fresh=False) for f in grouped["train"]]
    for file in (sorted(p for p in accepted_dir.iterdir() if _is_data(p)) if accepted_dir.is_dir() else []):
        parts.append(read_rows(file, cfg).assign(_fresh=file.name in fresh))
    rows = pd.concat(parts, ignore_index=True)

    keys = rows["text"].map(_key)
    leak = keys.isin(held_keys)
    rows, keys = rows[~leak], keys[~leak]
    newest = keys.map(rows.assign(_key=keys).groupby("_key", sort=False)["label"].last())
    relabelled = rows["label"] != newest
    repeat = keys.duplicated()  # the first place a text appears keeps it, with its newest label
    merged = rows.assign(label=newest)[~repeat]
    result.dropped = {"duplicate": int(repeat.sum()), "in_validation_or_test": int(leak.sum())}
    result.relabelled = int((relabelled & ~repeat).sum())
    result.new_rows = int(merged["_fresh"].sum())

    frames = {"train": merged[["text", "label"]], **held}
    texts = {split: frame.to_csv(index=False) for split, frame in frames.items()}
    result.digest = hashlib.sha256("".join(f"{k}\n{v}" for k, v in texts.items()).encode()).hexdigest()[:16]
    folder = Path(out_dir) / f"corpus-{result.digest}"
    if not folder.is_dir():  # content-addressed: an existing folder already holds these bytes
        partial = Path(out_dir) / f".corpus-{result.digest}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for split, text in texts.items():
            (partial / f"{split}.csv").write_text(text, encoding="utf-8")
        os.replace(partial, folder)
    result.config = cfg.model_copy(update={
        "path": str(folder), "format": "csv", "text_column": "text", "label_column": "label", "encoding": "utf-8",
        "validation_file": None, "test_file": None,
    })
    return result
