"""New data for retraining: checked on arrival, merged without duplicates, bad files set aside with the reason."""

from __future__ import annotations

import pandas as pd
import pytest

from lowlm.config import CorpusConfig
from lowlm.corpus import CorpusError, load_corpus
from lowlm.incoming import ACCEPTED, REJECTED, add_file, merge_incoming, pending


def write_csv(path, rows):
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False)
    return path


@pytest.fixture()
def base(tmp_path):
    rows = [(f"please refund order {i}", "refund") for i in range(10)] + [
        (f"my card {i} is broken", "card") for i in range(10)]
    return CorpusConfig(path=str(write_csv(tmp_path / "base.csv", rows)), test_size=0.2, validation_size=0.2)


def test_no_new_data_gives_the_base_corpus_splits(base, tmp_path):
    merged = merge_incoming(base, tmp_path / "incoming", tmp_path / "out")
    assert merged.new_rows == 0 and merged.accepted == [] and merged.rejected == {}
    assert load_corpus(merged.config).digests == load_corpus(base).digests
    again = merge_incoming(base, tmp_path / "incoming", tmp_path / "out")
    assert again.digest == merged.digest and again.config == merged.config


def test_added_rows_are_merged_once_with_duplicates_dropped(base, tmp_path):
    incoming = tmp_path / "incoming"
    new = write_csv(tmp_path / "new.csv", [
        ("Please refund   ORDER 3", "refund"),  # the same text as a base row, once normalised
        ("my card 4 is broken", "refund"),  # a base text with another label: the newer label wins
        ("where is my refund for the shoes", "refund"),
        ("the chip on my card is cracked", "card"),
        ("the chip on my card is cracked", "card"),  # repeated inside the file
    ])
    copy = add_file(new, incoming, base)
    assert copy.parent == incoming and copy.name.endswith("-new.csv") and pending(incoming) == [copy]
    with pytest.raises(CorpusError, match="already added"):
        add_file(new, incoming, base)

    merged = merge_incoming(base, incoming, tmp_path / "out")
    assert pending(incoming) == [] and len(pending(incoming / ACCEPTED)) == 1
    assert merged.new_rows == 2
    assert merged.dropped == {"duplicate": 3, "in_validation_or_test": 0}
    assert merged.relabelled == 1
    rows = pd.read_csv(f"{merged.config.path}/train.csv")
    assert len(rows) == 22
    assert rows.loc[rows["text"] == "my card 4 is broken", "label"].tolist() == ["refund"]
    corpus = load_corpus(merged.config)
    assert sum(len(s) for s in corpus.splits.values()) == 22
    # the accepted file stays part of the corpus: merging again changes nothing
    assert merge_incoming(base, incoming, tmp_path / "out").digest == merged.digest


def test_a_bad_file_is_refused_on_add_and_set_aside_on_merge(base, tmp_path):
    incoming = tmp_path / "incoming"
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine row,refund\n,card\n")
    with pytest.raises(CorpusError, match=r"bad.csv, row 2: empty or missing text"):
        add_file(bad, incoming, base)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sentence,category\nhello,refund\n")
    with pytest.raises(CorpusError, match=r"wrong.csv.*text"):
        add_file(wrong, incoming, base)
    # dropped straight into the folder: the merge sets it aside with the reason and goes on
    incoming.mkdir()
    (incoming / "dropped.csv").write_text("text,label\nfine row,refund\n,card\n")
    good = write_csv(incoming / "good.csv", [("a brand new refund question", "refund")])
    merged = merge_incoming(base, incoming, tmp_path / "out")
    assert merged.new_rows == 1 and [p.rsplit("/", 1)[-1] for p in merged.accepted] == [good.name]
    assert list(merged.rejected) == [str(incoming / "dropped.csv")]
    note = (incoming / REJECTED / "dropped.csv.error.txt").read_text()
    assert "row 2: empty or missing text" in note and (incoming / REJECTED / "dropped.csv").exists()


def test_held_out_files_stay_and_leaking_rows_are_dropped(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_csv(folder / "train.csv", [(f"refund {i}", "refund") for i in range(6)] + [
        (f"card {i}", "card") for i in range(6)])
    write_csv(folder / "test.csv", [("refund test one", "refund"), ("card test one", "card")])
    cfg = CorpusConfig(path=str(folder), validation_size=0.25)
    incoming = tmp_path / "in"
    incoming.mkdir()
    write_csv(incoming / "more.csv", [("Card test one", "card"), ("refund seven", "refund")])
    merged = merge_incoming(cfg, incoming, tmp_path / "out")
    assert merged.dropped["in_validation_or_test"] == 1 and merged.new_rows == 1
    corpus, before = load_corpus(merged.config), load_corpus(cfg)
    assert corpus.digests["test"] == before.digests["test"]  # the champion and challenger share the test split
    assert len(corpus.splits["train"]) + len(corpus.splits["validation"]) == 13


def test_trec_lines_take_a_csv_beside_them(shared_data, tmp_path):
    trec = shared_data / "trec"
    files = sorted(p.name for p in trec.iterdir())
    train = next(trec / f for f in files if f.startswith("train"))
    cfg = CorpusConfig(path=str(train), format="trec", encoding="latin-1", test_size=0.1, validation_size=0.1)
    incoming = tmp_path / "in"
    write_csv(tmp_path / "extra.csv", [("Who wrote the lowlm guide ?", "HUM"), ("How far is the moon ?", "NUM")])
    add_file(tmp_path / "extra.csv", incoming, cfg)
    merged = merge_incoming(cfg, incoming, tmp_path / "out")
    assert merged.new_rows == 2
    assert len(load_corpus(merged.config).labels) == 6
