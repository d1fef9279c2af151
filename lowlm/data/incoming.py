"""New labelled data arriving for a corpus: checked on arrival, merged without duplicates, digested.

    incoming/                 files dropped here (or by ``lowlm data add``) wait for the next retrain
    incoming/accepted/        files already merged: part of the corpus from then on (nothing is lost)
    incoming/rejected/        files that could not be used, each beside ``<name>.error.txt`` saying why

>>> add_file("new.csv", "data/incoming", corpus_cfg)           # doctest: +SKIP
>>> merged = merge_incoming(corpus_cfg, "data/incoming", ".lowlm/retrain/intents")  # doctest: +SKIP
>>> merged.config.path, merged.new_rows, merged.dropped        # doctest: +SKIP

The merged corpus is the base corpus (``CorpusConfig.path``, split as a plain run splits it) with
the rows of every accepted file added to its train split, in arrival order. The base's validation
and test splits stay fixed, so a champion and its challenger are scored on the same test rows
and no test row moves into train. A new row is compared with what is there on its text, case and
spacing normalised: a repeat with the same label is dropped, a repeat with another label
relabels the earlier rows (the newest word wins), and a text of the validation or test split is
dropped (it would leak). The base's own rows are kept as they are, so merging no new data gives
the base corpus's content digest (``Corpus.content_digest``). The splits are written as
``train.csv``, ``validation.csv`` and ``test.csv`` in a folder named by their digest.

Labels: a file whose rows carry labels the base corpus lacks is refused (``lowlm data add``) or
rejected (merge), naming them, unless new labels are admitted: ``CorpusConfig.allow_new_labels``,
or ``add_file(..., allow_new_labels=True)`` (``lowlm data add --allow-new-labels``), which leaves a
marker beside the file. Admitted new labels also get held-out rows: a share of each new label's rows
(``test_size`` / ``validation_size``, at least one each, chosen by a hash of the text, so every
merge picks the same) moves to the test and validation splits, so the gate scores champion and
challenger on test data that has the new classes too, not on the old test split alone.

Files added by hand or by ``add_file`` are read as UTF-8 by their extension (a ``.txt``/``.label``
file added to a line-format corpus is read in that format), with the corpus's column names. One
merge at a time per incoming folder (a lock file); arrival order is the order of the UTC time
stamps that accepted files are named with.

No Prefect here: the retrain flow and the CLI call these functions.
"""

from __future__ import annotations

import codecs
import fcntl
import hashlib
import os
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from lowlm.config import CorpusConfig
from lowlm.data.textfiles import few
from lowlm.files import write_once
from lowlm.data.corpus import (DATA_SUFFIXES, LINE_FORMATS, CorpusError, _format_of, _validate_rows, content_digest, load_corpus,
                               read_file)

ACCEPTED, REJECTED = "accepted", "rejected"


@dataclass
class Merged:
    """The merged corpus: a config pointing at it, and what merging did."""

    config: CorpusConfig
    digest: str
    accepted: list[str] = field(default_factory=list)  # files accepted by this merge
    rejected: dict[str, str] = field(default_factory=dict)  # file -> why
    new_rows: int = 0  # rows the files accepted by this merge added
    new_labels: list[str] = field(default_factory=list)  # labels the base corpus lacks (admitted)
    relabelled: int = 0  # rows kept with the label a newer row gave the same text
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows


def _key(text: str) -> str:
    return " ".join(str(text).casefold().split())


def _is_data(path: Path) -> bool:
    return (path.is_file() and not path.name.startswith(".")
            and any(s.lower() in DATA_SUFFIXES for s in path.suffixes))


def _for_file(cfg: CorpusConfig, path: Path, encoding: str | None = None) -> CorpusConfig:
    """The corpus's settings for one file: a table file (CSV, JSONL...) goes by its extension, a line
    file by the corpus's line format (TREC's ``.label`` lines stay TREC lines, a CSV added beside
    them is still read as CSV), with the corpus's column names; always UTF-8 (a Latin-1 corpus such as
    TREC's does not make new files Latin-1)."""
    line_file = cfg.format in LINE_FORMATS and path.suffix.lower() in (".txt", ".label")
    return cfg.model_copy(update={"format": cfg.format if line_file else "auto", "encoding": encoding or "utf-8"})


