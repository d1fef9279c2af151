"""How a corpus file's fields become ``text`` and ``label``: columns by name or position, texts joined
from several fields, JSON documents, empty texts dropped, raw label values named; and the checks that
name a layout's likely mistake (a headerless file read with a header, columns reversed).

>>> frame = pd.DataFrame({"0": ["2", "1"], "1": ["Rain", "Goal"], "2": ["", "late win"]})
>>> class Cfg: text_column, label_column, join_columns, join = "text", 0, ["1", "2"], " "
>>> pick_columns(frame, Cfg, "f.csv")[["text", "label"]].values.tolist()
[['Rain', '2'], ['Goal late win', '1']]
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lowlm.data.textfiles import (
    CorpusError,
    _BadJSON,
    _is_archive,
    _no_constant,
    _open_bytes,
    _unique_keys,
    decoded_lines,
    few,
)

if TYPE_CHECKING:
    from lowlm.config import CorpusConfig

_INTEGRAL = re.compile(r"[+-]?\d+\.0*", re.ASCII)
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", re.ASCII)
_CONTAINERS = (list, tuple, dict, set, bytes, bytearray, np.ndarray)
JSON_SPLITS = {"train": "train", "training": "train", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation", "test": "test"}
JSON_LAYOUTS = ("a list of records ([{\"text\": ..., \"label\": ...}, ...]) or of [text, label] pairs, or an object "
                "whose keys are splits (train, validation or dev, test) each holding such a list")


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


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def _pick(columns: list, wanted, what: str, source: str):
    """The first of ``wanted`` (a name, a position, or a list of them) that ``columns`` has."""
    options = [wanted] if isinstance(wanted, (str, int)) else list(wanted)
    for name in options:
        if isinstance(name, int) and not isinstance(name, bool):
            if 0 <= name < len(columns):
                return columns[name]
        elif name in columns:
            return name
    first = str(columns[0]) if columns else ""
    hint = ("; it starts with a UTF-8 byte-order mark read as Latin-1: set `encoding: utf-8`" if first.startswith("ï»¿")
            else "; one column only: is the file separated by another character?" if len(columns) == 1
            and any(c in first for c in ",;\t|") else "")
    said = " or ".join(f"at position {n}" if isinstance(n, int) else repr(n) for n in options)
    raise CorpusError(f"{source}: no {what} column {said}; the file has {len(columns)} column(s) "
                      f"{few(list(map(str, columns)), 8)}{hint}")


def header_looks_like_data(frame: pd.DataFrame) -> bool:
    """Whether a table's header line reads like one of its rows: a header cell is a number, or is a value
    of its own column where that column holds few distinct values (a label column)."""
    for column in frame.columns:
        name = str(column).strip()
        if _NUMBER.fullmatch(name):
            return True
        values = frame[column].map(lambda v: str(v).strip())
        if len(values) and values.nunique() <= max(1, len(values) // 2) and name in set(values):
            return True
    return False


def check_orientation(texts: pd.Series, labels: pd.Series, text_col, label_col, source: str) -> None:
    """Columns that look reversed: labels nearly all distinct (> 50% of > 20 rows) while texts repeat (few
    distinct values: at most 20% of the rows)."""
    rows = len(labels)
    if rows <= 20:
        return
    n_labels, n_texts = labels.astype(str).nunique(), texts.astype(str).nunique()
    if n_labels > 0.5 * rows and n_texts <= 0.2 * rows:
        raise CorpusError(f"{source}: the label column {str(label_col)!r} looks like text ({n_labels} distinct values "
                          f"in {rows} rows) and the text column {str(text_col)!r} like labels ({n_texts} distinct); "
                          f"columns reversed?")


def _joined(frame: pd.DataFrame, names: list, sep: str) -> list:
    """Each row's non-empty parts joined with ``sep``; a part that is a list or an object is left for the
    row check to report."""
    out = []
    for values in zip(*(frame[name].tolist() for name in names)):
        nested = next((v for v in values if isinstance(v, _CONTAINERS)), None)
        if nested is not None:
            out.append(nested)
            continue
        out.append(sep.join(str(v).strip() for v in values if not _missing(v) and str(v).strip()))
    return out


def pick_columns(frame: pd.DataFrame, cfg: CorpusConfig, source: str, header: bool = False) -> pd.DataFrame:
    """A table's ``text`` (``text_column``, or ``join_columns`` joined) and ``label`` columns, with ``_row``
    (1-based). ``header``: the column names came from the file's first line (a missing column then says when
    that line looks like data)."""
    columns = list(frame.columns)
    joined = getattr(cfg, "join_columns", None)
    try:
        text_cols = [_pick(columns, c, "text", source) for c in joined] if joined else None
        text_col = _pick(columns, cfg.text_column, "text", source) if not joined else "+".join(map(str, text_cols))
        label_col = _pick(columns, cfg.label_column, "label", source)
    except CorpusError as exc:
        if header and header_looks_like_data(frame):
            raise CorpusError(f"{exc}; the first row looks like data: set header: false (then pick columns by "
                              f"position, e.g. text_column: 1, or name them with columns: [...])") from None
        raise
    picked = set(text_cols or [text_col]) | {label_col}
    twice = sorted({str(c) for c in frame.columns[frame.columns.duplicated()] if c in picked})
    if twice:
        raise CorpusError(f"{source}: more than one column is named {', '.join(twice)}")
    texts = pd.Series(_joined(frame, text_cols, cfg.join), dtype=object) if joined else frame[text_col]
    check_orientation(texts, frame[label_col], text_col, label_col, source)
    return pd.DataFrame({"text": texts.values, "label": frame[label_col].values, "_row": range(1, len(frame) + 1)})


def finish_rows(rows: pd.DataFrame, cfg: CorpusConfig, source: str, row_word: str) -> pd.DataFrame:
    """``drop_empty`` (the count in ``rows.attrs["dropped"]``) and ``label_names``, on any reader's rows."""
    dropped = {}
    if getattr(cfg, "drop_empty", False) and len(rows):
        empty = rows["text"].map(lambda v: not isinstance(v, _CONTAINERS) and (_missing(v) or not str(v).strip()))
        if empty.all():
            raise CorpusError(f"{source}: every row's text is empty or missing ({len(rows)} row(s)); nothing to read")
        if empty.any():
            dropped["empty_text"] = int(empty.sum())
            rows = rows[~empty.values].reset_index(drop=True)
    if getattr(cfg, "label_names", None):
        rows = rows.copy()
        rows["label"] = name_labels(rows, cfg.label_names, source, row_word)
    rows.attrs["dropped"] = dropped
    return rows


