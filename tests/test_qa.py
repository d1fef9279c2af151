"""Extractive QA: the SQuAD metric, ingestion and its bad input, answer spans, the reader, its pyfunc and the
pipeline through real Prefect runs and a real MLflow store."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from flows.qa import qa
from lowlm.config import QAPipelineConfig, load_pipeline_config
from lowlm.config.data import QACorpusConfig
from lowlm.data.squad import load_qa
from lowlm.data.textfiles import CorpusError
from lowlm.evaluation.squad import exact_match, f1, normalize_answer, squad_scores
from lowlm.inference.reader import QAReader
from lowlm.models.reader import best_spans
from lowlm.serving.pyfunc import InputError, log_pyfunc
from lowlm.text.qa import QAEncoder
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.reading import train_reader
from tasks.qa import _texts
from tasks.register import load_registered
from tests.prefect_states import task_states
from tests.test_flow import stage_runs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data/qa/sample.json"


# ------------------------------------------------------------------------------------------ the metric

def test_the_squad_metric_on_worked_examples():
    # the official script's normalisation: case, punctuation, articles, whitespace
    assert normalize_answer("  The Eiffel  Tower, Paris! ") == "eiffel tower paris"
    assert normalize_answer("an apple a day") == "apple day"
    assert exact_match("the Broncos.", ["Denver Broncos", "broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    # F1 over normalised tokens: precision 1/1, recall 1/2 -> 2/3; the best gold answer counts
    assert f1("Denver", ["Denver Broncos"]) == pytest.approx(2 / 3)
    assert f1("Denver Broncos team", ["the Denver Broncos", "Carolina"]) == pytest.approx(0.8)
    assert f1("Carolina", ["Denver Broncos"]) == 0.0
    assert f1("", ["Denver"]) == 0.0
    scores = squad_scores(["Denver Broncos", "Santa Clara, California", "1960s"],
                          [["Denver Broncos"], ["Santa Clara"], ["1966", "the 1960s"]])
    assert scores["exact_match"] == pytest.approx(200 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 1) / 3)
    with pytest.raises(ValueError, match="2 predictions for 1 questions"):
        squad_scores(["a", "b"], [["a"]])


# ------------------------------------------------------------------------------------------- ingestion

def _squad(articles) -> dict:
    return {"version": "1.1", "data": articles}


def _write(tmp_path, doc, name="qa.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def test_real_squad_splits_by_article_and_every_answer_maps_to_its_text(shared_data):
    config = load_pipeline_config("squad").corpus.model_copy(update={"path": str(
        shared_data / "squad_v1.1/dev-v1.1.reconstructed.json")})
    data = load_qa(config)
    assert {s: len(f) for s, f in data.splits.items()} == {"train": 7628, "validation": 954, "test": 1988}
    assert data.articles["validation"] == [35, 36, 37, 38] and data.articles["test"] == list(range(39, 49))
    contexts = {s: set(f["context"]) for s, f in data.splits.items()}
    assert not (contexts["train"] & contexts["test"]) and not (contexts["train"] & contexts["validation"])
    # character offsets -> token span -> characters again: the gold text, once normalised
    sample = data.splits["train"].sample(600, random_state=0)
    tok = Tokenizer.train(_texts(data.splits["train"]))
    encoder = QAEncoder(tok, window=400, stride=128)
    encoded = encoder.encode_many(sample["context"].tolist(), sample["question"].tolist(),
                                  [list(zip(a, s)) for a, s in zip(sample["answers"], sample["starts"])])
    same = 0
    for e, context, answer in zip(encoded, sample["context"], sample["answers"]):
        assert e.span is not None and e.span[0] <= e.span[1]
        read = context[e.offsets[e.span[0]][0]:e.offsets[e.span[1]][1]]
        assert answer[0] in read  # the span covers the answer
        same += normalize_answer(read) == normalize_answer(answer[0])
    assert same / len(sample) > 0.97  # the rest start or end inside a token ("1960s" for "1960")
    assert sum(e.problems["inexact"] for e in encoded) == len(sample) - same


def test_bad_answers_empty_contexts_and_unanswered_questions_are_counted_and_skipped(tmp_path):
    context = "Denver beat Carolina in Santa Clara."
    doc = _squad([
        {"title": "ok", "paragraphs": [{"context": context, "qas": [
            {"id": "good", "question": "Who won?", "answers": [{"text": "Denver", "answer_start": 0}]},
            {"id": "shifted", "question": "Where?", "answers": [{"text": "Santa Clara", "answer_start": 3}]},
            {"id": "none", "question": "Why?", "answers": []},
            {"id": "blank", "question": "  ", "answers": [{"text": "Denver", "answer_start": 0}]},
            {"id": "good", "question": "Again?", "answers": [{"text": "Denver", "answer_start": 0}]},
        ]}, {"context": "   ", "qas": [{"id": "lost", "question": "What?", "answers": []}]}]},
        {"title": "two", "paragraphs": [{"context": context, "qas": [
            {"id": "two", "question": "Who lost?", "answers": [{"text": "Carolina", "answer_start": 12}]}]}]},
        {"title": "three", "paragraphs": [{"context": context, "qas": [
            {"id": "three", "question": "Where was it?", "answers": [{"text": "Santa Clara", "answer_start": 24},
                                                                     {"text": "Clara", "answer_start": 99}]}]}]},
    ])
    path = _write(tmp_path, doc)
    data = load_qa(QACorpusConfig(path=str(path), train_articles=(1, 1), validation_articles=(2, 2),
                                  test_articles=(3, 3)))
    assert data.splits["train"]["id"].tolist() == ["good"]
    assert data.splits["test"]["answers"].tolist() == [["Santa Clara"]]  # the offset that is wrong is dropped
    assert dict(data.skipped) == {"offset_mismatch": 2, "no_answers": 2, "empty_question": 1, "duplicate_id": 1,
                                  "empty_context": 1, "questions_of_empty_contexts": 1}


@pytest.mark.parametrize("doc, message", [
    ({"articles": []}, "expected SQuAD's layout, an object whose 'data' is a list of articles"),
    (_squad([{"title": "T", "paragraphs": [{"qas": []}]}]), "article 1 ('T'), paragraph 1: 'context' must be str"),
    (_squad([{"title": "T", "paragraphs": [{"context": "x y", "qas": [
        {"id": "q7", "question": "x?", "answers": [{"text": "x"}]}]}]}]),
     "article 1 ('T'), paragraph 1, question 'q7': answer 'x' needs an integer 'answer_start', got None"),
])
def test_a_file_not_in_squad_layout_is_an_error_naming_where(tmp_path, doc, message):
    path = _write(tmp_path, doc)
    with pytest.raises(CorpusError) as err:
        load_qa(QACorpusConfig(path=str(path)))
    assert message in str(err.value) and str(path) in str(err.value)


def test_overlapping_article_ranges_are_a_config_error():
    with pytest.raises(ValueError, match="article ranges overlap"):
        QACorpusConfig(path="x", train_articles=(1, 10), validation_articles=(10, 12), test_articles=(13, 14))
    with pytest.raises(ValueError, match="or none"):
        QACorpusConfig(path="x", train_articles=(1, 10))


# ----------------------------------------------------------------------------------------------- spans

def test_span_decoding_never_ends_before_it_starts_or_runs_long():
    generator = torch.Generator().manual_seed(0)
    for width, limit in [(1, 3), (7, 1), (30, 4), (50, 15)]:
        start, end = torch.randn(64, width, generator=generator), torch.randn(64, width, generator=generator)
        i, j, score, probability = best_spans(start, end, limit)
        assert bool((i <= j).all()) and bool((j - i < limit).all()) and bool((j < width).all())
        # the best of all legal pairs, found by brute force
        for row in range(64):
            legal = [(start[row, a] + end[row, b]).item() for a in range(width) for b in range(a, min(width, a + limit))]
            assert score[row].item() == pytest.approx(max(legal))
        assert bool(((probability > 0) & (probability <= 1)).all())


def test_long_contexts_are_read_in_windows_that_cover_every_token():
    tok = Tokenizer.train([" ".join(f"w{i}" for i in range(50))])
    encoder = QAEncoder(tok, window=16, stride=6)
    context = " ".join(f"w{i}" for i in range(50))
    e = encoder.encode(context, "w47 ?", answers=[("w47", context.index("w47"))])
    covered = set()
    for w in e.windows:
        assert len(w.ids) <= 16
        covered |= set(range(w.first, w.first + len(w.ids)))
    assert covered == set(range(50)) and e.problems["windowed"] == 1
    assert [w.start for w in e.windows if w.start >= 0] and e.windows[-1].start == 47 - e.windows[-1].first
    # the exact-match features mark the question's word
    assert e.windows[-1].features[47 - e.windows[-1].first][:2] == [1.0, 1.0]


# ---------------------------------------------------------------------------------------------- reader

@pytest.fixture(scope="module")
def sample_reader():
    config = load_pipeline_config("qa-sample", {"train.progress": False, "train.epochs": 5})
    data = load_qa(config.corpus)
    tok = Tokenizer.train(_texts(data.splits["train"]))
    reader, result, counts = train_reader(config.model, tok, data.splits["train"], data.splits["validation"],
                                          config.train)
    return config, data, reader, result


def test_a_small_synthetic_qa_set_is_learned_to_high_exact_match_in_seconds(sample_reader):
    config, data, reader, result = sample_reader
    assert result.history[0]["val_exact_match"] < 80 < result.history[-1]["val_exact_match"]
    test = data.splits["test"]
    answers = reader.answer(test["context"].tolist(), test["question"].tolist())
    assert squad_scores([a["answer"] for a in answers], test["answers"].tolist())["exact_match"] > 85
    for a, context in zip(answers, test["context"]):
        assert context[a["start"]:a["end"]] == a["answer"] and 0 < a["score"] <= 1


def test_the_same_config_trains_the_same_reader(sample_reader):
    config, data, reader, _ = sample_reader
    tok = Tokenizer.train(_texts(data.splits["train"]))
    again, _, _ = train_reader(config.model, tok, data.splits["train"], data.splits["validation"],
                               config.train.model_copy(update={"epochs": 1}))
    once, _, _ = train_reader(config.model, tok, data.splits["train"], data.splits["validation"],
                              config.train.model_copy(update={"epochs": 1}))
    assert once.digest() == again.digest()


def test_the_pyfunc_answers_raw_strings_and_refuses_a_missing_column(sample_reader, tmp_path, tracking_uri):
    _, data, reader, _ = sample_reader
    folder = reader.save(tmp_path / "reader")
    assert QAReader.load(folder).digest() == reader.digest()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("qa-pyfunc")
    test = data.splits["test"].head(4)
    with mlflow.start_run():
        info = log_pyfunc(str(folder), input_example=test[["context", "question"]].head(2).to_dict("records"))
    model = mlflow.pyfunc.load_model(info.model_uri)
    out = model.predict(pd.DataFrame({"context": test["context"], "question": test["question"], "id": test["id"]}))
    assert list(out.columns) == ["answer", "start", "end", "score"]
    assert out["answer"].tolist() == [a["answer"] for a in reader.answer(test["context"], test["question"])]
    short = model.predict(test[["context", "question"]], params={"max_answer_tokens": 1})
    assert all(len(a.split()) == 1 for a in short["answer"])
    from lowlm.serving.pyfunc import load

    records = load(info.model_uri).predict([{"context": "Anna Lind was born in Kelso in 1950.",
                                             "question": "Where was Anna Lind born?"}])
    assert records["answer"][0] in "Anna Lind was born in Kelso in 1950."
    python_model = model.unwrap_python_model()
    with pytest.raises(InputError, match="no 'question'"):
        python_model.predict(None, pd.DataFrame({"context": ["x"]}))
    with pytest.raises(InputError, match="question, input 1: expected a string"):
        python_model.predict(None, [{"context": "a", "question": "b"}, {"context": "a", "question": None}])
    assert python_model.predict(None, [{"context": "", "question": "what?"}])["answer"][0] == ""


# ------------------------------------------------------------------------------------------- the flow

@pytest.fixture(scope="module")
def qa_run(prefect_harness, tmp_path_factory, tracking_uri):
    incoming = tmp_path_factory.mktemp("qa-data")
    shutil.copy(SAMPLE, incoming / "1-village.json")
    config = load_pipeline_config("qa-sample", {
        "work_dir": str(tmp_path_factory.mktemp("qa-work")), "experiment": "flow-qa",
        "registry.model_name": "flow-qa", "train.progress": False, "train.epochs": 3,
        "corpus.path": str(incoming)})
    state = qa(config, return_state=True)
    assert state.is_completed(), state.message
    return config, state, incoming


STAGES = {"ingest-qa", "tokenize-qa", "train-qa", "evaluate-qa", "register", "summarize"}


def test_the_qa_pipeline_tracks_every_stage_and_registers_a_reader(qa_run, tracking_uri):
    config, state, _ = qa_run
    result = state.result()
    assert task_states(state.state_details.flow_run_id, expect=STAGES) == dict.fromkeys(STAGES, "Completed")
    client = MlflowClient(tracking_uri)
    stages = stage_runs(client, result["mlflow_run_id"])
    assert set(stages) == {"ingest", "tokenize", "train", "evaluate", "register"}
    expected = load_qa(config.corpus)
    assert {s: stages["ingest"].data.metrics[f"questions_{s}"] for s in expected.splits} == {
        s: len(f) for s, f in expected.splits.items()}
    history = client.get_metric_history(stages["train"].info.run_id, "val_f1")
    assert len(history) == 3 and history[-1].value > history[0].value
    evaluate = stages["evaluate"].data.metrics
    assert evaluate["test_f1"] > evaluate["test_baseline_f1"]  # the reader beats the lexical baseline
    table = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=stages["evaluate"].info.run_id, artifact_path="predictions.json", tracking_uri=tracking_uri)).read_text())
    assert len(table["data"]) == len(expected.splits["test"]) and {"question", "gold", "predicted", "f1"} <= set(table["columns"])
    assert result["model"]["alias"] == "champion"
    version = client.get_model_version("flow-qa", result["model"]["version"])
    assert float(version.tags["test_f1"]) == pytest.approx(evaluate["test_f1"], abs=1e-4)
    assert "lexical sliding-window baseline" in version.description
    model = load_registered("models:/flow-qa@champion", tracking_uri=tracking_uri)
    test = pd.read_parquet(next(Path(config.work_dir).glob("ingest-qa/*/test.parquet")))
    answers = model.predict(test[["context", "question"]])
    assert squad_scores(answers["answer"].tolist(), test["answers"].tolist())["f1"] == pytest.approx(
        evaluate["test_f1"])


def test_predict_on_the_command_line_takes_a_context_and_questions(qa_run, tracking_uri):
    context = "Greta Dorn was born in Pinehurst in 1918. Greta Dorn works as a baker in Fallow."
    out = subprocess.run([sys.executable, "-m", "flows.cli", "predict", "models:/flow-qa@champion", "--context", context,
                          "--question", "Where was Greta Dorn born?", "--question", "Where does Greta Dorn work?",
                          "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["question"] for r in rows] == ["Where was Greta Dorn born?", "Where does Greta Dorn work?"]
    assert all(context[r["start"]:r["end"]] == r["answer"] for r in rows)
    bad = subprocess.run([sys.executable, "-m", "flows.cli", "predict", "models:/flow-qa@champion", "--context", context],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode == 2 and "needs both --context and at least one --question" in bad.stderr


def test_new_qa_data_is_ingested_and_retrained_and_an_unchanged_rerun_is_cached(qa_run, tracking_uri):
    config, first, incoming = qa_run
    again = qa(config, return_state=True)
    cached = {"ingest-qa", "tokenize-qa", "train-qa", "evaluate-qa"}
    states = task_states(again.state_details.flow_run_id, expect=cached | {"register", "summarize"})
    assert {k: states[k] for k in cached} == dict.fromkeys(cached, "Cached")
    assert again.result()["model"]["new"] is False
    before = load_qa(config.corpus)
    # a new file of questions in the corpus folder: articles 13-14, in the open-ended train range
    extra = json.loads(SAMPLE.read_text())["data"][4:6]
    for article in extra:
        article["title"] += "_new"
        for p in article["paragraphs"]:
            for q in p["qas"]:
                q["id"] += "-new"
    (incoming / "2-more.json").write_text(json.dumps({"version": "1.1", "data": extra}))
    state = qa(config, return_state=True)
    assert state.is_completed(), state.message
    states = task_states(state.state_details.flow_run_id, expect=cached | {"register", "summarize"})
    assert {k: states[k] for k in cached} == dict.fromkeys(cached, "Completed")
    result = state.result()
    assert result["model"]["new"] and result["model"]["version"] == "2"
    metrics = stage_runs(MlflowClient(tracking_uri), result["mlflow_run_id"])["ingest"].data.metrics
    added = sum(len(p["qas"]) for a in extra for p in a["paragraphs"])
    assert metrics["questions_train"] == len(before.splits["train"]) + added
    assert metrics["questions_test"] == len(before.splits["test"])  # the test articles stay as they were
    assert metrics["articles_train"] == 10


def test_a_char_tokenizer_is_refused_for_a_reader():
    with pytest.raises(ValueError, match="a reader's features and spans are per word"):
        QAPipelineConfig(corpus={"path": "x"}, tokenizer={"kind": "char"})


def test_the_served_reader_answers_json_records_and_refuses_a_bad_one(qa_run, tracking_uri, tmp_path):
    from flows.servers import free_port, start_model_server
    from tests.test_rest import post

    server = start_model_server("models:/flow-qa@champion", free_port(), tmp_path / "logs", tracking_uri)
    try:
        server.wait(180)
        record = {"context": "Greta Dorn was born in Pinehurst in 1918.", "question": "Where was Greta Dorn born?"}
        status, body = post(server, {"dataframe_records": [record, record]})
        assert status == 200, body
        rows = body["predictions"]
        assert len(rows) == 2 and rows[0]["answer"] == rows[1]["answer"]
        assert rows[0]["score"] == pytest.approx(rows[1]["score"], abs=1e-5)
        assert record["context"][rows[0]["start"]:rows[0]["end"]] == rows[0]["answer"]
        status, body = post(server, {"inputs": [record]})
        assert status == 200 and body["predictions"][0]["answer"] == rows[0]["answer"]
        status, body = post(server, {"inputs": [{"context": "x", "question": None}]})
        assert status == 400 and "inputs[0].question: expected a string, got null" in body["message"]
        status, body = post(server, {"dataframe_records": [{"context": "x"}]})
        assert status == 400 and "question" in body["message"]
    finally:
        server.stop()