def read_rows(path: str | Path, cfg: CorpusConfig, added: bool = True, encoding: str | None = None) -> pd.DataFrame:
    """A file's rows as ``text``/``label`` with the corpus's columns and checks; errors name file and row.

    ``added``: an added file (see ``_for_file``; ``encoding`` its text encoding, UTF-8 by default);
    the corpus's own files are read exactly as configured.
    """
    path = Path(path)
    cfg = _for_file(cfg, path, encoding) if added else cfg
    frame = read_file(path, cfg)
    word = "line" if _format_of(path, cfg.format) in LINE_FORMATS else "row"
    return _validate_rows(frame, str(path), word)[["text", "label"]]


NEW_LABELS_MARKER = ".{name}.new-labels"  # beside a file added with allow_new_labels
MIN_NEW_LABEL_ROWS = 3  # one each for train, validation and test


def check_labels(rows: pd.DataFrame, known, source: str, allow_new: bool) -> list[str]:
    """The labels of ``rows`` that ``known`` lacks; refused (CorpusError naming them and ``source``)
    unless ``allow_new``, and then each needs ``MIN_NEW_LABEL_ROWS`` rows."""
    counts = rows["label"].value_counts()
    new = sorted(str(label) for label in counts.index if label not in set(known))
    if new and not allow_new:
        raise CorpusError(
            f"{source}: label(s) {few(new)} are not among the corpus's labels {few(sorted(known))} "
            f"({int(counts[new].sum())} row(s)); correct them, or admit new labels with `lowlm data add "
            f"--allow-new-labels` (or corpus.allow_new_labels: true)")
    scarce = [label for label in new if counts[label] < MIN_NEW_LABEL_ROWS]
    if scarce:
        raise CorpusError(f"{source}: new label(s) {few(scarce)} have fewer than {MIN_NEW_LABEL_ROWS} rows; a new label "
                          f"needs rows for train, validation and test")
    return new


def check_files(files, cfg: CorpusConfig, known_labels=None, allow_new_labels: bool | None = None,
                encoding: str | None = None) -> dict[Path, pd.DataFrame]:
    """Every file's rows (see ``read_rows``), or one ``CorpusError`` naming every file that cannot be used:
    all files are checked before any is queued, so one bad file queues none. With ``known_labels``
    (the corpus's), new labels are refused unless allowed (default: ``cfg.allow_new_labels``)."""
    allow = cfg.allow_new_labels if allow_new_labels is None else allow_new_labels
    checked, errors = {}, []
    for file in files:
        try:
            rows = read_rows(file, cfg, encoding=encoding)
            if known_labels is not None:
                check_labels(rows, known_labels, str(file), allow)
            checked[Path(file)] = rows
        except CorpusError as exc:
            errors.append(str(exc))
    if errors:
        raise CorpusError("nothing queued:\n  " + "\n  ".join(errors))
    return checked


