"""Labelled text corpora: read any of the usual layouts through ``datasets``, validate, split, digest.

>>> corpus = load_corpus(CorpusConfig(path="data/sample/intents.csv"))   # doctest: +SKIP
>>> corpus.labels, {s: len(d) for s, d in corpus.splits.items()}         # doctest: +SKIP

Every split ends with two columns, ``text`` (str) and ``label`` (int index into ``corpus.names``).
Errors name the file, the row (1-based data row; line number for line files) and the field.

Out of scope (``CorpusConfig.out_of_scope_labels``): rows of those intents are relabelled ``out_of_scope``
before any split is carved, so carved validation and test splits get their share, and then dropped from
train. ``corpus.labels`` (what the model is trained on) never holds ``out_of_scope``; ``corpus.names``
is ``labels + ["out_of_scope"]`` when the config lists out-of-scope labels, so such a row's index is
``len(labels)``. Saved splits hold names, ``out_of_scope`` among them. A corpus without
out-of-scope labels has ``names == labels``: its splits and digests are as before.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import pandas as pd

from lowlm.config import CorpusConfig
from lowlm.config.data import OUT_OF_SCOPE
from lowlm.data.layouts import (
    _CONTAINERS,
    _read_lines,
    finish_rows,
    label_name,
    pick_columns,
    read_json,
)
from lowlm.data.textfiles import (
    CorpusError,
    _check_table,
    _check_text,
    _is_archive,
    _open_bytes,
    decoded_lines,
    few,
    is_unicode,
)

SPLIT_PATTERNS = {
    "train": re.compile(r"^(train|training)", re.I),
    "validation": re.compile(r"^(dev|val|valid|validation)", re.I),
    "test": re.compile(r"^test", re.I),
}
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".txt": "tab_lines",
    ".label": "trec",
}
DATA_SUFFIXES = set(EXTENSION_FORMATS)


@dataclass
class Corpus:
    """Splits with ``text``/``label`` columns, the label names, and where each split came from."""

    splits: datasets.DatasetDict
    labels: list[str]
    sources: dict[str, str] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows left out (drop_empty: "empty_text")
    out_of_scope: bool = False  # validation/test rows may hold index len(labels): OUT_OF_SCOPE

    def __post_init__(self) -> None:
        for name, split in self.splits.items():
            columns = split[:]  # whole columns as lists: iterating a datasets Column is slow
            self.digests.setdefault(name, split_digest(columns["text"], columns["label"], self.names))

    @property
    def names(self) -> list[str]:
        """What the splits' label indices name: ``labels``, then ``out_of_scope`` when the corpus has such rows."""
        return [*self.labels, OUT_OF_SCOPE] if self.out_of_scope else self.labels

    def frame(self, split: str) -> pd.DataFrame:
        """The split as a DataFrame with the label names (not indices)."""
        data = self.splits[split][:]
        names = self.names
        return pd.DataFrame({"text": data["text"], "label": [names[i] for i in data["label"]]})

    def save(self, folder: str | Path) -> dict[str, str]:
        """Write each split as Parquet (label names, not indices); returns split -> path."""
        return save_splits(folder, {name: self.frame(name) for name in self.splits})

    def content_digest(self) -> str:
        """What each split holds, whatever the row order (see ``content_digest``)."""
        return content_digest({name: self.frame(name) for name in self.splits})


def encode_labels(values, labels: list[str], source: str = "labels") -> list[int]:
    """Label names -> their indices in ``labels`` (a corpus's label list); an unknown name is an error.

    >>> encode_labels(["b", "a", "b"], ["a", "b"])
    [1, 0, 1]
    """
    index = {name: i for i, name in enumerate(labels)}
    values = list(values)
    unknown = sorted({str(v) for v in values if v not in index})
    if unknown:
        raise CorpusError(f"{source}: label(s) {few(unknown)} are not among the corpus's labels {few(labels, 10)}")
    return [index[v] for v in values]


def encode_scoped(values, labels: list[str], source: str = "labels") -> list[int]:
    """``encode_labels``, with ``out_of_scope`` (when not itself one of ``labels``) as -1.

    >>> encode_scoped(["b", "out_of_scope", "a"], ["a", "b"])
    [1, -1, 0]
    """
    values = list(values)
    if OUT_OF_SCOPE in labels:
        return encode_labels(values, labels, source)
    known = [v for v in values if v != OUT_OF_SCOPE]
    codes = iter(encode_labels(known, labels, source))
    return [-1 if v == OUT_OF_SCOPE else next(codes) for v in values]


