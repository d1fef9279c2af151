"""Parallel corpora: aligned/TSV/JSONL reading, filtering counts, seeded splits, every error, real corpora."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from pydantic import ValidationError

from lowlm.config import PairCorpusConfig
from lowlm.data.corpus import CorpusError
from lowlm.data.pairs import (PairCorpusError, count_tokens, load_pairs, pairs_digest, pairs_fingerprint,
                              read_lines)

DE = [f"ein Hund läuft {i} mal" for i in range(40)]
EN = [f"a dog runs {i} times" for i in range(40)]


def write(path, lines, gz=False, encoding="utf-8"):
    data = "".join(line + "\n" for line in lines).encode(encoding)
    if gz:
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


def aligned(tmp_path, src=DE, tgt=EN, gz=False, **kw) -> PairCorpusConfig:
    suffix = ".gz" if gz else ""
    return PairCorpusConfig(format="aligned", source_path=write(tmp_path / f"train.de{suffix}", src, gz),
                            target_path=write(tmp_path / f"train.en{suffix}", tgt, gz), **kw)


def message(excinfo) -> str:
    return str(excinfo.value)


# ------------------------------------------------------------------------------------ the three layouts


def test_aligned_plain_and_gzip_give_the_same_pairs(tmp_path):
    plain = load_pairs(aligned(tmp_path, test_size=4, validation_size=4))
    gz = load_pairs(aligned(tmp_path, gz=True, test_size=4, validation_size=4))
    assert plain.digests == gz.digests
    assert {k: len(v) for k, v in plain.splits.items()} == {"train": 32, "validation": 4, "test": 4}
    truth = dict(zip(DE, EN))
    everything = [p for split in plain.splits.values() for p in split]
    assert sorted(everything) == sorted(truth.items())  # splits are disjoint and lose nothing
    # gzip is told by the bytes, not the name
    (tmp_path / "x.txt").write_bytes(gzip.compress("Hallo\n".encode()))
    (tmp_path / "y.txt").write_text("Hello\n")
    one = load_pairs(format="aligned", source_path=str(tmp_path / "x.txt"), target_path=str(tmp_path / "y.txt"),
                     validation_source=str(tmp_path / "x.txt"), validation_target=str(tmp_path / "y.txt"),
                     test_source=str(tmp_path / "x.txt"), test_target=str(tmp_path / "y.txt"))
    assert one.splits == {split: [("Hallo", "Hello")] for split in ("train", "validation", "test")}
    assert one.sources["test"].endswith("x.txt -> " + str(tmp_path / "y.txt"))


def test_line_breaks_inside_lines_never_shift_the_alignment(tmp_path):
    src = tmp_path / "s.txt"
    tgt = tmp_path / "t.txt"
    src.write_bytes("eins\r\nzwei\u2028halb\r\ndrei\n".encode())  # CRLF, and a Unicode line separator mid-line
    tgt.write_bytes(b"one\ntwo\rhalf\nthree")  # a stray CR mid-line, no final newline
    corpus = load_pairs(format="aligned", source_path=str(src), target_path=str(tgt), test_size=1, validation_size=1)
    pairs = sorted(p for split in corpus.splits.values() for p in split)
    assert pairs == [("drei", "three"), ("eins", "one"), ("zwei\u2028halb", "two\rhalf")]


def test_tsv_columns_and_char_targets(tmp_path):
    lines = ["Hi.\t嗨。\tCC-BY #1", "Run.\t你用跑的。\tCC-BY #2", "I see.\t我明白了。\tCC-BY #3",
             "Thank you very much.\t非常感谢你的帮助和你的时间。\tCC-BY #4"] * 5
    path = write(tmp_path / "cmn.txt", lines)
    corpus = load_pairs(format="tsv", path=path, target_unit="char", max_target_tokens=6, test_size=2,
                        validation_size=2, dedupe=False, group_by_source=False)
    assert corpus.filtered["train"] == {"empty": 0, "too_short": 0, "too_long": 5, "duplicate": 0}  # the 14-character target
    assert {len(v) for v in corpus.splits.values()} == {11, 2}
    assert ("Hi.", "嗨。") in corpus.splits["train"] + corpus.splits["test"] + corpus.splits["validation"]
    # fields by index, either way round
    flipped = load_pairs(format="tsv", path=path, source_field=1, target_field=0, source_unit="char",
                         test_size=2, validation_size=2, dedupe=False)
    assert all(t.endswith(".") for _, t in flipped.splits["train"])


def test_jsonl_fields(tmp_path):
    records = [{"id": i, "article": f"story number {i} " * 20, "title": f"headline {i}"} for i in range(12)]
    path = tmp_path / "news.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    corpus = load_pairs(format="jsonl", path=str(path), source_field="article", target_field="title",
                        test_size=0.25, validation_size=0.25)
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 6, "validation": 3, "test": 3}
    truth = {r["article"].strip(): r["title"] for r in records}
    assert all(truth[s] == t for split in corpus.splits.values() for s, t in split)
    assert "[article -> title]" in corpus.sources["train"]


# ------------------------------------------------------------------------------------------- filtering


def test_filter_counts_per_split_and_reason(tmp_path):
    src = ["gut", "", "ein sehr sehr langer Satz hier", "kurz", "  ", "ja", "danke", "bitte"]
    tgt = ["good", "empty source", "short", "", "blank", "a very very long sentence here", "thanks", "please"]
    val_src = write(tmp_path / "val.de", ["hallo welt", "", "x"])
    val_tgt = write(tmp_path / "val.en", ["hello world", "nothing", "x x x x x x x x"])
    cfg = aligned(tmp_path, src, tgt, max_source_tokens=4, max_target_tokens=4, validation_source=val_src,
                  validation_target=val_tgt, test_size=1)
    corpus = load_pairs(cfg)
    assert corpus.filtered["train"] == {"empty": 3, "too_short": 0, "too_long": 2, "duplicate": 0}
    assert corpus.filtered["validation"] == {"empty": 1, "too_short": 0, "too_long": 1, "duplicate": 0}
    assert corpus.filtered["test"] == {"empty": 0, "too_short": 0, "too_long": 0, "duplicate": 0}  # held out of train after filtering
    assert corpus.splits["validation"] == [("hallo welt", "hello world")]
    assert sorted(corpus.splits["train"] + corpus.splits["test"]) == [("bitte", "please"), ("danke", "thanks"),
                                                                      ("gut", "good")]


def test_min_tokens_and_blank_lines_in_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path / "p.tsv", ["one two\tuno dos", "one\tuno", "", "three four\t", "five six\tcinco seis",
                                     "seven eight\tsiete ocho"])
    corpus = load_pairs(format="tsv", path=tsv, min_tokens=2, test_size=1, validation_size=1)
    assert corpus.filtered["train"] == {"empty": 2, "too_short": 1, "too_long": 0, "duplicate": 0}
    assert sum(len(v) for v in corpus.splits.values()) == 3
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text('{"a": "x y", "b": "z"}\n\n{"a": null, "b": "z"}\n{"a": "  ", "b": "z"}\n'
                     '{"a": "p", "b": "q"}\n{"a": "r", "b": "s"}\n')
    corpus = load_pairs(format="jsonl", path=str(jsonl), source_field="a", target_field="b", test_size=1,
                        validation_size=1)
    assert corpus.filtered["train"]["empty"] == 3
    assert ("x y", "z") in [p for v in corpus.splits.values() for p in v]


def test_count_tokens():
    assert count_tokens(" a  b\tc ") == 3
    assert count_tokens("我 明白", "char") == 3
    assert count_tokens("", "char") == count_tokens("   ") == 0


# -------------------------------------------------------------------------------------------- splitting


def test_seeded_splits(tmp_path):
    cfg = aligned(tmp_path, test_size=7, validation_size=0.25)
    a, b = load_pairs(cfg), load_pairs(cfg)
    assert a.digests == b.digests and a.splits == b.splits
    assert len(a.splits["test"]) == 7 and len(a.splits["validation"]) == 10  # ceil(0.25 * 40)
    assert len(a.splits["train"]) == 23
    other = load_pairs(cfg, seed=14)
    assert other.digests["test"] != a.digests["test"]
    # held-out splits keep file order; train is shuffled (seeded)
    order = {p: i for i, p in enumerate(zip(DE, EN))}
    assert [order[p] for p in a.splits["test"]] == sorted(order[p] for p in a.splits["test"])
    assert [order[p] for p in a.splits["train"]] != sorted(order[p] for p in a.splits["train"])
    # the test set does not move when validation_size or max_pairs change
    assert load_pairs(cfg, validation_size=3).digests["test"] == a.digests["test"]
    small = load_pairs(cfg, max_pairs=5)
    assert small.digests["test"] == a.digests["test"] and small.digests["validation"] == a.digests["validation"]
    assert small.splits["train"] == a.splits["train"][:5] and "sample of 5" in small.sources["train"]
    # digests are of content and order
    assert a.digests["train"] == pairs_digest(a.splits["train"])
    assert pairs_digest([("a\tb", "c")]) != pairs_digest([("a", "b\tc")])


def test_frame_save_and_fingerprint(tmp_path):
    cfg = aligned(tmp_path, test_size=4, validation_size=4)
    corpus = load_pairs(cfg)
    frame = corpus.frame("test")
    assert list(frame.columns) == ["source", "target"] and len(frame) == 4
    assert corpus.side("test", "source") == frame["source"].tolist()
    paths = corpus.save(tmp_path / "out")
    assert set(paths) == {"train", "validation", "test"}
    back = pd.read_parquet(paths["train"])
    assert list(back.itertuples(index=False, name=None)) == corpus.splits["train"]
    before = pairs_fingerprint(cfg)
    write(tmp_path / "train.en", EN[:-1] + ["changed"])
    assert pairs_fingerprint(cfg) != before


# ----------------------------------------------------------------------------------------------- errors


def test_config_errors():
    with pytest.raises(ValidationError, match="needs target_path"):
        PairCorpusConfig(format="aligned", source_path="a")
    with pytest.raises(ValidationError, match="does not use path"):
        PairCorpusConfig(format="aligned", source_path="a", target_path="b", path="c")
    with pytest.raises(ValidationError, match="both validation_source and validation_target"):
        PairCorpusConfig(format="aligned", source_path="a", target_path="b", validation_source="c")
    with pytest.raises(ValidationError, match="source_field must be the key"):
        PairCorpusConfig(format="jsonl", path="x")
    with pytest.raises(ValidationError, match="column index"):
        PairCorpusConfig(format="tsv", path="x", target_field="title")
    with pytest.raises(ValidationError, match="a count a whole number"):
        PairCorpusConfig(format="tsv", path="x", test_size=2.5)
    with pytest.raises(ValidationError, match="unknown text encoding"):
        PairCorpusConfig(format="tsv", path="x", encoding="klingon")
    with pytest.raises(ValidationError, match="below min_tokens"):
        PairCorpusConfig(format="tsv", path="x", min_tokens=3, max_target_tokens=2)
    cfg = PairCorpusConfig(format="tsv", path="x", test_size=1000.0, validation_size=0.05)
    assert (cfg.test_size, cfg.validation_size, cfg.source_field, cfg.target_field) == (1000, 0.05, 0, 1)
    assert isinstance(cfg.test_size, int)


def test_missing_files(tmp_path):
    cfg = aligned(tmp_path)
    with pytest.raises(PairCorpusError, match="not found: .*nope.de"):
        load_pairs(cfg, source_path=str(tmp_path / "nope.de"))
    with pytest.raises(PairCorpusError, match="not found: .*test.en"):
        load_pairs(cfg, test_source=cfg.source_path, test_target=str(tmp_path / "test.en"))
    with pytest.raises(CorpusError, match="not found: .*none.tsv"):  # a CorpusError like every corpus error
        load_pairs(format="tsv", path=str(tmp_path / "none.tsv"))


def test_misaligned_files_name_both_and_their_counts(tmp_path):
    with pytest.raises(PairCorpusError) as excinfo:
        load_pairs(aligned(tmp_path, DE, EN[:-2]))
    text = message(excinfo)
    assert "train.de has 40 lines" in text and "train.en has 38" in text


def test_tsv_short_line_names_file_and_line(tmp_path):
    path = write(tmp_path / "p.tsv", ["a\tb\tc", "d\te\tf", "only one field", "g\th\ti"])
    with pytest.raises(PairCorpusError, match=r"p\.tsv, line 3: expected at least 2 .* got 1"):
        load_pairs(format="tsv", path=path)
    with pytest.raises(PairCorpusError, match=r"line 1: expected at least 4"):
        load_pairs(format="tsv", path=path, target_field=3)


@pytest.mark.parametrize("line,expected", [
    ("{not json", r"p\.jsonl, line 2: not valid JSON"),
    ('{"src": "x"}', r"p\.jsonl, line 2: no field 'tgt'; the record has fields \['src'\]"),
    ('{"src": "x", "tgt": 3}', r"p\.jsonl, line 2: field 'tgt' should be a string, got int"),
    ('["x", "y"]', r"p\.jsonl, line 2: expected a JSON object, got list"),
])
def test_jsonl_errors_name_file_line_and_field(tmp_path, line, expected):
    path = write(tmp_path / "p.jsonl", ['{"src": "a", "tgt": "b"}', line])
    with pytest.raises(PairCorpusError, match=expected):
        load_pairs(format="jsonl", path=path, source_field="src", target_field="tgt")


def test_empty_after_filtering_and_too_few_to_split(tmp_path):
    with pytest.raises(PairCorpusError, match=r"no train pairs left after filtering \(3 empty, 1 too_long\)"):
        load_pairs(aligned(tmp_path, ["", "a", "b c d", ""], ["x", "", "y", ""], max_source_tokens=2))
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(PairCorpusError, match="empty.tsv.*no train pairs.*the file is empty"):
        load_pairs(format="tsv", path=str(tmp_path / "empty.tsv"))
    with pytest.raises(PairCorpusError, match="40 pairs after filtering cannot give test 30, validation 10"):
        load_pairs(aligned(tmp_path, test_size=30, validation_size=10))


def test_bad_bytes_and_broken_gzip(tmp_path):
    src = tmp_path / "s.txt"
    src.write_bytes("eins\nzw\xe4i\ndrei\n".encode("latin-1"))
    tgt = write(tmp_path / "t.txt", ["one", "two", "three"])
    with pytest.raises(PairCorpusError, match=r"s\.txt, line 2: cannot decode byte b'\\xe4' \(0xE4\) at byte offset 7 as utf-8"):
        load_pairs(format="aligned", source_path=str(src), target_path=tgt)
    corpus = load_pairs(format="aligned", source_path=str(src), target_path=tgt, encoding="latin-1", test_size=1,
                        validation_size=1)
    assert ("zwäi", "two") in corpus.splits["train"] + corpus.splits["test"] + corpus.splits["validation"]
    broken = tmp_path / "b.gz"
    broken.write_bytes(gzip.compress("\n".join(DE).encode())[:-20])
    with pytest.raises(PairCorpusError, match="b.gz: could not read"):
        load_pairs(format="aligned", source_path=str(broken), target_path=tgt)


def test_utf16_files(tmp_path):
    src = write(tmp_path / "s16.txt", ["eins", "zwei", "drei"], encoding="utf-16")
    tgt = write(tmp_path / "t16.txt", ["one", "two", "three"], encoding="utf-16")
    corpus = load_pairs(format="aligned", source_path=src, target_path=tgt, encoding="utf-16", test_size=1,
                        validation_size=1)
    assert sorted(p for v in corpus.splits.values() for p in v) == [("drei", "three"), ("eins", "one"), ("zwei", "two")]


def test_duplicates_dropped_and_source_groups_held_out_whole(tmp_path):
    # 10 sources with 3 translations each, the first translation of each repeated once
    lines = [f"source {i}\ttarget {i}.{k}" for i in range(10) for k in range(3)] + [
        f"source {i}\ttarget {i}.0" for i in range(10)] + [f"single {i}\tone {i}" for i in range(20)]
    path = write(tmp_path / "pairs.tsv", lines)
    corpus = load_pairs(format="tsv", path=path, test_size=8, validation_size=5)
    assert corpus.filtered["train"]["duplicate"] == 10
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 37, "validation": 5, "test": 8}
    trained = {s for s, _ in corpus.splits["train"]}
    for split in ("test", "validation"):
        assert not any(s in trained for s, _ in corpus.splits[split])
        for s, _ in corpus.splits[split]:  # a held-out source comes with all its translations
            assert sum(x == s for x, _ in corpus.splits[split]) == (3 if s.startswith("source") else 1)
    # both switches off: the repeats stay and groups are cut
    loose = load_pairs(format="tsv", path=path, test_size=8, validation_size=5, dedupe=False, group_by_source=False)
    assert loose.filtered["train"]["duplicate"] == 0 and sum(len(v) for v in loose.splits.values()) == 60


# ---------------------------------------------------------------------------------------- real corpora


def test_multi30k_de_en(shared_data):
    m = shared_data / "multi30k"
    cfg = PairCorpusConfig(format="aligned", source_path=str(m / "train.de.gz"), target_path=str(m / "train.en.gz"),
                           validation_source=str(m / "val.de.gz"), validation_target=str(m / "val.en.gz"),
                           test_source=str(m / "test_2016_flickr.de.gz"), test_target=str(m / "test_2016_flickr.en.gz"))
    corpus = load_pairs(cfg)
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 28997, "validation": 1014, "test": 1000}
    assert corpus.filtered["train"] == {"empty": 0, "too_short": 0, "too_long": 0, "duplicate": 3}
    assert sum(corpus.filtered["test"].values()) == sum(corpus.filtered["validation"].values()) == 0
    assert corpus.splits["test"][0][0].startswith("Ein Mann mit einem orangefarbenen Hut")
    assert corpus.splits["test"][0][1].startswith("A man in an orange hat")
    assert corpus.digests == load_pairs(cfg).digests


def test_tatoeba_english_chinese_holds_out_1000(shared_data):
    corpus = load_pairs(format="tsv", path=str(shared_data / "tatoeba_cmn_eng" / "cmn.txt"), target_unit="char",
                        test_size=1000, validation_size=1000, max_target_tokens=30)
    assert len(corpus.splits["test"]) == 1000 and len(corpus.splits["validation"]) == 1000
    dropped = corpus.filtered["train"]
    assert sum(len(v) for v in corpus.splits.values()) + dropped["too_long"] + dropped["duplicate"] == 29155
    assert dropped["too_long"] > 0 and dropped["duplicate"] > 0
    # one English sentence often has several translations: none of the held-out sources is trained on
    trained = {s for s, _ in corpus.splits["train"]}
    assert not any(s in trained for split in ("test", "validation") for s, _ in corpus.splits[split])
    source, target = corpus.splits["test"][0]
    assert source.isascii() and not target.isascii() and "CC-BY" not in target
    assert all(count_tokens(t, "char") <= 30 for _, t in corpus.splits["train"])


def test_bbc_article_to_title(shared_data):
    corpus = load_pairs(format="jsonl", path=str(shared_data / "bbc_news_summary" / "bbc_news_summary.jsonl"),
                        source_field="article", target_field="title", test_size=200, validation_size=100,
                        max_pairs=500)
    assert {k: len(v) for k, v in corpus.splits.items()} == {"train": 500, "validation": 100, "test": 200}
    article, title = corpus.splits["train"][0]
    assert len(article.split()) > 5 * len(title.split())


# ------------------------------------------------------------------ issue 9: bytes, encodings, binary files


def test_bad_byte_gives_line_offset_and_byte(tmp_path):
    data = "".join(f"Zeile {i}\n" for i in range(5000)).encode() + "zw\xe4i\n".encode("latin-1")
    src = tmp_path / "s.txt"
    src.write_bytes(gzip.compress(data))
    tgt = write(tmp_path / "t.txt", ["x"] * 5001)
    offset = data.index(b"\xe4")
    with pytest.raises(PairCorpusError, match=rf"s\.txt, line 5001: cannot decode byte b'\\xe4' \(0xE4\) at byte offset "
                                              rf"{offset} \(uncompressed\) as utf-8.*`encoding: latin-1`"):
        load_pairs(format="aligned", source_path=str(src), target_path=tgt)


@pytest.mark.parametrize("fmt", ["aligned", "tsv", "jsonl"])
def test_binary_files_are_not_text(tmp_path, fmt):
    path = tmp_path / "p.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8)
    kw = {"aligned": {"source_path": str(path), "target_path": str(path)}, "tsv": {"path": str(path)},
          "jsonl": {"path": str(path), "source_field": "a", "target_field": "b"}}[fmt]
    with pytest.raises(PairCorpusError, match=r"p\.bin: not a text file \(a NUL byte at byte offset 7\)"):
        load_pairs(format=fmt, **kw)


def test_broken_deflate_stream_and_unknown_encoding(tmp_path):
    packed = bytearray(gzip.compress(("\n".join(DE) + "\n").encode() * 20))
    packed[12:40] = b"\xff" * 28  # the header is fine, the deflate data is not
    (tmp_path / "s.gz").write_bytes(bytes(packed))
    tgt = write(tmp_path / "t.txt", EN)
    with pytest.raises(PairCorpusError, match=r"s\.gz: could not read"):
        load_pairs(format="aligned", source_path=str(tmp_path / "s.gz"), target_path=tgt)
    with pytest.raises(PairCorpusError, match=r"t\.txt: unknown encoding 'klingon'"):  # the config refuses it too
        list(read_lines(tgt, "klingon"))


def test_utf16_bad_data_names_the_line(tmp_path):
    src = tmp_path / "s16.txt"
    src.write_bytes("eins\nzwei\n".encode("utf-16") + b"\x00\xd8d\x00\n\x00")  # an unpaired surrogate on line 3
    with pytest.raises(PairCorpusError, match=r"s16\.txt, line 3: cannot decode .* as utf-16"):
        load_pairs(format="aligned", source_path=str(src), target_path=str(src), encoding="utf-16")


def test_jsonl_lone_surrogate_escape_is_an_error(tmp_path):
    lines = [json.dumps({"src": f"a{i}", "tgt": f"b{i}"}) for i in range(6)]
    path = write(tmp_path / "p.jsonl", lines[:2] + ['{"src": "x\\ud800", "tgt": "y"}'] + lines[2:])
    with pytest.raises(PairCorpusError, match=r"p\.jsonl, line 3: field 'src' holds an unpaired surrogate"):
        load_pairs(format="jsonl", path=path, source_field="src", target_field="tgt", test_size=1, validation_size=1)


def test_byte_order_mark_is_not_text(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_bytes("\ufeff".encode() + "".join(json.dumps({"s": f"a{i}", "t": f"b{i}"}) + "\n" for i in range(6)).encode())
    corpus = load_pairs(format="jsonl", path=str(path), source_field="s", target_field="t", test_size=1,
                        validation_size=1)
    assert sorted(p for v in corpus.splits.values() for p in v)[0] == ("a0", "b0")
