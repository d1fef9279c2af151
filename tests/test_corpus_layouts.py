"""Corpora as users bring them: headerless tables, line files with any separator, JSON documents, joined
text fields, empty texts dropped, label values named, split sizes as counts; and the messages that name
a layout's likely mistake. Every test writes its file and reads it with ``load_corpus``."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pydantic import ValidationError

from lowlm.config import CorpusConfig
from lowlm.data.corpus import CorpusError, load_corpus, read_file

NAMES = {1: "World", 2: "Sports", 3: "Business", 4: "Sci/Tech"}
# (label, title, description): AG News's layout, 10 rows a class
NEWS = [(k, f"{NAMES[k]} title {i}", "" if i == 3 else f"{NAMES[k].lower()} story number {i}")
        for i in range(10) for k in NAMES]


def texts_by_label(corpus) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for split in corpus.splits:
        for text, label in corpus.frame(split).itertuples(index=False):
            out.setdefault(label, set()).add(text)
    return out


def all_rows(corpus) -> set[tuple[str, str]]:
    return {tuple(r) for split in corpus.splits for r in corpus.frame(split).itertuples(index=False)}


# ------------------------------------------------------------------------- 1. tables without a header


def test_headerless_csv_columns_by_position(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(NEWS).to_csv(path, header=False, index=False)
    corpus = load_corpus(CorpusConfig(path=str(path), header=False, text_column=1, label_column=0))
    assert corpus.labels == ["1", "2", "3", "4"]
    assert all_rows(corpus) == {(t, str(k)) for k, t, _ in NEWS}  # the first line is a row, not a header
    rows = read_file(path, CorpusConfig(path=str(path), header=False, text_column=2, label_column=0))
    assert rows["text"].iloc[0] == "world story number 0" and len(rows) == 40


def test_headerless_tsv_columns_named(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("".join(f"{k}\t{t}\t{d}\n" for k, t, d in NEWS))
    cfg = CorpusConfig(path=str(path), columns=["label", "title", "description"], text_column="description",
                       drop_empty=True, validation_size=4)
    corpus = load_corpus(cfg)
    assert all_rows(corpus) == {(d, str(k)) for k, _, d in NEWS if d} and corpus.dropped == {"empty_text": 4}
    bad = tmp_path / "bad.tsv"
    bad.write_text("1\ta\tb\n2\tc\n")
    with pytest.raises(CorpusError, match=r"bad\.tsv, line 2 \(row 2\): expected 3 tab-separated fields, as `columns`"):
        load_corpus(cfg, path=str(bad))


def test_headerless_file_read_with_a_header_says_so(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(NEWS).to_csv(path, header=False, index=False)
    with pytest.raises(CorpusError, match=r"no text column 'text'; the file has 3 column\(s\) \['1', 'World title 0', "
                                          r"'world story number 0'\]; the first row looks like data: set header: false"):
        load_corpus(CorpusConfig(path=str(path)))
    words = tmp_path / "words.csv"  # no number in the first row: its label 'pos' is a label of the rows below
    words.write_text("pos,great film\n" + "".join(f"{'pos' if i % 2 else 'neg'},film {i}\n" for i in range(30)))
    with pytest.raises(CorpusError, match=r"the first row looks like data: set header: false"):
        load_corpus(CorpusConfig(path=str(words)))
    named = tmp_path / "named.csv"  # a real header: no such hint
    named.write_text("sentiment,review\n" + "".join(f"{'pos' if i % 2 else 'neg'},film {i}\n" for i in range(30)))
    with pytest.raises(CorpusError, match=r"\['sentiment', 'review'\]$"):
        load_corpus(CorpusConfig(path=str(named)))


# ------------------------------------------------------------------------- 2. line files, any separator


@pytest.mark.parametrize("sep,columns,line", [
    ("\t", ["text", "label"], "{t}\t{y}"),
    ("@", ["text", "label"], "{t}@{y}"),
    ("\t", ["label", "text"], "{y}\t{t}"),
    (" ||| ", ["label", "text"], "{y} ||| {t}"),
])
def test_line_files_any_separator_either_order(tmp_path, sep, columns, line):
    rows = [(f"see {sep} here, part {i}" if i % 3 == 0 else f"sentence {i}", "pos" if i % 2 else "neg")
            for i in range(30)]  # some texts hold the separator itself
    path = tmp_path / "train.txt"
    path.write_text("".join(line.format(t=t, y=y) + "\n" for t, y in rows) + "\n")
    corpus = load_corpus(CorpusConfig(path=str(path), format="lines", sep=sep, columns=columns))
    assert corpus.labels == ["neg", "pos"] and all_rows(corpus) == set(rows)
    path.write_text(line.format(t="fine", y="pos") + "\nno separator here\n")
    with pytest.raises(CorpusError, match=r"train\.txt, line 2: expected (text|label)(<TAB>|@| \|\|\| )(label|text), got 'no sep"):
        load_corpus(CorpusConfig(path=str(path), format="lines", sep=sep, columns=columns))


def test_line_default_is_text_tab_label_and_old_line_formats_stay(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("".join(f"sentence {i}\t{i % 2}\n" for i in range(20)))
    assert load_corpus(CorpusConfig(path=str(path), format="lines")).labels == ["0", "1"]
    path.write_text("".join(f"{i % 2}\tsentence {i}\n" for i in range(20)))  # .txt: tab_lines, label first
    assert load_corpus(CorpusConfig(path=str(path))).labels == ["0", "1"]


def test_reversed_columns_are_named(tmp_path):
    path = tmp_path / "train.txt"
    path.write_text("".join(f"{'pos' if i % 2 else 'neg'}\tsentence number {i}\n" for i in range(30)))
    with pytest.raises(CorpusError, match=r"train\.txt: the label column 'label' looks like text \(30 distinct values "
                                          r"in 30 rows\).*columns reversed\?"):
        load_corpus(CorpusConfig(path=str(path), format="lines", columns=["text", "label"]))
    table = tmp_path / "train.csv"
    pd.DataFrame({"text": ["pos", "neg"] * 15, "label": [f"review {i}" for i in range(30)]}).to_csv(table, index=False)
    with pytest.raises(CorpusError, match=r"the label column 'label' looks like text \(30 distinct values in 30 rows\)"):
        load_corpus(CorpusConfig(path=str(table)))


# ------------------------------------------------------------------------- 3. JSON documents


def test_json_object_of_splits_with_records_and_pairs(tmp_path):
    records = [{"sentence": f"row {i}", "y": i % 3} for i in range(30)]
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps({"train": records[:20], "dev": records[20:25], "test": records[25:]}))
    corpus = load_corpus(CorpusConfig(path=str(path), text_column="sentence", label_column="y"))
    assert {s: len(d) for s, d in corpus.splits.items()} == {"train": 20, "validation": 5, "test": 5}
    assert corpus.frame("test")["text"].tolist() == [f"row {i}" for i in range(25, 30)]
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"train": [[r["y"], r["sentence"]] for r in records[:24]],
                                 "validation": [[r["y"], r["sentence"]] for r in records[24:]]}))
    corpus = load_corpus(CorpusConfig(path=str(pairs), columns=["label", "text"], test_size=3))
    assert {s: len(d) for s, d in corpus.splits.items()} == {"train": 21, "validation": 6, "test": 3}
    assert corpus.labels == ["0", "1", "2"] and ("row 29", "2") in all_rows(corpus)


def test_json_list_of_records_is_one_split(tmp_path):
    path = tmp_path / "train.json"
    path.write_text(json.dumps([{"text": f"row {i}", "label": ["a", "b"][i % 2]} for i in range(20)], indent=1))
    corpus = load_corpus(CorpusConfig(path=str(path), test_size=4, validation_size=2))
    assert {s: len(d) for s, d in corpus.splits.items()} == {"train": 14, "validation": 2, "test": 4}
    path.write_text(json.dumps([[f"row {i}", ["a", "b"][i % 2]] for i in range(20)]))  # pairs: [text, label]
    assert load_corpus(CorpusConfig(path=str(path))).labels == ["a", "b"]


@pytest.mark.parametrize("content,message", [
    ('{"text": "a", "label": 1}\n{"text": "b", "label": 2}\n', r"holds JSON Lines .* set `format: jsonl`"),
    ('{"text": "a", "label": 1}\n', r"keys \['text', 'label'\] are not splits .*set `format: jsonl`"),
    ("42", r"the JSON document is a number; it can be a list of records"),
    ('{"data": [], "meta": 1}', r"keys \['data', 'meta'\] are not splits \(train, validation or dev, test\); it can be"),
    ('{"train": {"text": "a"}}', r"the 'train' split holds a dict, not a list"),
    ('[["a", "x"], {"text": "b"}]', r"c\.json, row 2: expected a pair \['text', 'label'\]"),
    ('{"dev": [["a", "x"]], "validation": [["b", "y"]]}', r"'dev' and 'validation' are both the validation split"),
])
def test_json_layouts_it_cannot_read(tmp_path, content, message):
    path = tmp_path / "c.json"
    path.write_text(content)
    with pytest.raises(CorpusError, match=message):
        load_corpus(CorpusConfig(path=str(path)))


def test_json_lines_in_a_json_file_with_format_jsonl(tmp_path):
    path = tmp_path / "c.json"
    path.write_text("".join(json.dumps({"text": f"row {i}", "label": i % 2}) + "\n" for i in range(20)))
    assert load_corpus(CorpusConfig(path=str(path), format="jsonl")).labels == ["0", "1"]


# ------------------------------------------------------------------------- 4-6. join, drop_empty, label_names


def test_join_columns_skip_empty_parts(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame(NEWS, columns=["class", "title", "description"]).to_csv(path, index=False)
    corpus = load_corpus(CorpusConfig(path=str(path), join_columns=["title", "description"], label_column="class",
                                      label_names=NAMES))
    assert corpus.labels == ["Business", "Sci/Tech", "Sports", "World"]
    assert all_rows(corpus) == {(f"{t} {d}" if d else t, NAMES[k]) for k, t, d in NEWS}
    parquet = tmp_path / "train.parquet"
    pd.DataFrame(NEWS, columns=["class", "title", "description"]).to_parquet(parquet)
    corpus = load_corpus(CorpusConfig(path=str(parquet), join_columns=["title", "description"], join=" | ",
                                      label_column="class"))
    assert "World title 0 | world story number 0" in texts_by_label(corpus)["1"]
    with pytest.raises(ValidationError, match="not both"):
        CorpusConfig(path="x.csv", text_column="title", join_columns=["title", "description"])


def test_drop_empty_counts_what_it_drops_and_the_default_refuses(tmp_path):
    path = tmp_path / "train.csv"
    frame = pd.DataFrame({"text": [f"row {i}" if i % 7 else "" for i in range(30)], "label": ["a", "b", "c"] * 10})
    frame.to_csv(path, index=False)
    with pytest.raises(CorpusError, match=r"train\.csv, row 1: empty or missing text \(5 such row\(s\)\).*drop_empty: true"):
        load_corpus(CorpusConfig(path=str(path)))
    corpus = load_corpus(CorpusConfig(path=str(path), drop_empty=True, validation_size=3))
    assert corpus.dropped == {"empty_text": 5} and sum(len(d) for d in corpus.splits.values()) == 25
    frame.loc[[1, 2], "text"] = float("nan")
    corpus = load_corpus(frame=frame, path="frame", drop_empty=True, validation_size=3)
    assert corpus.dropped == {"empty_text": 7}


def test_label_names_map_every_file_and_refuse_unknown_values(tmp_path):
    folder = tmp_path / "news"
    folder.mkdir()
    pd.DataFrame(NEWS[:32], columns=["label", "title", "text"]).to_csv(folder / "train.csv", index=False)
    (folder / "test.jsonl").write_text("".join(json.dumps({"text": d or t, "label": float(k)}) + "\n"
                                               for k, t, d in NEWS[32:]))  # 1.0: the same label as 1
    cfg = CorpusConfig(path=str(folder), label_names={"1": "World", 2: "Sports", 3.0: "Business", 4: "Sci/Tech"},
                       drop_empty=True, validation_size=4)
    corpus = load_corpus(cfg)
    assert corpus.labels == ["Business", "Sci/Tech", "Sports", "World"]
    assert set(corpus.frame("test")["label"]) == set(NAMES.values())
    pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": list(range(1, 11)) * 2}).to_csv(
        folder / "train.csv", index=False)
    with pytest.raises(CorpusError, match=r"train\.csv, row 5: label value\(s\) \['10', '5', '6', '7', '8', \.\.\. "
                                          r"\(6 in all\)\] are not in label_names \(6 value\(s\) in 12 row\(s\)\)"):
        load_corpus(cfg)
    with pytest.raises(ValidationError, match="are one label"):
        CorpusConfig(path="x.csv", label_names={1: "a", "1.0": "b"})


def test_added_data_reads_label_names(tmp_path):
    from lowlm.data.incoming import read_rows

    added = tmp_path / "more.csv"
    added.write_text("text,label\nnew world story,1\nnew match report,Sports\n")  # a raw value, or already a name
    rows = read_rows(added, CorpusConfig(path=str(tmp_path), label_names=NAMES))
    assert rows.values.tolist() == [["new world story", "World"], ["new match report", "Sports"]]
    added.write_text("text,label\nan odd one,9\n")
    with pytest.raises(CorpusError, match=r"more\.csv, row 1: label value\(s\) \['9'\] are not in label_names"):
        read_rows(added, CorpusConfig(path=str(tmp_path), label_names=NAMES))


# ------------------------------------------------------------------------- 7. split sizes as counts


def test_split_sizes_as_counts(tmp_path):
    path = tmp_path / "train.csv"
    pd.DataFrame({"text": [f"row {i}" for i in range(40)], "label": ["a", "b"] * 20}).to_csv(path, index=False)
    corpus = load_corpus(CorpusConfig(path=str(path), test_size=6, validation_size=4.0))
    assert {s: len(d) for s, d in corpus.splits.items()} == {"train": 30, "validation": 4, "test": 6}
    assert "stratified 6," in corpus.sources["test"]
    with pytest.raises(ValidationError, match="a count a whole number"):
        CorpusConfig(path=str(path), test_size=2.5)
    with pytest.raises(CorpusError, match="cannot make a stratified test split of 40 rows"):
        load_corpus(CorpusConfig(path=str(path), test_size=50))


# ------------------------------------------------------------------------- messages stay short


def test_messages_show_a_few_values_and_the_count(tmp_path):
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    pd.DataFrame({"text": [f"row {i}" for i in range(400)], "label": [f"c{i % 200}" for i in range(400)]}).to_csv(
        train, index=False)
    pd.DataFrame({"text": [f"new {i}" for i in range(300)], "label": [f"n{i}" for i in range(300)]}).to_csv(
        test, index=False)
    with pytest.raises(CorpusError) as info:
        load_corpus(CorpusConfig(path=str(train), test_file=str(test)))
    message = str(info.value)
    assert "appears in the test split but never in train (300 such row(s)" in message
    assert "(300 in all)" in message and "(200 in all)" in message and len(message) < 600
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(f"c{i}" for i in range(500)) + "\n" + ",".join("x" * 500) + "\n")
    with pytest.raises(CorpusError, match=r"the file has 500 column\(s\) \['c0', .*\.\.\. \(500 in all\)\]$"):
        load_corpus(CorpusConfig(path=str(wide)))


def test_layout_settings_that_do_not_fit_are_config_errors():
    with pytest.raises(ValidationError, match=r"columns must be \[text, label\] or \[label, text\]"):
        CorpusConfig(path="x.txt", format="lines", columns=["text", "y"])
    with pytest.raises(ValidationError, match="sep is for format 'lines'"):
        CorpusConfig(path="x.csv", sep=";")
    with pytest.raises(ValidationError, match="join_columns is for files with columns"):
        CorpusConfig(path="x.txt", format="tab_lines", join_columns=["a"])