def save_splits(folder: str | Path, frames: dict[str, pd.DataFrame]) -> dict[str, str]:
    """``folder/<split>.parquet`` per frame; returns split -> path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        paths[name] = str(path)
    return paths


def split_digest(texts, labels, label_names) -> str:
    """Content digest of a split: row order, texts and label names all count.

    >>> split_digest(["a", "b"], [0, 1], ["x", "y"]) == split_digest(["a", "b"], [0, 1], ["x", "y"])
    True
    """
    h = hashlib.sha256()
    for text, label in zip(texts, labels):
        h.update(f"{label_names[label]}\t{text}\n".encode("utf-8"))
    return h.hexdigest()[:16]


def content_digest(splits: dict[str, pd.DataFrame]) -> str:
    """Order-free digest of split name -> rows (``text``, ``label`` names): the same rows in each split,
    in any order, give the same digest. The retrain decision compares it with the champion's.

    >>> a = pd.DataFrame({"text": ["x", "y"], "label": ["p", "q"]})
    >>> content_digest({"train": a}) == content_digest({"train": a[::-1]})
    True
    """
    h = hashlib.sha256()
    for name in sorted(splits):
        frame = splits[name]
        h.update(f"[{name}]\n".encode())
        for line in sorted(f"{label}\t{text}" for text, label in zip(frame["text"], frame["label"])):
            h.update(line.encode("utf-8") + b"\n")
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------------------- reading

LINE_FORMATS = ("lines", "tab_lines", "colon_lines", "trec")
FORMATS = "csv, tsv, json, jsonl, parquet, lines, tab_lines, colon_lines, trec"


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s for s in path.suffixes if s != ".gz"]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix not in EXTENSION_FORMATS:
        raise CorpusError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"set format to one of {FORMATS}"
        )
    return EXTENSION_FORMATS[suffix]


def _read_table(path: Path, fmt: str, cfg: CorpusConfig, columns: int | None, header: bool) -> pd.DataFrame:
    source = str(path)
    if fmt in ("csv", "tsv"):  # every column as the text it is: labels 1 and 1.0 stay apart until label_name
        kwargs = {"sep": "\t" if fmt == "tsv" else ",", "encoding": cfg.encoding}
        if not header or cfg.columns:  # names by position ('0', '1', ...) or as `columns` gives them
            kwargs |= {"header": 0 if header else None, "names": cfg.columns or [str(i) for i in range(columns or 0)]}
        if columns:  # (an archive is not checked: datasets unpacks it)
            kwargs["converters"] = dict.fromkeys(range(columns), str)
        if fmt == "tsv":
            kwargs["quoting"] = 3  # csv.QUOTE_NONE: TSV corpora carry literal quotes
        data = datasets.load_dataset("csv", data_files=source, split="train", keep_default_na=False, **kwargs)
    elif fmt == "jsonl":
        data = datasets.load_dataset("json", data_files=source, split="train", encoding=cfg.encoding)
    else:
        data = datasets.load_dataset("parquet", data_files=source, split="train")
    return pick_columns(data.to_pandas(), cfg, source, header=header and fmt in ("csv", "tsv") and not cfg.columns)


def read_file(path: str | Path, cfg: CorpusConfig) -> pd.DataFrame:
    """One file -> DataFrame(text, label, _row) with no validation beyond its own layout.

    A text file is checked first, line by line (``decoded_lines``, ``_check_table``, ``_check_text``), so a
    bad byte, a binary file, a repeated header name, a short row or a line that is not a JSON object is
    reported at its line; a parser's own error is wrapped with the file's name. Then ``drop_empty`` and
    ``label_names`` apply (see ``finish_rows``; what was dropped is in the frame's ``attrs["dropped"]``).
    A JSON document whose keys are splits gives a ``_split`` column too.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    fmt = _format_of(path, cfg.format)
    if fmt in LINE_FORMATS:
        rows = _read_lines(path, fmt, cfg)
    elif fmt == "json":
        if _is_archive(path):
            raise CorpusError(f"{path}: an archive (zip, tar, 7z...), not a JSON document; unpack it and give the file")
        rows = read_json(path, cfg)
    else:
        rows = _read_columns(path, fmt, cfg)
    return finish_rows(rows, cfg, str(path), "line" if fmt in LINE_FORMATS else "row")


def _read_columns(path: Path, fmt: str, cfg: CorpusConfig) -> pd.DataFrame:
    columns, archive = None, _is_archive(path)
    header = cfg.header if cfg.header is not None else not cfg.columns
    if fmt != "parquet" and not archive:
        lines = decoded_lines(path, cfg.encoding, _open_bytes)
        if fmt in ("csv", "tsv"):
            columns = _check_table(path, fmt, lines, header, None if header else cfg.columns)
        else:  # jsonl
            _check_text(path, lines, json_lines=True)
    if not header and fmt in ("csv", "tsv") and archive and not cfg.columns:
        raise CorpusError(f"{path}: an archive without a header line: name its columns with `columns: [...]`")
    try:
        return _read_table(path, fmt, cfg, columns, header)
    except CorpusError:
        raise
    except Exception as exc:  # datasets/pandas/pyarrow parser errors: say which file, and where if we can
        if "corresponds to no data" in str(exc):
            raise CorpusError(f"{path}: the corpus is empty (no rows)") from exc
        root = exc
        while root.__cause__ is not None:
            root = root.__cause__
        what = f"{fmt} (an archive, unpacked by datasets)" if archive else fmt
        raise CorpusError(f"{path}: could not read as {what}: {type(root).__name__}: {str(root)[:300]}") from exc


def _validate_rows(frame: pd.DataFrame, source: str, row_word: str) -> pd.DataFrame:
    """Every row has a text and a label, each one value (not a list or an object); labels by ``label_name``."""
    if len(frame) == 0:
        raise CorpusError(f"{source}: the corpus is empty (no rows)")
    for column in ("text", "label"):
        values = frame[column]
        nested = values.map(lambda v: isinstance(v, _CONTAINERS)) if values.dtype == object else None
        if nested is not None and nested.any():
            kind = type(values[nested].iloc[0]).__name__
            raise CorpusError(f"{source}, {row_word} {frame.loc[nested, '_row'].iloc[0]}: the {column} should be "
                              f"a string or a number, got {kind} ({int(nested.sum())} such row(s))")
        bad = values.isna() | values.astype(str).str.strip().eq("")
        if column == "text":
            bad |= values.map(lambda v: isinstance(v, float) and math.isnan(v))
        if bad.any():
            first = frame.loc[bad, "_row"].iloc[0]
            raise CorpusError(
                f"{source}, {row_word} {first}: empty or missing {column} "
                f"({int(bad.sum())} such row(s)); every row needs a non-empty {column}"
                + ("; to leave such rows out, set drop_empty: true" if column == "text" else "")
            )
    frame = frame.copy()
    frame["text"] = frame["text"].astype(str)
    frame["label"] = frame["label"].map(label_name).astype(str)
    for column in ("text", "label"):
        if not is_unicode("".join(frame[column])):
            bad = ~frame[column].map(is_unicode)
            raise CorpusError(f"{source}, {row_word} {frame.loc[bad, '_row'].iloc[0]}: the {column} holds an unpaired "
                              f"surrogate (such as \\ud800), which is not Unicode text")
    return frame


def _files_in(folder: Path) -> dict[str, list[Path]]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and any(s in DATA_SUFFIXES for s in p.suffixes))
    if not files:
        raise CorpusError(f"{folder}: the folder holds no corpus files ({', '.join(sorted(DATA_SUFFIXES))})")
    grouped: dict[str, list[Path]] = {"train": [], "validation": [], "test": []}
    for path in files:
        split = next((s for s, pat in SPLIT_PATTERNS.items() if pat.match(path.name)), "train")
        grouped[split].append(path)
    return {k: v for k, v in grouped.items() if v}


