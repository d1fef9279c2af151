"""New data for retraining: checked on arrival, merged without duplicates, bad files set aside with the reason."""

from __future__ import annotations

import pandas as pd
import pytest

from lowlm.config import CorpusConfig
from lowlm.data.corpus import CorpusError, load_corpus
from lowlm.data.incoming import ACCEPTED, REJECTED, add_file, merge_incoming, pending


def write_csv(path, rows, encoding="utf-8"):
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(path, index=False, encoding=encoding)
    return path


@pytest.fixture()
def base(tmp_path):
    """train.csv + test.csv (validation carved from train), 2 labels."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    write_csv(folder / "train.csv", [(f"please refund order {i}", "refund") for i in range(10)] + [
        (f"my card {i} is broken", "card") for i in range(10)])
    write_csv(folder / "test.csv", [("refund test one", "refund"), ("card test one", "card")])
    return CorpusConfig(path=str(folder), validation_size=0.2)


def splits(cfg):
    corpus = load_corpus(cfg)
    return corpus, {name: corpus.frame(name) for name in corpus.splits}


def test_no_new_data_gives_the_base_corpus(base, tmp_path):
    merged = merge_incoming(base, tmp_path / "incoming", tmp_path / "out")
    assert merged.new_rows == 0 and merged.accepted == [] and merged.rejected == {}
    ours, theirs = load_corpus(merged.config), load_corpus(base)
    assert ours.content_digest() == theirs.content_digest() == merged.digest
    assert ours.digests["test"] == theirs.digests["test"] and ours.digests["validation"] == theirs.digests["validation"]
    assert merge_incoming(base, tmp_path / "incoming", tmp_path / "out").config == merged.config


def test_added_rows_join_train_once_and_the_held_out_splits_stay(base, tmp_path):
    incoming = tmp_path / "incoming"
    _, before = splits(base)
    in_train = before["train"]["text"].tolist()
    relabel = next(t for t in in_train if t.startswith("my card"))
    new = write_csv(tmp_path / "new.csv", [
        (in_train[0].upper().replace(" ", "   "), before["train"]["label"][0]),  # a train text, once normalised
        (relabel, "refund"),  # a train text with another label: the newer label wins
        ("Card test one", "card"),  # a test text: would leak
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
    assert merged.new_rows == 2 and merged.relabelled == 1
    assert merged.dropped == {"duplicate": 2, "in_validation_or_test": 1}
    corpus, after = splits(merged.config)
    assert corpus.digests["test"] == load_corpus(base).digests["test"]  # champion and challenger: same test rows
    assert after["validation"].equals(before["validation"])
    assert len(after["train"]) == len(before["train"]) + 2
    assert after["train"].loc[after["train"]["text"] == relabel, "label"].tolist() == ["refund"]
    # the accepted file stays part of the corpus: merging again changes nothing
    assert merge_incoming(base, incoming, tmp_path / "out").digest == merged.digest


def test_bad_files_are_refused_on_add_and_set_aside_on_merge(base, tmp_path):
    incoming = tmp_path / "incoming"
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine row,refund\n,card\n")
    with pytest.raises(CorpusError, match=r"bad.csv, row 2: empty or missing text"):
        add_file(bad, incoming, base)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("sentence,category\nhello,refund\n")
    with pytest.raises(CorpusError, match=r"wrong.csv.*text"):
        add_file(wrong, incoming, base)
    incoming.mkdir()
    # dropped straight into the folder: the unreadable one and the one with a label the corpus lacks
    # are set aside with the reason, the merge goes on
    (incoming / "dropped.csv").write_text("text,label\nfine row,refund\n,card\n")
    write_csv(incoming / "loan.csv", [("i want a loan", "loan")])
    write_csv(incoming / "good.CSV", [("a brand new refund question", "refund")])
    merged = merge_incoming(base, incoming, tmp_path / "out")
    assert merged.new_rows == 1 and [p.rsplit("-", 1)[-1] for p in merged.accepted] == ["good.CSV"]
    notes = [p.read_text() for p in (incoming / REJECTED).glob("*-dropped.csv.error.txt")]
    assert len(notes) == 1 and "dropped.csv, row 2: empty or missing text" in notes[0]
    assert len(merged.rejected) == 2
    loan_note = next(why for file, why in merged.rejected.items() if file.endswith("-loan.csv"))
    assert "label(s) ['loan'] are not among the corpus's labels ['card', 'refund']" in loan_note
    assert "--allow-new-labels" in loan_note
    assert load_corpus(merged.config).labels == ["card", "refund"]
    # a second file of the same name never replaces the first
    write_csv(incoming / "good.CSV", [("another refund question entirely", "refund")])
    again = merge_incoming(base, incoming, tmp_path / "out")
    assert again.new_rows == 1 and len(pending(incoming / ACCEPTED)) == 2


def test_new_labels_are_refused_unless_admitted_and_then_reach_every_split(base, tmp_path):
    incoming = tmp_path / "incoming"
    loans = write_csv(tmp_path / "loans.csv", [(f"can i get a loan for thing {i}", "loan") for i in range(10)])
    with pytest.raises(CorpusError, match=r"loans.csv: label\(s\) \['loan'\] are not among the corpus's labels"):
        add_file(loans, incoming, base)
    before = {name: set(frame["text"]) for name, frame in splits(base)[1].items()}
    add_file(loans, incoming, base, allow_new_labels=True)
    merged = merge_incoming(base, incoming, tmp_path / "out")
    assert merged.new_labels == ["loan"] and merged.rejected == {}
    corpus, after = splits(merged.config)
    assert corpus.labels == ["card", "refund", "loan"] or sorted(corpus.labels) == ["card", "loan", "refund"]
    for split in ("validation", "test"):  # the gate scores both models on rows of the new class too
        added = after[split][after[split]["label"] == "loan"]
        assert len(added) >= 1 and before[split] <= set(after[split]["text"])
    assert sum(len(f[f["label"] == "loan"]) for f in after.values()) == 10  # nothing lost, nothing twice
    # the merge is stable: merging again picks the same held-out rows
    assert merge_incoming(base, incoming, tmp_path / "out").digest == merged.digest
    # admitted by the corpus setting: the same, no marker needed
    tiny = write_csv(tmp_path / "tiny.csv", [("one lonely question", "other")])
    with pytest.raises(CorpusError, match=r"new label\(s\) \['other'\] have fewer than 3 rows"):
        add_file(tiny, incoming, base.model_copy(update={"allow_new_labels": True}))


def test_single_file_corpus_keeps_its_carved_test_split(tmp_path):
    (tmp_path / "corpus").mkdir()  # the incoming folder may not lie in the corpus's own folder
    path = write_csv(tmp_path / "corpus" / "all.csv", [(f"refund {i}", "refund") for i in range(20)] + [
        (f"card {i}", "card") for i in range(20)])
    cfg = CorpusConfig(path=str(path), test_size=0.2, validation_size=0.2)
    incoming = tmp_path / "in"
    incoming.mkdir()
    write_csv(incoming / "more.csv", [("refund twenty", "refund"), ("card twenty", "card")])
    merged = merge_incoming(cfg, incoming, tmp_path / "out")
    corpus, base = load_corpus(merged.config), load_corpus(cfg)
    assert merged.new_rows == 2
    assert corpus.digests["test"] == base.digests["test"] and corpus.digests["validation"] == base.digests["validation"]
    assert set(corpus.frame("train")["text"]) == set(base.frame("train")["text"]) | {"refund twenty", "card twenty"}


def test_trec_lines_take_a_utf8_csv_beside_them(shared_data, tmp_path):
    train = shared_data / "trec" / "train_5500.label"
    cfg = CorpusConfig(path=str(train), format="trec", encoding="latin-1", test_size=0.1, validation_size=0.1)
    incoming = tmp_path / "in"
    write_csv(tmp_path / "extra.csv", [("Who wrote the café guide ?", "HUM"), ("How far is the moon ?", "NUM")])
    add_file(tmp_path / "extra.csv", incoming, cfg)
    merged = merge_incoming(cfg, incoming, tmp_path / "out")
    assert merged.new_rows == 2
    corpus = load_corpus(merged.config)
    assert len(corpus.labels) == 6 and "Who wrote the café guide ?" in set(corpus.frame("train")["text"])


@pytest.mark.parametrize("where", ["the corpus folder", "inside it", "around it"])
def test_an_incoming_folder_overlapping_the_corpus_is_refused(base, tmp_path, where):
    corpus = tmp_path / "corpus"
    incoming = {"the corpus folder": corpus, "inside it": corpus / "incoming", "around it": tmp_path}[where]
    before = sorted(p.name for p in corpus.iterdir())
    with pytest.raises(CorpusError, match="overlaps .*holds the base corpus.*a folder of its own"):
        merge_incoming(base, incoming, tmp_path / "out")
    new = write_csv(tmp_path / "new.csv", [("refund my order please", "refund")])
    with pytest.raises(CorpusError, match="overlaps"):
        add_file(new, incoming, base)
    assert sorted(p.name for p in corpus.iterdir()) == before  # nothing of the corpus moved


def test_new_pairs_join_train_and_the_held_out_pairs_stay(tmp_path):
    from lowlm.config import PairCorpusConfig
    from lowlm.data.incoming_pairs import merge_incoming_pairs, pairs_content_digest
    from lowlm.data.pairs import load_pairs

    (tmp_path / "corpus").mkdir()
    corpus = tmp_path / "corpus" / "pairs.tsv"
    corpus.write_text("".join(f"source {i} .\tziel {i} .\n" for i in range(40)))
    cfg = PairCorpusConfig(format="tsv", path=str(corpus), test_size=5, validation_size=5)
    base = load_pairs(cfg)
    incoming = tmp_path / "incoming"
    nothing = merge_incoming_pairs(cfg, incoming, tmp_path / "out")
    assert nothing.new_rows == 0 and nothing.digest == pairs_content_digest(base.splits)
    incoming.mkdir(exist_ok=True)
    held_source = base.splits["test"][0][0]
    (incoming / "new.tsv").write_text(f"a new sentence .\tein neuer satz .\n{held_source}\tleak .\n"
                                      f"{base.splits['train'][0][0]}\t{base.splits['train'][0][1]}\n")
    (incoming / "bad.jsonl").write_text('{"source": "x"}\n')
    merged = merge_incoming_pairs(cfg, incoming, tmp_path / "out")
    assert merged.new_rows == 1 and merged.dropped == {"duplicate": 1, "source_in_validation_or_test": 1}
    assert len(merged.rejected) == 1 and "JSON Lines" in next(iter(merged.rejected.values()))
    again = load_pairs(merged.config)
    assert ("a new sentence .", "ein neuer satz .") in again.splits["train"]
    assert again.splits["test"] == base.splits["test"] and again.splits["validation"] == base.splits["validation"]
    assert merged.digest != nothing.digest == pairs_content_digest(base.splits)
    assert merge_incoming_pairs(cfg, incoming, tmp_path / "out").digest == merged.digest  # accepted stays merged
    with pytest.raises(CorpusError, match="overlaps"):
        merge_incoming_pairs(cfg, tmp_path / "corpus", tmp_path / "out")


def test_added_data_merges_into_a_headerless_corpus_with_label_names(tmp_path):
    """The merged corpus is written with a header and label names: the base's layout settings are not
    applied to it again (a headerless base used to reject every added file)."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "train.csv").write_text("".join(f"{1 + i % 2},question number {i}\n" for i in range(20)))
    cfg = CorpusConfig(path=str(folder / "train.csv"), header=False, text_column=1, label_column=0,
                       label_names={1: "world", 2: "sports"}, test_size=4, validation_size=4)
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "new.csv").write_text("2,a brand new sports question\n1,and one about the world\n")
    merged = merge_incoming(cfg, incoming, tmp_path / "out")
    assert merged.rejected == {} and merged.new_rows == 2
    corpus, frames = splits(merged.config)
    assert corpus.labels == ["sports", "world"]
    assert ("a brand new sports question", "sports") in set(zip(frames["train"]["text"], frames["train"]["label"]))
