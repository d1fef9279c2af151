"""Fuzzing every corpus reader: whatever the bytes, a reader gives rows or a ``CorpusError`` naming the file.

Inputs are arbitrary bytes, or documents of each layout written with random delimiters, quoting, line
breaks, encodings (UTF-8, Latin-1, cp1252, UTF-16), byte-order marks, NULs, empty and 200 KB fields, then
mutated (bytes inserted, the end cut off), read with a random encoding. Never another exception type, never
a hang (an alarm fails the example). Each test runs a few dozen examples (``datasets`` costs ~10 ms a
call); ``LOWLM_FUZZ_SCALE=20`` runs twenty times as many, and ``--hypothesis-show-statistics`` lists the
outcomes met (each kind of error, or "a corpus").
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import os
import re
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from lowlm.config import CorpusConfig, PairCorpusConfig
from lowlm.data.corpus import Corpus, CorpusError, label_name, load_corpus, read_file
from lowlm.data.pairs import PairCorpus, load_pairs

SCALE = float(os.environ.get("LOWLM_FUZZ_SCALE", "1"))  # e.g. 20 for a long search: examples per test x SCALE
FUZZ = settings(max_examples=int(30 * SCALE), deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.large_base_example])
ENCODINGS = ["utf-8", "latin-1", "cp1252", "utf-16", "utf-8-sig"]
HUGE = "x" * 200_000
SPECIAL = ",;|\t\"'\\\r\n\x00\ufeff\u2028\x85\x0c é€中 "

# ------------------------------------------------------------------------------------------- inputs

small_text = st.text(alphabet=st.one_of(st.sampled_from(SPECIAL), st.characters(codec="utf-8")), max_size=12)
clean_text = st.text(alphabet="abcdefghij éü€", min_size=1, max_size=10)  # documents that should load
labels = st.one_of(st.sampled_from(["1", "1.0", "2", "pos"]), st.sampled_from(["0", "2.5", " neg ", "", "NaN", "LOC:city"]))


def encode(text: str, encoding: str) -> bytes:
    """As a careless writer would: lone surrogates passed through where the codec allows, else replaced."""
    try:
        return text.encode(encoding, "surrogatepass" if encoding.startswith("utf") else "replace")
    except UnicodeEncodeError:
        return text.encode(encoding, "replace")


@st.composite
def documents(draw, text_strategy) -> tuple[bytes, str]:
    """(bytes, the encoding to read them with): a document encoded with a random codec, most often the one
    it is read with, perhaps behind a stray BOM, perhaps with bytes inserted or its end cut, perhaps
    compressed; or arbitrary bytes."""
    read_as = draw(st.sampled_from(ENCODINGS))
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return draw(st.binary(max_size=400)), read_as
    if kind <= 2:  # written and read alike, left whole
        return encode(draw(text_strategy), read_as), read_as
    written_as = read_as if draw(st.booleans()) else draw(st.sampled_from(ENCODINGS))
    data = encode(draw(text_strategy), written_as)
    if draw(st.integers(0, 5)) == 0:
        data = draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff\xfe", b"\x00", b"\x1f\x8b", b"PK\x03\x04"])) + data
    if draw(st.integers(0, 2)) == 0:
        for pos, junk in draw(st.lists(st.tuples(st.integers(0, 1 << 20), st.binary(min_size=1, max_size=4)),
                                       min_size=1, max_size=2)):
            pos %= len(data) + 1
            data = data[:pos] + junk + data[pos:]
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    compress = draw(st.sampled_from([None, None, None, None, gzip.compress, bz2.compress]))
    return (compress(data) if compress else data), read_as


@st.composite
def fields(draw, n: int) -> list[str]:
    row = [draw(st.one_of(small_text, labels)) for _ in range(n)]
    if row and draw(st.integers(0, 9)) == 0:
        row[draw(st.integers(0, n - 1))] = HUGE
    return row


@st.composite
def delimited(draw, sep_choices) -> str:
    """CSV/TSV text: a header (maybe repeating a name), rows of random length, random dialect and line breaks."""
    if draw(st.booleans()):  # tidy: a corpus that should load (rows, or a too-small-to-split error)
        header, rows = ["text", "label"], [[draw(clean_text), draw(st.sampled_from(["1", "2", "1.0", "2.0 "]))]
                                           for _ in range(draw(st.integers(8, 24)))]
        sep, quoting = sep_choices[0], csv.QUOTE_MINIMAL
    else:
        header = draw(st.sampled_from([["text", "label"], ["label", "text", "id"], ["text", "label", "text"], ["a"]]))
        texts = draw(st.sampled_from([clean_text, small_text]))
        rows = [[draw(texts), draw(labels)] + draw(fields(len(header) - 2 if len(header) > 2 else 0))
                for _ in range(draw(st.integers(0, 24)))]
        if rows and draw(st.integers(0, 3)) == 0:
            rows[draw(st.integers(0, len(rows) - 1))].append("extra")
        sep = draw(st.sampled_from(sep_choices))
        quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    out = io.StringIO()
    writer = csv.writer(out, delimiter=sep, quoting=quoting, escapechar="\\",
                        lineterminator=draw(st.sampled_from(["\n", "\r\n", "\r"])))
    for row in [header] + rows:
        writer.writerow(row)
    return out.getvalue()


@st.composite
def json_lines(draw) -> str:
    value = st.one_of(small_text, labels, st.integers(-3, 3), st.floats(), st.none(), st.booleans(),
                      st.lists(st.integers(), max_size=2), st.dictionaries(st.sampled_from("ab"), st.integers()),
                      st.text(alphabet=st.characters(categories=["Cs"]), min_size=1, max_size=2))
    tidy = draw(st.booleans())  # only records of a text and a label: a corpus that should load
    texts = clean_text if tidy else draw(st.sampled_from([clean_text, small_text]))
    good = st.sampled_from([1, 2, 1.0, "2"]) if tidy else labels
    lines = []
    for _ in range(draw(st.integers(8 if tidy else 0, 24))):
        kind = draw(st.integers(6 if tidy else 0, 12))
        if kind == 0:
            lines.append(draw(small_text))  # not JSON, or JSON that is not an object
        elif kind == 1:
            lines.append(json.dumps(draw(value)))
        elif kind == 2:
            lines.append('{"text": "a", "label": 1, "text": "b"}')
        else:
            record = {"text": draw(value) if kind == 3 else HUGE if kind == 5 else draw(texts),
                      "label": draw(value) if kind == 4 else draw(good)}
            lines.append(json.dumps(record, ensure_ascii=draw(st.booleans())))
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


@st.composite
def json_document(draw) -> str:
    rows = draw(st.lists(st.fixed_dictionaries({"text": st.one_of(small_text, st.integers()), "label": labels}),
                         max_size=12))
    shape = draw(st.integers(0, 3))
    if shape == 0:
        return json.dumps(rows)
    if shape == 1:
        return json.dumps({"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    if shape == 2:
        return json.dumps({"data": rows, "text": {"nested": 1}})
    return json.dumps(draw(st.one_of(small_text, st.integers(), st.none())))


@st.composite
def labelled_lines(draw, sep: str) -> str:
    tidy = draw(st.booleans())
    texts = clean_text if tidy else draw(st.sampled_from([clean_text, small_text]))
    tags = ["LOC:city", "HUM:ind"] if tidy else ["LOC:city", "HUM:ind", "LOC:city", "1", "1.0", "NUM", ""]
    lines = []
    for _ in range(draw(st.integers(8 if tidy else 0, 24))):
        kind = draw(st.integers(3 if tidy else 0, 12))
        if kind == 0:
            lines.append(draw(small_text))
        elif kind == 1:
            lines.append("")
        else:
            label = draw(st.sampled_from(tags))
            text = HUGE if kind == 2 else draw(texts)
            lines.append(f"{label}{sep}{text}")
    return draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)


# ------------------------------------------------------------------------------------------ checks


@contextmanager
def no_hang(seconds: int = 30):
    def alarm(signum, frame):
        raise TimeoutError(f"a reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def outcome(exc: Exception, folder: str) -> str:
    """The kind of error, for ``--hypothesis-show-statistics``: its message without paths, numbers, quotes."""
    text = re.sub(r"'[^']*'|\"[^\"]*\"|\[[^]]*\]|\d+", "_", str(exc).replace(folder, "")).split(";")[0]
    return text[:90]


def check_corpus(suffix: str, content: bytes, **cfg) -> None:
    """``read_file`` then (when it gives rows) ``load_corpus``: rows, or a CorpusError that names the file."""
    with tempfile.TemporaryDirectory() as folder, no_hang():
        path = Path(folder) / f"train{suffix}"
        path.write_bytes(content)
        config = CorpusConfig(path=str(path), test_size=0.25, validation_size=0.25, **cfg)
        try:
            rows = read_file(path, config)
            assert list(rows.columns) == ["text", "label", "_row"]
            corpus = load_corpus(config)
        except CorpusError as exc:
            assert str(path) in str(exc), f"the message does not name the file: {exc}"
            event(outcome(exc, folder))
            return
        event("a corpus")
        assert isinstance(corpus, Corpus) and len(corpus.labels) >= 2
        assert all(isinstance(name, str) and label_name(name) == name for name in corpus.labels)
        assert all(isinstance(t, str) and t.strip() for split in corpus.splits.values() for t in split["text"])


def check_pairs(files: dict[str, bytes], gz: bool, **cfg) -> None:
    with tempfile.TemporaryDirectory() as folder, no_hang():
        paths = {}
        for key, content in files.items():
            paths[key] = str(Path(folder) / f"{key}.txt")
            Path(paths[key]).write_bytes(gzip.compress(content) if gz else content)
        try:
            corpus = load_pairs(PairCorpusConfig(**paths, **cfg, test_size=1, validation_size=1))
        except CorpusError as exc:
            assert any(p in str(exc) for p in paths.values()), f"the message names no file: {exc}"
            event(outcome(exc, folder))
            return
        event("a corpus")
        assert isinstance(corpus, PairCorpus)
        assert all(isinstance(s, str) and isinstance(t, str) for pairs in corpus.splits.values() for s, t in pairs)



# --------------------------------------------------------------------------------------- the readers


@FUZZ
@given(doc=documents(delimited([",", ",", ";", "\t"])))
def test_csv(doc):
    check_corpus(".csv", doc[0], encoding=doc[1])


@FUZZ
@given(doc=documents(delimited(["\t", "\t", ","])))
def test_tsv(doc):
    check_corpus(".tsv", doc[0], encoding=doc[1])


@FUZZ
@given(doc=documents(json_lines()))
def test_jsonl(doc):
    check_corpus(".jsonl", doc[0], encoding=doc[1])


@settings(FUZZ, max_examples=int(20 * SCALE))
@given(doc=documents(json_document()))
def test_json(doc):
    check_corpus(".json", doc[0], encoding=doc[1])


@pytest.mark.parametrize("suffix,fmt,sep", [(".txt", "auto", "\t"), (".lines", "colon_lines", ":"),
                                            (".label", "auto", " ")])
@settings(FUZZ, max_examples=int(25 * SCALE))
@given(data=st.data())
def test_line_formats(suffix, fmt, sep, data):
    content, encoding = data.draw(documents(labelled_lines(sep)))
    check_corpus(suffix, content, format=fmt, encoding=encoding,
                 label_level=data.draw(st.sampled_from(["coarse", "fine"])))


column = st.one_of(
    st.lists(st.one_of(small_text, st.none()), min_size=12, max_size=12),
    st.lists(clean_text, min_size=12, max_size=12),
    st.lists(st.sampled_from([1, 2]), min_size=12, max_size=12),
    st.lists(st.integers(-2, 3), min_size=12, max_size=12),
    st.lists(st.one_of(st.sampled_from([1.0, 2.0, 2.5]), st.none()), min_size=12, max_size=12),
    st.lists(st.floats(), min_size=12, max_size=12),
    st.lists(st.booleans(), min_size=12, max_size=12),
    st.lists(st.lists(st.integers(0, 2), max_size=2), min_size=12, max_size=12),
    st.lists(st.binary(max_size=3), min_size=12, max_size=12),
)


@FUZZ
@given(text=column, label=column, name=st.sampled_from(["text", "sentence"]), damage=st.integers(0, 5))
def test_parquet(text, label, name, damage):
    frame = pd.DataFrame({name: text, "label": label})
    buffer = io.BytesIO()
    try:
        frame.to_parquet(buffer, index=False)
    except Exception:  # noqa: BLE001 - a frame pyarrow cannot write is no input for the reader
        assume(False)
    data = buffer.getvalue()
    if damage == 0:
        data = data[: len(data) // 2]
    check_corpus(".parquet", data)


@FUZZ
@given(text=column, label=column)
def test_dataframe(text, label):
    frame = pd.DataFrame({"text": text, "label": label})
    with no_hang():
        try:
            corpus = load_corpus(frame=frame, path="frame-input", test_size=0.25, validation_size=0.25)
        except CorpusError as exc:
            assert "frame-input" in str(exc)
            event(outcome(exc, "frame-input"))
            return
        event("a corpus")
        assert all(label_name(name) == name for name in corpus.labels)


plain_lines = st.lists(st.one_of(clean_text, small_text, st.just(HUGE)), max_size=12).map("\n".join)


@FUZZ
@given(source=documents(plain_lines), target=documents(plain_lines), gz=st.booleans())
def test_pairs_aligned(source, target, gz):
    check_pairs({"source_path": source[0], "target_path": target[0]}, gz, format="aligned", encoding=source[1])


@FUZZ
@given(doc=documents(delimited(["\t"])), gz=st.booleans(), fields=st.sampled_from([(0, 1), (1, 0), (0, 2)]))
def test_pairs_tsv(doc, gz, fields):
    check_pairs({"path": doc[0]}, gz, format="tsv", encoding=doc[1], source_field=fields[0], target_field=fields[1])


@FUZZ
@given(doc=documents(json_lines()), gz=st.booleans())
def test_pairs_jsonl(doc, gz):
    check_pairs({"path": doc[0]}, gz, format="jsonl", encoding=doc[1], source_field="text", target_field="label")