def _read_splits(grouped: dict[str, list[Path]], cfg: CorpusConfig):
    """split -> validated rows, split -> source files, and what ``drop_empty`` left out. A JSON document whose
    keys are splits gives its rows to those splits (a split set by ``test_file``/``validation_file`` wins)."""
    parts: dict[str, list[pd.DataFrame]] = {}
    sources: dict[str, list[str]] = {}
    dropped: Counter = Counter()
    given = {name for name, file in (("test", cfg.test_file), ("validation", cfg.validation_file)) if file}
    for split, paths in grouped.items():
        for path in paths:
            word = "line" if _format_of(path, cfg.format) in LINE_FORMATS else "row"
            rows = read_file(path, cfg)
            dropped.update(rows.attrs.get("dropped", {}))
            inner = "_split" in rows.columns
            for name, part in (rows.groupby("_split", sort=False) if inner else [(split, rows)]):
                if inner and name in given and name != split:
                    continue
                where = f"{path} [{name}]" if inner else str(path)
                frame = _validate_rows(part.drop(columns="_split", errors="ignore").reset_index(drop=True), where, word)
                frame["_source"] = f"{where}, {word}"
                parts.setdefault(name, []).append(frame)
                sources.setdefault(name, []).append(str(path))
    raw = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    return raw, {name: ";".join(dict.fromkeys(files)) for name, files in sources.items()}, dict(dropped)