_UNNAMED = object()


def name_labels(rows: pd.DataFrame, names: dict, source: str, row_word: str = "row") -> list:
    """Raw label values -> their names (keys compared by ``label_name``); a value that already is a name is
    kept, an empty one left for the row check; any other value is an error naming a few and the count.

    >>> rows = pd.DataFrame({"label": [1, "2", 2.0, "Sports"], "_row": [1, 2, 3, 4]})
    >>> name_labels(rows, {"1": "World", "2": "Sports"}, "f.csv")
    ['World', 'Sports', 'Sports', 'Sports']
    """
    mapping = {label_name(k): str(v) for k, v in names.items()}
    known = set(mapping.values())

    def one(value):
        if isinstance(value, _CONTAINERS) or _missing(value) or not str(value).strip():
            return value
        key = label_name(value)
        return mapping.get(key, key if key in known else _UNNAMED)

    out = [one(v) for v in rows["label"].tolist()]
    missing = [i for i, v in enumerate(out) if v is _UNNAMED]
    if missing:
        values = sorted({label_name(rows["label"].iloc[i]) for i in missing})
        raise CorpusError(f"{source}, {row_word} {rows['_row'].iloc[missing[0]]}: label value(s) {few(values)} are not "
                          f"in label_names ({len(values)} value(s) in {len(missing)} row(s)); label_names maps "
                          f"{few(sorted(mapping))}")
    return out


def _read_lines(path: Path, fmt: str, cfg: CorpusConfig) -> pd.DataFrame:
    """label<TAB>text, LABEL:text, TREC's COARSE:fine text or (``lines``) text and label split at ``sep`` in
    the order ``columns`` gives, one example per line (blank lines skipped). ``lines`` splits at the first
    separator when the label comes first, at the last when it comes last: the text may hold the separator.

    Read with ``decoded_lines`` (``datasets``' text loader ignores the encoding of a .gz file).
    """
    if _is_archive(path):
        raise CorpusError(f"{path}: an archive (zip, tar, 7z...), not a {fmt} text file; unpack it and give the file")
    texts, labels, lines = [], [], []
    seen, split_at, label_first = 0, cfg.sep or "\t", (cfg.columns or ["text", "label"])[0] == "label"
    for lineno, line in decoded_lines(path, cfg.encoding, _open_bytes):
        seen, line = lineno, line.rstrip("\r\n")
        line = line.lstrip("\ufeff") if lineno == 1 else line
        if not line.strip():
            continue
        if fmt == "tab_lines":
            label, sep, text = line.partition("\t")
        elif fmt == "colon_lines":
            label, sep, text = line.partition(":")
        elif fmt == "lines":
            label, sep, text = line.partition(split_at) if label_first else line.rpartition(split_at)[::-1]
        else:  # trec
            head, sep, text = line.partition(" ")
            coarse, colon, _ = head.partition(":")
            sep = sep if colon else ""
            label = coarse if cfg.label_level == "coarse" else head
        if not sep or not label.strip():
            shown = "<TAB>" if split_at == "\t" else split_at
            expected = {"tab_lines": "label<TAB>text", "colon_lines": "LABEL:text", "trec": "COARSE:fine text",
                        "lines": f"label{shown}text" if label_first else f"text{shown}label"}[fmt]
            raise CorpusError(f"{path}, line {lineno}: expected {expected}, got {line[:60]!r}")
        texts.append(text.strip())
        labels.append(label.strip())
        lines.append(lineno)
    if not lines:
        raise CorpusError(f"{path}: the file is empty (0 bytes)" if not seen else f"{path}: the file holds only blank lines")
    rows = pd.DataFrame({"text": texts, "label": labels, "_row": lines})
    check_orientation(rows["text"], rows["label"], "text", "label", str(path))
    return rows


