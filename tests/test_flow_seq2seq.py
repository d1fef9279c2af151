"""The seq2seq flow end to end on the shipped English-German pairs: real Prefect, real MLflow."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.seq2seq import main, seq2seq
from lowlm.config import Seq2SeqPipelineConfig, load_pipeline_config
from tests.test_flow import stage_runs, task_states


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    return load_pipeline_config("translate-sample", {
        "work_dir": str(tmp_path_factory.mktemp("work")), "experiment": "s2s-test",
        "registry.model_name": "s2s-test", "train.epochs": 12, "train.progress": False,
    }, Seq2SeqPipelineConfig)


@pytest.fixture(scope="module")
def first_run(prefect_harness, config):
    state = seq2seq(config, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def test_stages_metrics_and_attention_maps_are_tracked(first_run, tracking_uri):
    client = MlflowClient(tracking_uri)
    stages = stage_runs(client, first_run["mlflow_run_id"])
    assert set(stages) == {"ingest", "tokenize", "augment", "train", "evaluate", "register"}
    assert all(r.info.status == "FINISHED" for r in stages.values())
    evaluate = stages["evaluate"].data.metrics
    assert evaluate["test_bleu"] > 20  # a 400-pair toy language: learnable, so far above zero
    assert {"test_chrf", "test_rouge1", "test_rouge2", "test_rougeL", "test_bleu_greedy"} <= set(evaluate)
    plots = {f.path for f in client.list_artifacts(stages["evaluate"].info.run_id, "plots")}
    assert "plots/attention_0.png" in plots
    assert stages["train"].data.metrics["target_tokens_per_second"] > 0
    inputs = {d.dataset.name for d in stages["ingest"].inputs.dataset_inputs}
    assert inputs == {"ingest-train", "ingest-validation", "ingest-test"}
    assert stages["ingest"].data.metrics["rows_test"] == 30


def test_registered_model_translates_raw_strings(first_run, tracking_uri):
    assert first_run["model"]["alias"] == "champion"
    mlflow.set_tracking_uri(tracking_uri)
    model = mlflow.pyfunc.load_model("models:/s2s-test@champion")
    out = model.predict(pd.DataFrame({"text": ["a dog runs in the park .", "the woman eats an apple ."]}),
                        params={"beam_size": 3})
    assert len(out) == 2 and all(isinstance(s, str) and s for s in out["generated"])
    assert all(s.endswith(".") for s in out["generated"])  # German output keeps the corpus's full stops


def test_rerun_is_cached_and_registers_nothing_new(first_run, config, tracking_uri):
    state = seq2seq(config, return_state=True)
    states = task_states(state.state_details.flow_run_id)
    assert states["register"] == states["summarize"] == "Completed"
    assert {k: v for k, v in states.items() if k not in ("register", "summarize")} == {
        "ingest-pairs": "Cached", "tokenize-pairs": "Cached", "augment-pairs": "Cached",
        "train-seq2seq": "Cached", "evaluate-seq2seq": "Cached"}
    assert state.result()["model"]["new"] is False
    assert len(MlflowClient(tracking_uri).search_model_versions("name = 's2s-test'")) == 1


def test_misaligned_files_fail_with_both_counts(prefect_harness, tmp_path, capsys):
    (tmp_path / "a.en").write_text("one .\ntwo .\nthree .\n")
    (tmp_path / "a.de").write_text("eins .\nzwei .\n")
    code = main(["translate-sample", "--set", "corpus.format=aligned", "--set", "corpus.path=null",
                 "--set", "corpus.source_field=null", "--set", "corpus.target_field=null",
                 "--set", f"corpus.source_path={tmp_path / 'a.en'}", "--set", f"corpus.target_path={tmp_path / 'a.de'}",
                 "--set", f"work_dir={tmp_path}", "--set", "registry.model_name=s2s-bad"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2, err  # bad input
    assert "a.en" in err and "a.de" in err and "3" in err and "2" in err


def test_retraining_a_seq2seq_model_on_new_pairs(prefect_harness, tmp_path, capsys):
    """New pairs join train, as labelled rows do: no champion -> train; new pairs -> retrain; none -> skip."""
    from flows.retrain import main as retrain_main

    incoming = tmp_path / "incoming"
    args = ["translate-sample", "--incoming", str(incoming), "--set", f"work_dir={tmp_path / 'work'}",
            "--set", "registry.model_name=s2s-retrain", "--set", "experiment=s2s-retrain",
            "--set", "train.epochs=2", "--set", "train.progress=false", "--set", "augment.enabled=false"]
    assert retrain_main(args) == 0
    assert "retrained: no champion of 's2s-retrain' yet" in capsys.readouterr().out
    incoming.mkdir(exist_ok=True)
    (incoming / "more.tsv").write_text("a red dog runs .\tein roter hund rennt .\n"
                                       "the small cat eats .\tdie kleine katze isst .\n")
    assert retrain_main(args) == 0
    out = capsys.readouterr().out
    assert "retrained: data changed since champion v1" in out and "2 new row(s) from 1 file(s)" in out, out
    assert retrain_main(args) == 0  # the same data again: the version trained on it decided already
    out = capsys.readouterr().out
    assert out.startswith("skipped: ") and ("already trained on this data" in out or "data unchanged" in out), out
    assert "0 new row(s)" in out


def test_the_decoding_is_chosen_on_validation_and_used_for_test_the_gate_and_serving(first_run, tracking_uri):
    from lowlm.evaluation.decoding import candidates

    client = MlflowClient(tracking_uri)
    evaluate = stage_runs(client, first_run["mlflow_run_id"])["evaluate"]
    params, metrics = evaluate.data.params, evaluate.data.metrics
    tried = {k: v for k, v in metrics.items() if k.startswith("val_bleu_")}
    assert len(tried) == len(candidates(5, [0.6, 1.0, 1.4]))  # greedy + the beam with 3 length penalties
    best = max(tried.values())
    chosen = ("greedy" if params["decode.chosen_beam_size"] == "1"
              else f"beam{params['decode.chosen_beam_size']}_lp{float(params['decode.chosen_length_penalty']):g}")
    assert tried[f"val_bleu_{chosen.replace('.', '_')}"] == best
    if chosen == "greedy":
        assert metrics["test_bleu"] == metrics["test_bleu_greedy"]
    version = client.get_model_version("s2s-test", first_run["model"]["version"])
    assert float(version.tags["test_bleu"]) == pytest.approx(metrics["test_bleu"], abs=1e-5)  # what the gate saw
    mlflow.set_tracking_uri(tracking_uri)
    served = mlflow.pyfunc.load_model("models:/s2s-test@champion").metadata.get_params_schema()
    defaults = {p.name: p.default for p in served.params}
    assert defaults["beam_size"] == int(params["decode.chosen_beam_size"])
    assert defaults["length_penalty"] == pytest.approx(float(params["decode.chosen_length_penalty"]))
