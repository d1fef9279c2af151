"""Labelled text corpora: read any of the usual layouts through ``datasets``, validate, split, digest.

>>> corpus = load_corpus(CorpusConfig(path="data/sample/intents.csv"))   # doctest: +SKIP
>>> corpus.labels, {s: len(d) for s, d in corpus.splits.items()}         # doctest: +SKIP

Every split ends with two columns, ``text`` (str) and ``label`` (int index into ``corpus.labels``).
Errors name the file, the row (1-based data row; line number for line files) and the field.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import pandas as pd

from lowlm.config import CorpusConfig
from lowlm.data.textfiles import CorpusError, _is_archive, _open_bytes, decoded_lines, is_unicode, json_object

SPLIT_PATTERNS = {
    "train": re.compile(r"^(train|training)", re.I),
    "validation": re.compile(r"^(dev|val|valid|validation)", re.I),
    "test": re.compile(r"^test", re.I),
}
EXTENSION_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".json": "jsonl",
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

    def __post_init__(self) -> None:
        for name, split in self.splits.items():
            columns = split[:]  # whole columns as lists: iterating a datasets Column is slow
            self.digests.setdefault(name, split_digest(columns["text"], columns["label"], self.labels))

    def frame(self, split: str) -> pd.DataFrame:
        """The split as a DataFrame with the label names (not indices)."""
        data = self.splits[split][:]
        return pd.DataFrame({"text": data["text"], "label": [self.labels[i] for i in data["label"]]})

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
        raise CorpusError(f"{source}: label(s) {unknown} are not among the corpus's labels {labels}")
    return [index[v] for v in values]


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

LINE_FORMATS = ("tab_lines", "colon_lines", "trec")
_INTEGRAL = re.compile(r"[+-]?\d+\.0*", re.ASCII)
_CONTAINERS = (list, tuple, dict, set, bytes, bytearray, np.ndarray)


def label_name(value) -> str:
    """A label value as its name: an integral number in integer form, whatever type a reader gave it (CSV
    text, a JSON float, a Parquet float column with a gap), so ``1``, ``1.0``, ``"1"`` and ``"1.0"`` are one
    label; anything else as written, stripped.

    >>> [label_name(v) for v in (1, 1.0, "1", " 1.0 ", -2.0, 2.5, "2.50", "pos", True)]
    ['1', '1', '1', '1', '-2', '2.5', '2.50', 'pos', 'True']
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if math.isfinite(value) and float(value).is_integer() else str(value)
    text = str(value).strip()
    return str(int(text.split(".")[0])) if _INTEGRAL.fullmatch(text) else text


def _format_of(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    suffixes = [s for s in path.suffixes if s != ".gz"]
    suffix = suffixes[-1].lower() if suffixes else ""
    if suffix not in EXTENSION_FORMATS:
        raise CorpusError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"set format to one of csv, tsv, jsonl, parquet, tab_lines, colon_lines, trec"
        )
    return EXTENSION_FORMATS[suffix]


def _pick(columns: list[str], wanted: str | list[str], what: str, source: str) -> str:
    options = [wanted] if isinstance(wanted, str) else list(wanted)
    for name in options:
        if name in columns:
            return name
    first = str(columns[0]) if columns else ""
    hint = ("; it starts with a UTF-8 byte-order mark read as Latin-1: set `encoding: utf-8`" if first.startswith("ï»¿")
            else "; one column only: is the file separated by another character?" if len(columns) == 1
            and any(c in first for c in ",;\t|") else "")
    raise CorpusError(f"{source}: no {what} column {' or '.join(map(repr, options))}; the file has columns {columns}{hint}")


def _check_text(path: Path, lines, json_lines: bool = False, json_doc: bool = False) -> None:
    """Every line decodes (see ``decoded_lines``) and some line is not blank. ``json_lines``: every line
    that is not blank is one JSON object (see ``json_object``). ``json_doc``: a JSON document that is not
    ``null`` (pyarrow 25's JSON reader crashes the process on a document that starts with null)."""
    seen = blank = 0
    for lineno, text in lines:
        text = text.lstrip("\ufeff") if lineno == 1 else text
        seen, blank = seen + 1, blank + (not text.strip())
        if (json_lines or json_doc) and seen == blank + 1 and text.strip().startswith("null"):  # the first content
            raise CorpusError(f"{path}, line {lineno}: expected a JSON object, got null")
        if json_lines and text.strip():
            record = json_object(text, f"{path}, line {lineno}")
            if not is_unicode(json.dumps(record, ensure_ascii=False)):
                raise CorpusError(f"{path}, line {lineno}: an unpaired surrogate escape (such as \\ud800) "
                                  f"is not Unicode text")
    if seen == 0:
        raise CorpusError(f"{path}: the file is empty (0 bytes)")
    if seen == blank:
        raise CorpusError(f"{path}: the file holds only blank lines; expected rows")


