"""Corpus loading: every input layout, splits, digests, and every validation error."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from lowlm.config import CorpusConfig
from lowlm.data.corpus import CorpusError, corpus_fingerprint, load_corpus, read_file

ROWS = [("good film, great cast", "pos"), ("awful plot", "neg"), ("loved it", "pos"), ("boring and slow", "neg"),
        ("a joy to watch", "pos"), ("waste of time", "neg"), ("brilliant acting", "pos"), ("dull script", "neg"),
        ("fun for all", "pos"), ("terrible ending", "neg"), ("so moving", "pos"), ("badly edited", "neg"),
        ("it was fine", "neu"), ("average at best", "neu"), ("neither good nor bad", "neu"), ("ok I guess", "neu"),
        ("watchable", "neu"), ("middling", "neu"), ("a superb story", "pos"), ("poor sound", "neg")]


def write(tmp_path, name: str, fmt: str, rows=ROWS, encoding: str = "utf-8"):
    path = tmp_path / name
    frame = pd.DataFrame(rows, columns=["review", "sentiment"])
    if fmt == "csv":
        frame.to_csv(path, index=False, encoding=encoding)
    elif fmt == "tsv":
        frame.to_csv(path, index=False, sep="\t", encoding=encoding)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({"review": t, "sentiment": y}) + "\n" for t, y in rows), encoding=encoding)
    elif fmt == "parquet":
        frame.to_parquet(path, index=False)
    elif fmt == "tab_lines":
        path.write_text("".join(f"{y}\t{t}\n" for t, y in rows), encoding=encoding)
    elif fmt == "colon_lines":
        path.write_text("".join(f"{y.upper()}:{t}\n" for t, y in rows), encoding=encoding)
    return path


@pytest.mark.parametrize("name,fmt", [("c.csv", "csv"), ("c.tsv", "tsv"), ("c.jsonl", "jsonl"),
                                      ("c.parquet", "parquet"), ("c.txt", "tab_lines"), ("c.lines", "colon_lines")])
def test_every_format_loads_the_same_rows(tmp_path, name, fmt):
    path = write(tmp_path, name, fmt)
    cfg = CorpusConfig(path=str(path), format="auto" if fmt != "colon_lines" else fmt,
                       text_column="review", label_column="sentiment", test_size=0.25, validation_size=0.2)
    corpus = load_corpus(cfg)
    texts = sorted(t for split in corpus.splits.values() for t in split["text"])
    assert texts == sorted(t for t, _ in ROWS)
    expected_labels = ["NEG", "NEU", "POS"] if fmt == "colon_lines" else ["neg", "neu", "pos"]
    assert corpus.labels == expected_labels
    # every text keeps its own label through parsing, splitting and shuffling
    truth = {t: y for t, y in ROWS}
    for split in corpus.splits.values():
        for text, label in zip(split["text"], split["label"]):
            assert corpus.labels[label].lower() == truth[text]


def test_dataframe_and_column_alternatives():
    frame = pd.DataFrame(ROWS, columns=["content", "y"])
    corpus = load_corpus(frame=frame, path="reviews-frame", text_column=["sentence", "content"], label_column="y",
                         test_size=0.25, validation_size=0.2)
    assert sum(len(s) for s in corpus.splits.values()) == len(ROWS)
    assert corpus.sources["train"] == "reviews-frame"


def test_stratified_split_is_seeded_and_keeps_class_shares(sample_csv):
    a = load_corpus(CorpusConfig(path=str(sample_csv), seed=7))
    b = load_corpus(CorpusConfig(path=str(sample_csv), seed=7))
    c = load_corpus(CorpusConfig(path=str(sample_csv), seed=8))
    assert a.digests == b.digests
    assert a.digests["test"] != c.digests["test"]
    test_counts = Counter(a.splits["test"]["label"])
    assert len(a.splits["test"]) == 72  # 20% of 360
    assert set(test_counts.values()) == {18}  # 90 per class -> 18 each in test
    assert not set(a.splits["train"]["text"]) & set(a.splits["test"]["text"])


def test_folder_with_named_splits(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write(folder, "train.csv", "csv", ROWS[:14] + ROWS[18:])
    write(folder, "dev.csv", "csv", ROWS[14:16])
    write(folder, "test.csv", "csv", ROWS[16:18])
    corpus = load_corpus(CorpusConfig(path=str(folder), text_column="review", label_column="sentiment"))
    assert [len(corpus.splits[s]) for s in ("train", "validation", "test")] == [16, 2, 2]
    assert corpus.sources["test"].endswith("test.csv")


def test_digest_changes_with_content(tmp_path):
    path = write(tmp_path, "c.csv", "csv")
    cfg = CorpusConfig(path=str(path), text_column="review", label_column="sentiment", test_size=0.25,
                       validation_size=0.2)
    before, print_before = load_corpus(cfg).digests, corpus_fingerprint(cfg)
    write(tmp_path, "c.csv", "csv", ROWS[:-1] + [("poor sound quality", "neg")])
    assert corpus_fingerprint(cfg) != print_before
    assert load_corpus(cfg).digests != before


def test_trec_coarse_labels_and_latin1(shared_data):
    trec = shared_data / "trec"
    with pytest.raises(CorpusError, match=r"train_5500.label.*cannot decode.*latin-1"):
        load_corpus(CorpusConfig(path=str(trec / "train_5500.label"), test_file=str(trec / "TREC_10.label")))
    corpus = load_corpus(CorpusConfig(path=str(trec / "train_5500.label"), test_file=str(trec / "TREC_10.label"),
                                      encoding="latin-1"))
    assert corpus.labels == ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]
    assert len(corpus.splits["test"]) == 500
    assert len(corpus.splits["train"]) + len(corpus.splits["validation"]) == 5452
    texts = list(corpus.splits["train"]["text"]) + list(corpus.splits["validation"]["text"])
    assert any("sister\u00f0city" in t for t in texts)  # the Latin-1 byte 0xF0, decoded


def test_trec_fine_labels(tmp_path):
    path = tmp_path / "q.label"
    path.write_text("".join(f"{lab} question number {i} ?\n" for i in range(12)
                            for lab in ("HUM:ind", "HUM:gr", "LOC:city")))
    coarse = load_corpus(CorpusConfig(path=str(path)))
    fine = load_corpus(CorpusConfig(path=str(path), label_level="fine"))
    assert coarse.labels == ["HUM", "LOC"]
    assert fine.labels == ["HUM:gr", "HUM:ind", "LOC:city"]
    assert fine.frame("test")["text"].str.startswith("question number").all()


def test_banking77_sorted_by_class_is_shuffled(shared_data):
    bank = shared_data / "banking77"
    corpus = load_corpus(CorpusConfig(path=str(bank / "train.csv"), test_file=str(bank / "test.csv"),
                                      label_column="category"))
    assert len(corpus.labels) == 77
    first = list(corpus.splits["train"]["label"])[:200]
    assert len(set(first)) > 40  # the file itself has only 2-3 classes in its first 200 rows


def test_sst2_columns_differ_between_files(shared_data):
    sst = shared_data / "sst2"
    corpus = load_corpus(CorpusConfig(path=str(sst / "train.tsv"), validation_file=str(sst / "dev.tsv"),
                                      test_file=str(sst / "test.tsv"), text_column=["sentence", "content"],
                                      max_rows=2000))
    assert [len(corpus.splits[s]) for s in ("train", "validation", "test")] == [2000, 872, 1821]
    assert corpus.labels == ["0", "1"]


# ------------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    with pytest.raises(CorpusError, match=r"not found: .*nope\.csv"):
        load_corpus(CorpusConfig(path=str(tmp_path / "nope.csv")))


def test_empty_corpus(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n")
    with pytest.raises(CorpusError, match=r"empty\.csv.*empty"):
        load_corpus(CorpusConfig(path=str(path)))


def test_missing_column_names_file_and_columns(tmp_path):
    path = write(tmp_path, "c.csv", "csv")
    with pytest.raises(CorpusError, match=r"c\.csv: no text column 'text'.*\['review', 'sentiment'\]"):
        load_corpus(CorpusConfig(path=str(path), label_column="sentiment"))


@pytest.mark.parametrize("bad", ["", "   ", None])
def test_empty_or_nan_text_names_the_row(tmp_path, bad):
    rows = list(ROWS)
    rows[4] = (bad, "pos")
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    with pytest.raises(CorpusError, match=r"c\.jsonl, row 5: empty or missing text"):
        load_corpus(CorpusConfig(path=str(path)))


def test_nan_text_in_csv_names_the_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("text,label\ngood,pos\n,neg\nbad,neg\n")
    with pytest.raises(CorpusError, match=r"c\.csv, row 2: empty or missing text"):
        load_corpus(CorpusConfig(path=str(path)))


def test_single_class(tmp_path):
    path = write(tmp_path, "c.csv", "csv", [(t, "pos") for t, _ in ROWS])
    with pytest.raises(CorpusError, match=r"only one class \('pos'\)"):
        load_corpus(CorpusConfig(path=str(path), text_column="review", label_column="sentiment"))


def test_label_only_in_test_split(tmp_path):
    train = write(tmp_path, "train.csv", "csv", [r for r in ROWS if r[1] != "neu"])
    test = write(tmp_path, "test.csv", "csv", ROWS[12:14])
    with pytest.raises(CorpusError, match=r"test\.csv, row 1: label 'neu' appears in the test split but never in train"):
        load_corpus(CorpusConfig(path=str(train), test_file=str(test), text_column="review",
                                 label_column="sentiment"))


def test_malformed_line_names_the_line(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("pos\tgreat\nneg\tbad\nthis line has no tab\n")
    with pytest.raises(CorpusError, match=r"c\.txt, line 3: expected label<TAB>text"):
        load_corpus(CorpusConfig(path=str(path)))


# ------------------------------------------------------------------ issue 9: what the readers get wrong


def test_integral_float_labels_are_the_integer_labels(tmp_path):
    """1, 1.0 and "1" are one label, whichever file or reader they come from; 2.5 stays as written."""
    rows = [(f"text number {i}", 1 + i % 2) for i in range(20)]
    train = tmp_path / "train.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(train, index=False)  # labels 1 and 2
    test = tmp_path / "test.csv"
    pd.DataFrame([("a test row", 1.0), ("another test row", 2.0)], columns=["text", "label"]).to_csv(test, index=False)
    valid = tmp_path / "valid.jsonl"
    valid.write_text('{"text": "a valid row", "label": 1.0}\n{"text": "one more", "label": 2}\n'
                     '{"text": "no label", "label": null}\n')
    with pytest.raises(CorpusError, match=r"valid\.jsonl, row 3: empty or missing label"):
        load_corpus(CorpusConfig(path=str(train), test_file=str(test), validation_file=str(valid)))
    valid.write_text('{"text": "a valid row", "label": 1.0}\n{"text": "one more", "label": 2}\n')
    corpus = load_corpus(CorpusConfig(path=str(train), test_file=str(test), validation_file=str(valid)))
    assert corpus.labels == ["1", "2"]
    assert set(corpus.frame("test")["label"]) == set(corpus.frame("validation")["label"]) == {"1", "2"}
    # Parquet with a float column (a gap made it float), a DataFrame, and a non-integral float
    pd.DataFrame({"text": ["x", "y", "z"], "label": [1.0, 2.0, None]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(CorpusError, match=r"p\.parquet, row 3: empty or missing label"):
        load_corpus(CorpusConfig(path=str(tmp_path / "p.parquet")))
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [float(y) for _, y in rows]})
    assert load_corpus(frame=frame).labels == ["1", "2"]
    frame["label"] = [2.5 if y == 2 else 1 for _, y in rows]
    assert load_corpus(frame=frame).labels == ["1", "2.5"]


def test_csv_text_is_read_as_written(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("text,label\n" + "".join(f"{i}.50,{i % 2}\n" for i in range(20)))
    corpus = load_corpus(CorpusConfig(path=str(path)))
    texts = {t for s in corpus.splits for t in corpus.frame(s)["text"]}
    assert "3.50" in texts and corpus.labels == ["0", "1"]


@pytest.mark.parametrize("name,header,dups", [("c.csv", "text,label,text", "'text'"),
                                              ("c.tsv", "label\ttext\tlabel\ttext", "'label', 'text'")])
def test_duplicate_header_columns_are_an_error(tmp_path, name, header, dups):
    path = tmp_path / name
    sep = "\t" if name.endswith(".tsv") else ","
    path.write_text(header + "\n" + sep.join(["1", "hello", "2", "x"][: header.count(sep) + 1]) + "\n")
    with pytest.raises(CorpusError, match=rf"{name}, line 1: the header names the column\(s\) {dups} more than once"):
        load_corpus(CorpusConfig(path=str(path)))


@pytest.mark.parametrize("content,expected", [
    (b"", r"e\.csv: the file is empty \(0 bytes\)"),
    (b"\n\n", r"e\.csv: the file holds only blank lines"),
    (b"text,label\n", r"e\.csv: the corpus is empty \(no rows after the header on line 1\)"),
    (b"text,label\nx,1\ny,2,3\nz,1\n", r"e\.csv, line 3 \(row 2\): expected 2 comma-separated fields, as in the header, got 3"),
    (b"text,label\n\"a\nb\",1\nshort\nz,1\n", r"e\.csv, line 4 \(row 2\): expected 2 comma-separated fields.* got 1"),
    (b"text,label\nx,1\nz,1,\n", r"e\.csv, line 3 \(row 2\): expected 2 .* got 3"),
])
def test_empty_and_ragged_csv_name_the_line(tmp_path, content, expected):
    path = tmp_path / "e.csv"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=expected):
        load_corpus(CorpusConfig(path=str(path)))


def test_blank_lines_are_skipped_as_pandas_skips_them(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("\ntext,label\n" + "".join(f"row {i},{i % 2}\n   \n" for i in range(20)))
    assert sum(len(s) for s in load_corpus(CorpusConfig(path=str(path))).splits.values()) == 20


@pytest.mark.parametrize("line,expected", [
    ('{"text": "b", "label":', r"j\.jsonl, line 3: not valid JSON \(Expecting value at column 23\)"),
    ('["b", 1]', r"j\.jsonl, line 3: expected a JSON object, got list"),
    ("7", r"j\.jsonl, line 3: expected a JSON object, got int"),
    ("null", r"j\.jsonl, line 3: expected a JSON object, got null"),
    ('{"text": "b", "label": 1} {"text": "c", "label": 2}', r"j\.jsonl, line 3: not valid JSON \(Extra data at column 27\)"),
    ('{"text": "b\\ud800", "label": 1}', r"j\.jsonl, line 3: an unpaired surrogate escape"),
    ('{"text": "b", "label": 1, "text": "c"}', r"j\.jsonl, line 3: key 'text' appears twice"),
])
def test_broken_jsonl_names_the_line(tmp_path, line, expected):
    path = tmp_path / "j.jsonl"
    path.write_text('{"text": "a", "label": 1}\n\n' + line + '\n{"text": "c", "label": 2}\n')
    with pytest.raises(CorpusError, match=expected):
        load_corpus(CorpusConfig(path=str(path)))


@pytest.mark.parametrize("name,head", [("c.csv", b"text,label\n"), ("c.txt", b""), ("c.jsonl", b"")])
def test_undecodable_byte_names_line_offset_and_byte(tmp_path, name, head):
    good = {"c.csv": b"row,1\nrow,2\n", "c.txt": b"1\trow\n2\trow\n",
            "c.jsonl": b'{"text": "row", "label": 1}\n{"text": "row", "label": 2}\n'}[name]
    bad = good.replace(b"row", b"caf\xe9", 1)
    path = tmp_path / name
    data = head + good * 20_000 + bad  # far past the first block a reader takes
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    line = data.count(b"\n", 0, offset) + 1
    with pytest.raises(CorpusError, match=rf"{name}, line {line}: cannot decode byte b'\\xe9' \(0xE9\) at byte offset "
                                          rf"{offset} as utf-8.*`encoding: latin-1`"):
        load_corpus(CorpusConfig(path=str(path)))
    rows = read_file(path, CorpusConfig(path=str(path), encoding="latin-1"))  # (a stratified split of 40k rows is slow)
    assert rows["text"].iloc[-2] == "café" and len(rows) == 40_002


@pytest.mark.parametrize("name", ["c.csv", "c.tsv", "c.txt", "c.jsonl", "c.label"])
def test_binary_file_is_not_a_text_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4)
    with pytest.raises(CorpusError, match=rf"{name}: not a text file \(a NUL byte at byte offset 8\)"):
        load_corpus(CorpusConfig(path=str(path)))
    path.write_bytes("text,label\nhallo,1\n".encode("utf-16-le"))
    with pytest.raises(CorpusError, match=r"looks like UTF-16 .*`encoding: utf-16-le`"):
        load_corpus(CorpusConfig(path=str(path)))


def test_utf16_csv_and_unknown_encoding(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame(ROWS, columns=["text", "label"]).to_csv(path, index=False, encoding="utf-16")
    cfg = CorpusConfig(path=str(path), encoding="utf-16", test_size=0.25, validation_size=0.2)
    assert load_corpus(cfg).labels == ["neg", "neu", "pos"]
    with pytest.raises(CorpusError, match=r"looks like UTF-16 .*byte-order mark.*`encoding: utf-16`"):
        load_corpus(CorpusConfig(path=str(path)))
    with pytest.raises(CorpusError, match=r"c\.csv: unknown encoding 'klingon'"):
        load_corpus(CorpusConfig(path=str(path), encoding="klingon"))


@pytest.mark.parametrize("content", [b'{"text": ["x", "y"], "label": [1, 2]}', b'[{"text": {"a": 1}, "label": 1}]',
                                     b"[1, 2", b'"just a string"', b'{"data": [1]}', b"\xff\xfe\x00", b"null",
                                     b"\xef\xbb\xbf\n null, 1"])
def test_json_file_errors_are_corpus_errors(tmp_path, content):
    path = tmp_path / "c.json"
    path.write_bytes(content)  # a document that starts with null crashed the process (pyarrow 25's JSON reader)
    with pytest.raises(CorpusError, match=r"c\.json"):
        load_corpus(CorpusConfig(path=str(path)))
    path = path.with_suffix(".jsonl")
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=r"c\.jsonl"):
        load_corpus(CorpusConfig(path=str(path)))


@pytest.mark.parametrize("name", ["q.label.gz", "q.label"])
def test_compressed_line_files_keep_their_encoding(tmp_path, name):
    import gzip

    data = "".join(f"{lab} caf\u00e9 number {i} ?\n" for i in range(12) for lab in ("HUM:ind", "LOC:city")).encode("latin-1")
    (tmp_path / name).write_bytes(gzip.compress(data))  # gzip told by the name or by the first bytes alone
    corpus = load_corpus(CorpusConfig(path=str(tmp_path / name), format="trec", encoding="latin-1"))
    assert corpus.labels == ["HUM", "LOC"] and corpus.frame("train")["text"].str.startswith("café").all()


def test_missing_column_hints(tmp_path):
    path = tmp_path / "c.csv"
    path.write_bytes("\ufefftext,label\n".encode() + "".join(f"t{i},{i % 2}\n" for i in range(12)).encode())
    with pytest.raises(CorpusError, match=r"no text column.*byte-order mark read as Latin-1: set `encoding: utf-8`"):
        load_corpus(CorpusConfig(path=str(path), encoding="latin-1"))
    path.write_text("text;label\n" + "".join(f"t{i};{i % 2}\n" for i in range(12)))
    with pytest.raises(CorpusError, match=r"\['text;label'\]; one column only: is the file separated by another"):
        load_corpus(CorpusConfig(path=str(path)))