def _from_frames(raw: dict[str, pd.DataFrame], sources: dict[str, str], cfg: CorpusConfig,
                 dropped: dict[str, int] | None = None) -> Corpus:
    raw = _mark_out_of_scope(raw, sources, cfg)
    train = raw["train"]
    scoped = train[train["label"] != OUT_OF_SCOPE] if cfg.out_of_scope_labels else train
    labels = sorted(scoped["label"].unique())
    if len(labels) < 2:
        raise CorpusError(
            f"{sources['train']}: only one class ({labels[0]!r}) in {len(scoped)} in-scope rows; "
            f"a classifier needs at least two"
        )
    out_of_scope = bool(cfg.out_of_scope_labels)  # some row holds one of them (_mark_out_of_scope)
    names = [*labels, OUT_OF_SCOPE] if out_of_scope else labels
    known = set(names)
    for split in ("validation", "test"):
        if split not in raw:
            continue
        unknown = raw[split][~raw[split]["label"].isin(known)]
        if len(unknown):
            first, names = unknown.iloc[0], sorted(unknown["label"].unique())
            raise CorpusError(
                f"{first['_source']} {first['_row']}: label {first['label']!r} appears in the {split} split "
                f"but never in train ({len(unknown)} such row(s); the {split} split's new label(s): {few(names)}); "
                f"train labels are {few(labels, 10)}"
            )
    if cfg.max_rows and len(train) > cfg.max_rows:
        raw["train"] = train.sample(n=cfg.max_rows, random_state=cfg.seed)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})

    def to_ds(frame: pd.DataFrame) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"text": frame["text"].tolist(), "label": [names.index(x) for x in frame["label"]]}, features=features
        )

    splits = {name: to_ds(frame) for name, frame in raw.items()}
    splits = _carve(splits, cfg, sources)
    dropped = dict(dropped or {})
    if out_of_scope:  # never trained on: out of train, after validation and test took their share
        rows = splits["train"]["label"]
        keep = [i for i, label in enumerate(rows) if label != len(labels)]
        if len(keep) < len(rows):
            dropped["out_of_scope"] = len(rows) - len(keep)
            splits["train"] = splits["train"].select(keep).flatten_indices()
    return Corpus(datasets.DatasetDict(splits), labels, sources, dropped=dropped, out_of_scope=out_of_scope)


def _mark_out_of_scope(raw: dict[str, pd.DataFrame], sources: dict[str, str], cfg: CorpusConfig) -> dict:
    """Rows of ``cfg.out_of_scope_labels`` relabelled ``out_of_scope``; a listed label that no split holds, or an
    in-scope label named ``out_of_scope``, is an error (a typo would silently train on everything)."""
    if not cfg.out_of_scope_labels:
        return raw
    listed = set(cfg.out_of_scope_labels)
    seen = set().union(*(set(frame["label"]) for frame in raw.values()))
    missing = sorted(listed - seen)
    if missing:
        raise CorpusError(f"{sources['train']}: out_of_scope_labels {few(missing)} appear in no split; the labels are "
                          f"{few(sorted(seen), 10)}")
    if OUT_OF_SCOPE in seen - listed:
        raise CorpusError(f"{sources['train']}: a label is named {OUT_OF_SCOPE!r}, the name out-of-scope rows get; "
                          f"list it in out_of_scope_labels too, or rename it with label_names")
    out = {}
    for name, frame in raw.items():
        frame = frame.copy()
        frame.loc[frame["label"].isin(listed), "label"] = OUT_OF_SCOPE
        out[name] = frame
    return out