def _check_table(path: Path, fmt: str, lines) -> int:
    """CSV/TSV layout, read from the raw lines: a header of distinct names, then records of as many fields
    (pandas would rename or drop a repeated name, pad a short record, take an extra field as the index).
    Blank lines are skipped, as pandas skips them. Returns the number of columns."""
    sep, word = ("\t", "tab") if fmt == "tsv" else (",", "comma")
    csv.field_size_limit(max(csv.field_size_limit(), (1 << 31) - 1))
    raw: list[str] = []

    def feed():
        for _, text in lines:
            raw.append(text)
            yield text

    reader = csv.reader(feed(), delimiter=sep, quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    blank = " \r\n" if fmt == "tsv" else " \t\r\n"
    header, header_line, rows, start, last = None, 0, 0, 1, (0, [])
    while True:
        try:
            record = next(reader, None)
        except csv.Error as exc:
            raise CorpusError(f"{path}, line {start}: {exc}") from exc
        if record is None:
            break
        text, last, raw[:] = "".join(raw), (start, list(raw)), []
        if not text.strip(blank):
            pass
        elif header is None:
            header, header_line = [record[0].lstrip("\ufeff")] + record[1:], start
            twice = sorted(name for name, n in Counter(header).items() if n > 1 and name)
            if twice:
                raise CorpusError(f"{path}, line {start}: the header names the column(s) {', '.join(map(repr, twice))} "
                                  f"more than once; give each column its own name (a reader renames or drops repeats)")
        elif len(record) != len(header):
            hint = f"; a field that holds a {word} must be in double quotes" if len(record) > len(header) and fmt == "csv" else ""
            raise CorpusError(f"{path}, line {start} (row {rows + 1}): expected {len(header)} {word}-separated fields, "
                              f"as in the header, got {len(record)}{hint}")
        else:
            rows += 1
        start = reader.line_num + 1
    if fmt == "csv" and last[1]:  # pandas refuses a quote still open at the end of the file
        try:
            list(csv.reader(last[1], strict=True))
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise CorpusError(f"{path}, line {last[0]}: a quoted field starts on this line and is never closed") from None
    if header is None:
        raise CorpusError(f"{path}: the file is empty (0 bytes)" if start == 1
                          else f"{path}: the file holds only blank lines; expected a header line and rows")
    if not rows:
        raise CorpusError(f"{path}: the corpus is empty (no rows after the header on line {header_line})")
    return len(header)


def _read_lines(path: Path, fmt: str, cfg: CorpusConfig) -> pd.DataFrame:
    """label<TAB>text, LABEL:text or TREC's COARSE:fine text, one example per line (blank lines skipped).

    Read with ``decoded_lines`` (``datasets``' text loader ignores the encoding of a .gz file).
    """
    if _is_archive(path):
        raise CorpusError(f"{path}: an archive (zip, tar, 7z...), not a {fmt} text file; unpack it and give the file")
    texts, labels, lines = [], [], []
    seen = 0
    for lineno, line in decoded_lines(path, cfg.encoding, _open_bytes):
        seen, line = lineno, line.rstrip("\r\n")
        line = line.lstrip("\ufeff") if lineno == 1 else line
        if not line.strip():
            continue
        if fmt == "tab_lines":
            label, sep, text = line.partition("\t")
        elif fmt == "colon_lines":
            label, sep, text = line.partition(":")
        else:  # trec
            head, sep, text = line.partition(" ")
            coarse, colon, _ = head.partition(":")
            sep = sep if colon else ""
            label = coarse if cfg.label_level == "coarse" else head
        if not sep or not label.strip():
            expected = {"tab_lines": "label<TAB>text", "colon_lines": "LABEL:text", "trec": "COARSE:fine text"}[fmt]
            raise CorpusError(f"{path}, line {lineno}: expected {expected}, got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(label.strip())
        lines.append(lineno)
    if not lines:
        raise CorpusError(f"{path}: the file is empty (0 bytes)" if not seen else f"{path}: the file holds only blank lines")
    return pd.DataFrame({"text": texts, "label": labels, "_row": lines})


def _read_table(path: Path, fmt: str, cfg: CorpusConfig, columns: int | None) -> pd.DataFrame:
    source = str(path)
    if fmt in ("csv", "tsv"):  # every column as the text it is: labels 1 and 1.0 stay apart until label_name
        kwargs = {"sep": "\t" if fmt == "tsv" else ",", "encoding": cfg.encoding}
        if columns:  # (an archive is not checked: datasets unpacks it)
            kwargs["converters"] = dict.fromkeys(range(columns), str)
        if fmt == "tsv":
            kwargs["quoting"] = 3  # csv.QUOTE_NONE: TSV corpora carry literal quotes
        data = datasets.load_dataset("csv", data_files=source, split="train", keep_default_na=False, **kwargs)
    elif fmt == "jsonl":
        data = datasets.load_dataset("json", data_files=source, split="train", encoding=cfg.encoding)
    else:
        data = datasets.load_dataset("parquet", data_files=source, split="train")
    frame = data.to_pandas()
    text_col = _pick(list(frame.columns), cfg.text_column, "text", source)
    label_col = _pick(list(frame.columns), cfg.label_column, "label", source)
    return pd.DataFrame({"text": frame[text_col], "label": frame[label_col], "_row": range(1, len(frame) + 1)})


def read_file(path: str | Path, cfg: CorpusConfig) -> pd.DataFrame:
    """One file -> DataFrame(text, label, _row) with no validation beyond its own layout.

    A text file is checked first, line by line (``decoded_lines``, ``_check_table``, ``_check_text``), so a
    bad byte, a binary file, a repeated header name, a short row or a line that is not a JSON object is
    reported at its line; a parser's own error is wrapped with the file's name.
    """
    path = Path(path)
    if not path.exists():
        raise CorpusError(f"corpus file not found: {path}")
    fmt = _format_of(path, cfg.format)
    if fmt in LINE_FORMATS:
        return _read_lines(path, fmt, cfg)
    columns, archive = None, _is_archive(path)
    if fmt != "parquet" and not archive:
        lines = decoded_lines(path, cfg.encoding, _open_bytes)
        if fmt in ("csv", "tsv"):
            columns = _check_table(path, fmt, lines)
        else:  # jsonl (a .json file: one JSON document, read by datasets as it likes)
            json_doc = any(s.lower() == ".json" for s in path.suffixes)
            _check_text(path, lines, json_lines=not json_doc, json_doc=json_doc)
    try:
        return _read_table(path, fmt, cfg, columns)
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


def _read_split(paths: list[Path], cfg: CorpusConfig) -> tuple[pd.DataFrame, str]:
    frames = []
    for path in paths:
        fmt = _format_of(path, cfg.format)
        word = "line" if fmt in LINE_FORMATS else "row"
        frame = _validate_rows(read_file(path, cfg), str(path), word)
        frame["_source"] = f"{path}, {word}"
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), ";".join(map(str, paths))


def _from_frames(raw: dict[str, pd.DataFrame], sources: dict[str, str], cfg: CorpusConfig) -> Corpus:
    train = raw["train"]
    labels = sorted(train["label"].unique())
    if len(labels) < 2:
        raise CorpusError(
            f"{sources['train']}: only one class ({labels[0]!r}) in {len(train)} rows; "
            f"a classifier needs at least two"
        )
    known = set(labels)
    for split in ("validation", "test"):
        if split not in raw:
            continue
        unknown = raw[split][~raw[split]["label"].isin(known)]
        if len(unknown):
            first = unknown.iloc[0]
            raise CorpusError(
                f"{first['_source']} {first['_row']}: label {first['label']!r} appears in the {split} split "
                f"but never in train ({len(unknown)} such row(s)); train labels are {labels}"
            )
    if cfg.max_rows and len(train) > cfg.max_rows:
        raw["train"] = train.sample(n=cfg.max_rows, random_state=cfg.seed)
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=labels)})

    def to_ds(frame: pd.DataFrame) -> datasets.Dataset:
        return datasets.Dataset.from_dict(
            {"text": frame["text"].tolist(), "label": [labels.index(x) for x in frame["label"]]}, features=features
        )

    splits = {name: to_ds(frame) for name, frame in raw.items()}
    splits = _carve(splits, cfg, sources)
    return Corpus(datasets.DatasetDict(splits), labels, sources)