# ------------------------------------------------------------------------------------------ JSON


def _document(path: Path, encoding: str):
    text = "".join(line for _, line in decoded_lines(path, encoding, _open_bytes)).lstrip("\ufeff")
    if not text:
        raise CorpusError(f"{path}: the file is empty (0 bytes)")
    if not text.strip():
        raise CorpusError(f"{path}: the file holds only blank lines; expected a JSON document")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data" and text.lstrip()[:1] == "{":
            raise CorpusError(f"{path}: holds JSON Lines (one JSON object a line, a second document on line "
                              f"{exc.lineno}), not one JSON document: set `format: jsonl`") from None
        raise CorpusError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    except _BadJSON as exc:
        raise CorpusError(f"{path}: {exc}") from None
    except RecursionError:
        raise CorpusError(f"{path}: JSON nested too deeply") from None


def _json_rows(items: list, cfg: CorpusConfig, source: str) -> pd.DataFrame:
    """A list of records (objects) or of pairs ([text, label], in the order ``columns`` gives)."""
    if not items:
        raise CorpusError(f"{source}: the list is empty; expected records or [text, label] pairs")
    names = cfg.columns or ["text", "label"]
    records = isinstance(items[0], dict)
    for i, item in enumerate(items, start=1):
        if records and not isinstance(item, dict) or not records and not (isinstance(item, list) and len(item) == len(names)):
            what = "a record (an object)" if records else f"a pair {names} (a list of {len(names)})"
            got = "null" if item is None else f"a list of {len(item)}" if isinstance(item, list) else type(item).__name__
            raise CorpusError(f"{source}, row {i}: expected {what}, as in row 1, got {got}; the file can be "
                              f"{JSON_LAYOUTS}")
    frame = pd.DataFrame.from_records(items) if records else pd.DataFrame(items, columns=names)
    return pick_columns(frame, cfg, source)


def read_json(path: Path, cfg: CorpusConfig) -> pd.DataFrame:
    """One JSON document -> rows (``text``, ``label``, ``_row``), with ``_split`` when its keys are splits."""
    doc = _document(path, cfg.encoding)
    if isinstance(doc, list):
        return _json_rows(doc, cfg, str(path))
    if not isinstance(doc, dict):
        kind = "null" if doc is None else {str: "string", bool: "boolean"}.get(type(doc), "number")
        raise CorpusError(f"{path}: the JSON document is a {kind}; it can be {JSON_LAYOUTS}")
    odd = [key for key in doc if key.lower() not in JSON_SPLITS]
    if odd or not doc:
        record = any(key in doc for key in (cfg.text_column, cfg.label_column) if isinstance(key, str))
        hint = "; one record alone: if the file is JSON Lines, set `format: jsonl`" if record else ""
        raise CorpusError(f"{path}: the JSON object's keys {few(odd)} are not splits (train, validation or dev, "
                          f"test){hint}; it can be {JSON_LAYOUTS}")
    frames, seen = [], {}
    for key, items in doc.items():
        split = JSON_SPLITS[key.lower()]
        if split in seen:
            raise CorpusError(f"{path}: the keys {seen[split]!r} and {key!r} are both the {split} split")
        seen[split] = key
        if not isinstance(items, list):
            raise CorpusError(f"{path}: the {key!r} split holds a {type(items).__name__}, not a list; it can be "
                              f"{JSON_LAYOUTS}")
        frames.append(_json_rows(items, cfg, f"{path} [{key}]").assign(_split=split))
    return pd.concat(frames, ignore_index=True)
