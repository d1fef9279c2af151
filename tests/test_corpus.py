"""Corpus loading: every input layout, splits, digests, and every validation error."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest

from lowlm.config import CorpusConfig
from lowlm.data.corpus import CorpusError, corpus_fingerprint, load_corpus

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