def _digest_bytes(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def _stamped(name: str, digest: str) -> str:
    """``<UTC time to the microsecond>-<content digest>-<name>``: names sort in arrival order."""
    return f"{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}-{digest}-{name}"


def _is_stamped(name: str) -> bool:
    head = name.split("-", 1)[0]
    return len(head) == 22 and head.endswith("Z") and head[8] == "T"


def _move(file: Path, folder: Path) -> Path:
    """Move ``file`` into ``folder`` under a stamped name (a hand-dropped file gets one), never over another."""
    folder.mkdir(parents=True, exist_ok=True)
    name = file.name if _is_stamped(file.name) else _stamped(file.name, _digest_bytes(file))
    target = folder / name
    while target.exists():
        target = folder / _stamped(file.name, _digest_bytes(file))
    marker = _marker(file)
    shutil.move(file, target)
    if marker.exists():
        shutil.move(marker, _marker(target))
    return target


@contextmanager
def _locked(folder: Path):
    """One merge at a time per incoming folder (the served deployment and a `lowlm retrain` may overlap)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".merge.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def check_incoming_dir(incoming_dir: str | Path, cfg) -> Path:
    """The incoming folder, resolved; refused when it is, holds or lies inside a folder of the base
    corpus's files, since merging moves every data file it finds there into ``accepted/``."""
    incoming = Path(incoming_dir).expanduser().resolve()
    names = ("path", "validation_file", "test_file", "source_path", "target_path", "validation_source",
             "validation_target", "test_source", "test_target", "validation_path", "test_path")
    corpus_files = [Path(f).expanduser().resolve() for f in (getattr(cfg, n, None) for n in names) if f]
    for corpus in corpus_files:
        folder = corpus if corpus.is_dir() else corpus.parent
        if incoming == folder or incoming.is_relative_to(folder) or folder.is_relative_to(incoming):
            raise CorpusError(f"incoming folder {incoming_dir}: it overlaps {folder}, which holds the base corpus "
                              f"({corpus.name}); merging would move the corpus itself into accepted/. "
                              f"Use a folder of its own, e.g. data/incoming")
    return incoming


def add_file(path: str | Path, incoming_dir: str | Path, cfg: CorpusConfig, allow_new_labels: bool = False,
             encoding: str | None = None, known_labels=None) -> Path:
    """Check ``path`` with the corpus's reader and copy it into ``incoming_dir``; returns the copy.

    ``allow_new_labels``: the file may bring labels the corpus lacks; a marker beside the copy lets the
    merge admit them. ``known_labels``: the corpus's labels (read from it when not given). ``encoding``:
    the file's text encoding when not UTF-8; the copy is written as UTF-8, as the merge reads it.

    The copy is named ``<arrival time>-<content digest>-<name>`` (arrival order is merge order) and
    written under a temporary name first, so a retrain never reads half a file. The same bytes
    already waiting or accepted are not added twice (CorpusError says where they are).
    """
    path, incoming = Path(path), Path(incoming_dir)
    check_incoming_dir(incoming, cfg)
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    if not _is_data(path):
        raise CorpusError(f"{path}: not a corpus file (expected one of {', '.join(sorted(DATA_SUFFIXES))})")
    rows = read_rows(path, cfg, encoding=encoding)  # refuse a file the retrain could not read, now, with the reason
    known = load_corpus(cfg).labels if known_labels is None else known_labels
    allow_new_labels = allow_new_labels or cfg.allow_new_labels
    check_labels(rows, known, str(path), allow_new_labels)
    digest = _digest_bytes(path)
    for folder in (incoming, incoming / ACCEPTED):
        if folder.is_dir():
            for known in folder.iterdir():
                if known.is_file() and f"-{digest}-" in known.name:
                    raise CorpusError(f"{path}: the same file was already added as {known}")
    incoming.mkdir(parents=True, exist_ok=True)
    target = incoming / _stamped(path.name, digest)
    partial = incoming / f".{target.name}.partial"
    if encoding and codecs.lookup(encoding).name != "utf-8" and path.suffix.lower() != ".parquet":
        partial.write_text(path.read_text(encoding=encoding), encoding="utf-8")
    else:
        shutil.copyfile(path, partial)
    if allow_new_labels:
        _marker(target).write_text("new labels admitted by `lowlm data add --allow-new-labels`\n")
    os.replace(partial, target)
    return target


def _marker(file: Path) -> Path:
    return file.parent / NEW_LABELS_MARKER.format(name=file.name)


def _new_labels_allowed(file: Path, cfg: CorpusConfig) -> bool:
    return cfg.allow_new_labels or _marker(file).exists()


def pending(incoming_dir: str | Path) -> list[Path]:
    """Files waiting in ``incoming_dir``, in arrival (name) order."""
    folder = Path(incoming_dir)
    return sorted(p for p in folder.iterdir() if _is_data(p)) if folder.is_dir() else []


def _add_rows(train: pd.DataFrame, keys: dict[str, list[int]], rows: pd.DataFrame, held: set[str],
              counts: dict[str, int]) -> pd.DataFrame:
    """Append ``rows`` to ``train`` (``keys``: normalised text -> row positions), dropping repeats and
    held-out texts and relabelling earlier rows where the new label differs; ``counts`` is updated."""
    labels = train["label"].tolist()
    new_texts = []
    for text, label in zip(rows["text"], rows["label"]):
        key = _key(text)
        if key in held:
            counts["in_validation_or_test"] += 1
        elif key in keys:
            if any(labels[i] != label for i in keys[key]):
                for i in keys[key]:
                    labels[i] = label
                counts["relabelled"] += 1
            else:
                counts["duplicate"] += 1
        else:
            keys[key] = [len(labels)]
            labels.append(label)
            new_texts.append(text)
    texts = train["text"].tolist() + new_texts
    return pd.DataFrame({"text": texts, "label": labels})


def _hold_out_new_labels(train: pd.DataFrame, held: dict[str, pd.DataFrame], known: set,
                         cfg: CorpusConfig) -> dict[str, pd.DataFrame]:
    """train / validation / test, with a share of each new label's rows moved from train to test and
    validation (at least one each; picked by a hash of the text, so the same rows every merge)."""
    new = train[~train["label"].isin(known)]
    if new.empty:
        return {"train": train, **held}
    moved = {"test": [], "validation": []}
    total = len(train[train["label"].isin(known)]) + sum(len(f) for f in held.values())
    # each held-out split's share of the base corpus (test_size / validation_size may be counts)
    shares = {split: len(held[split]) / max(1, total) for split in ("test", "validation")}
    for _, rows in new.groupby("label", sort=True):
        order = sorted(rows.index, key=lambda i: hashlib.sha256(_key(rows.at[i, "text"]).encode()).hexdigest())
        n_test = max(1, round(shares["test"] * len(order)))
        n_val = max(1, round(shares["validation"] * len(order)))
        moved["test"] += order[:n_test]
        moved["validation"] += order[n_test:n_test + n_val]
    out = {"train": train.drop(index=moved["test"] + moved["validation"]).reset_index(drop=True)}
    for split in ("validation", "test"):
        out[split] = pd.concat([held[split], train.loc[moved[split], ["text", "label"]]], ignore_index=True)
    return out


def _write(frames: dict[str, pd.DataFrame], out_dir: Path) -> tuple[Path, str]:
    """The splits as CSV in ``out_dir/corpus-<digest>/`` (written once, atomically); returns (folder, digest)."""
    digest = content_digest(frames)

    def write(partial: Path) -> None:
        for split, frame in frames.items():
            frame[["text", "label"]].to_csv(partial / f"{split}.csv", index=False)

    return write_once(out_dir / f"corpus-{digest}", write), digest


def _merged_config(cfg: CorpusConfig, folder: Path) -> CorpusConfig:
    return cfg.model_copy(update={
        "path": str(folder), "format": "csv", "text_column": "text", "label_column": "label", "encoding": "utf-8",
        "validation_file": None, "test_file": None, "max_rows": None,
        # the merged CSVs have a header, one text column and label names already: none of the base's layout
        "header": None, "columns": None, "sep": None, "join_columns": None, "label_names": None, "drop_empty": False,
    })


def merge_incoming(cfg: CorpusConfig, incoming_dir: str | Path, out_dir: str | Path) -> Merged:
    """Accept the waiting files, merge base + accepted rows, write the result; see the module doc.

    A waiting file that cannot be read, or whose rows would leave a corpus the pipeline cannot use
    (a label with too few rows to split, say), is moved to ``rejected/`` with the reason beside it,
    and the merge goes on without it. The base corpus failing to load is an error (CorpusError).
    """
    incoming, out_dir = Path(incoming_dir), Path(out_dir)
    check_incoming_dir(incoming, cfg)
    accepted_dir, rejected_dir = incoming / ACCEPTED, incoming / REJECTED
    with _locked(incoming):
        base = load_corpus(cfg)
        held = {split: base.frame(split) for split in ("validation", "test")}
        held_keys = {_key(t) for frame in held.values() for t in frame["text"]}
        train = base.frame("train")
        keys: dict[str, list[int]] = {}
        for i, text in enumerate(train["text"]):
            keys.setdefault(_key(text), []).append(i)
        counts = dict.fromkeys(("duplicate", "relabelled", "in_validation_or_test"), 0)
        known = set(base.labels)
        for file in pending(accepted_dir):  # merged before: part of the corpus
            rows = read_rows(file, cfg)
            check_labels(rows, known, str(file), _new_labels_allowed(file, cfg))
            train = _add_rows(train, keys, rows, held_keys, counts)
        counts = dict.fromkeys(counts, 0)  # report what this merge's files did
        before = len(train)

        result = Merged(config=cfg, digest="")
        for file in pending(incoming):
            try:
                rows = read_rows(file, cfg)
                check_labels(rows, known, str(file), _new_labels_allowed(file, cfg))
                trial_counts = dict(counts)
                trial_keys = {k: list(v) for k, v in keys.items()}
                trial = _add_rows(train, trial_keys, rows, held_keys, trial_counts)
                folder, _ = _write(_hold_out_new_labels(trial, held, known, cfg), out_dir)
                load_corpus(_merged_config(cfg, folder))  # the pipeline must be able to use the result
            except CorpusError as exc:
                moved = _move(file, rejected_dir)
                Path(f"{moved}.error.txt").write_text(f"{file.name}: {exc}\n")
                result.rejected[str(moved)] = str(exc)
                continue
            train, keys, counts = trial, trial_keys, trial_counts
            result.accepted.append(str(_move(file, accepted_dir)))
        result.new_rows = len(train) - before
        splits = _hold_out_new_labels(train, held, known, cfg)
        result.new_labels = sorted(set(splits["train"]["label"]) - known)
        folder, result.digest = _write(splits, out_dir)
    result.config = _merged_config(cfg, folder)
    result.relabelled = counts.pop("relabelled")
    result.dropped = counts
    return result