def _stratified(data: datasets.Dataset, size: float, seed: int, what: str, source: str):
    try:
        return data.train_test_split(test_size=size, seed=seed, stratify_by_column="label")
    except ValueError as exc:
        counts = pd.Series(data["label"]).value_counts()
        rare = [data.features["label"].names[i] for i, n in counts.items() if n < 2]
        raise CorpusError(
            f"{source}: cannot make a stratified {what} split of {len(data)} rows "
            f"(classes with fewer than 2 rows: {rare or 'none'}): {exc}"
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
        cfg = cfg.model_copy(update=overrides)
    raw: dict[str, pd.DataFrame] = {}
    sources: dict[str, str] = {}
    if frame is not None:
        text_col = _pick(list(frame.columns), cfg.text_column, "text", cfg.path)
        label_col = _pick(list(frame.columns), cfg.label_column, "label", cfg.path)
        twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()] if c in (text_col, label_col)})
        if twice:
            raise CorpusError(f"{cfg.path}: the frame has more than one column named {', '.join(twice)}")
        data = pd.DataFrame({"text": frame[text_col].values, "label": frame[label_col].values,
                             "_row": range(1, len(frame) + 1)})
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
        for split, paths in grouped.items():
            raw[split], sources[split] = _read_split(paths, cfg)
    return _from_frames(raw, sources, cfg)


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