def _stratified(data: datasets.Dataset, size: float, seed: int, what: str, source: str):
    try:
        return data.train_test_split(test_size=size, seed=seed, stratify_by_column="label")
    except ValueError as exc:
        counts = pd.Series(data["label"]).value_counts()
        rare = [data.features["label"].names[i] for i, n in counts.items() if n < 2]
        raise CorpusError(
            f"{source}: cannot make a stratified {what} split of {len(data)} rows "
            f"(classes with fewer than 2 rows: {few(rare) if rare else 'none'}): {exc}"
        ) from None


def _carve(splits: dict, cfg: CorpusConfig, sources: dict[str, str]) -> dict:
    """Make test and validation splits from train (seeded, stratified) where the files gave none."""
    if "test" not in splits:
        parts = _stratified(splits["train"], cfg.test_size, cfg.seed, "test", sources["train"])
        splits["train"], splits["test"] = parts["train"], parts["test"]
        sources["test"] = f"{sources['train']} (stratified {cfg.test_size:g}, seed {cfg.seed})"
    if "validation" not in splits:
        parts = _stratified(splits["train"], cfg.validation_size, cfg.seed + 1, "validation", sources["train"])
        splits["train"], splits["validation"] = parts["train"], parts["test"]
        sources["validation"] = f"{sources['train']} (stratified {cfg.validation_size:g}, seed {cfg.seed + 1})"
    # Real corpora come sorted by class (BANKING77): always shuffle train, seeded.
    splits["train"] = splits["train"].shuffle(seed=cfg.seed).flatten_indices()
    return {name: splits[name] for name in ("train", "validation", "test")}


def load_corpus(cfg: CorpusConfig | None = None, frame: pd.DataFrame | None = None, **overrides) -> Corpus:
    """Load, validate and split a labelled corpus.

    Give a ``CorpusConfig`` (or its fields as keyword arguments), or a DataFrame in ``frame``
    (then ``cfg.path`` only names it). A folder's files are grouped into train/validation/test by
    name (``train*``, ``dev*``/``val*``, ``test*``; anything else is train).
    """
    if cfg is None:
        cfg = CorpusConfig(**({"path": "<DataFrame>"} | overrides))
    elif overrides:
        cfg = CorpusConfig(**(cfg.model_dump(exclude_unset=True) | overrides))  # validated, as a preset would be
    raw: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    dropped: dict[str, int] = {}
    if frame is not None:
        data = finish_rows(pick_columns(frame, cfg, cfg.path), cfg, cfg.path, "row")
        dropped = data.attrs["dropped"]
        raw["train"] = _validate_rows(data, cfg.path, "row")
        raw["train"]["_source"] = f"{cfg.path}, row"
        sources["train"] = cfg.path
    else:
        path = Path(cfg.path)
        if not path.exists():
            raise CorpusError(f"corpus not found: {path}")
        grouped = _files_in(path) if path.is_dir() else {"train": [path]}
        if cfg.validation_file:
            grouped["validation"] = [Path(cfg.validation_file)]
        if cfg.test_file:
            grouped["test"] = [Path(cfg.test_file)]
        if "train" not in grouped:
            raise CorpusError(f"{path}: no training file (expected a file named train* or an unnamed data file)")
        raw, sources, dropped = _read_splits(grouped, cfg)
        if "train" not in raw:
            raise CorpusError(f"{path}: no train split (the file gives {', '.join(sorted(raw))})")
    return _from_frames(raw, sources, cfg, dropped)


def corpus_fingerprint(cfg: CorpusConfig) -> str:
    """Hash of the bytes of every file a config reads: changes whenever the data on disk changes."""
    path = Path(cfg.path)
    files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
    files += [Path(f) for f in (cfg.validation_file, cfg.test_file) if f]
    return files_fingerprint(files)


def files_fingerprint(files, error: type[Exception] = CorpusError) -> str:
    """Hash of the names and bytes of ``files``, read in 1 MiB blocks; a missing file raises ``error``."""
    h = hashlib.sha256()
    for file in map(Path, files):
        h.update(file.name.encode())
        try:
            with open(file, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        except FileNotFoundError:
            raise error(f"corpus file not found: {file}") from None
    return h.hexdigest()[:16]
