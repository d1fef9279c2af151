"""The seq2seq flow end to end on the shipped English-German pairs: real Prefect, real MLflow."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from flows.seq2seq import main, seq2seq
from lowlm.config import Seq2SeqPipelineConfig, load_pipeline_config
from tests.prefect_states import task_states
from tests.test_flow import stage_runs


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
    # source noise on the 30 test sources: words really changed, and the BLEU drop is clean minus noisy
    for kind in ("char", "word"):
        assert 0 < evaluate[f"test_noise_words_changed_{kind}"] <= 0.2
        assert evaluate[f"test_bleu_drop_{kind}"] == pytest.approx(
            evaluate["test_bleu_noise_clean"] - evaluate[f"test_bleu_noise_{kind}"])
    assert evaluate["test_bleu_noise_clean"] == pytest.approx(evaluate["test_bleu_greedy"])  # same sources, greedy
    assert evaluate["test_bleu_drop_char"] > 0  # a typo in a fifth of the words costs BLEU
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
    cached = {"ingest-pairs", "tokenize-pairs", "augment-shard", "augment-pairs", "train-seq2seq", "evaluate-seq2seq"}
    states = task_states(state.state_details.flow_run_id, expect=cached | {"register", "summarize"})
    assert states["register"] == states["summarize"] == "Completed"
    assert {k: v for k, v in states.items() if k not in ("register", "summarize")} == dict.fromkeys(cached, "Cached")
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


# -- back-translation: a reverse model registered by one pipeline, used by another ----------------------

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def reverse_model(prefect_harness, tmp_path_factory):
    """translate-sample-reverse (German -> English) registered as 'bt-reverse'; a second, different version too."""
    work = tmp_path_factory.mktemp("reverse")
    versions = []
    for seed in (1, 2):
        config = load_pipeline_config("translate-sample-reverse", {
            "work_dir": str(work), "experiment": "bt-reverse", "registry.model_name": "bt-reverse",
            "train.epochs": 4, "train.seed": seed, "train.progress": False, "model.hidden_dim": 64,
            "decode.select": False}, Seq2SeqPipelineConfig)
        state = seq2seq(config, return_state=True)
        assert state.is_completed(), state.message
        versions.append(state.result()["model"]["version"])
    assert versions[0] != versions[1]
    return versions


@pytest.fixture(scope="module")
def bt_files(tmp_path_factory):
    """The shipped pairs split: 320 as the corpus, the German of the other 80 as monolingual text."""
    folder = tmp_path_factory.mktemp("bt-data")
    lines = (ROOT / "data/parallel/en_de.tsv").read_text().splitlines()
    (folder / "pairs.tsv").write_text("\n".join(lines[:320]) + "\n")
    (folder / "de.txt").write_text("\n".join(line.split("\t")[1] for line in lines[320:]) + "\n")
    return folder


def bt_config(bt_files, work, reverse_uri, **more):
    return load_pipeline_config("translate-sample", {
        "corpus.path": str(bt_files / "pairs.tsv"), "work_dir": str(work), "experiment": "bt-test",
        "registry.model_name": "bt-test", "train.epochs": 2, "train.progress": False, "decode.select": False,
        "augment.backtranslation": {"monolingual": {"path": str(bt_files / "de.txt")}, "reverse": {"uri": reverse_uri},
                                    "generation": {"method": "beam", "beam_size": 3, "max_length": 20}, "tag": True},
        "augment.shard_rows": 40, **more}, Seq2SeqPipelineConfig)


def test_back_translated_pairs_are_tagged_tracked_and_cached_on_the_reverse_models_digest(
        reverse_model, bt_files, tmp_path, tracking_uri):
    client = MlflowClient(tracking_uri)
    work = tmp_path / "work"
    config = bt_config(bt_files, work, "models:/bt-reverse@champion")
    state = seq2seq(config, return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    augment = stage_runs(client, result["mlflow_run_id"])["augment"]
    metrics, tags = augment.data.metrics, augment.data.tags
    champion = client.get_model_version_by_alias("bt-reverse", "champion")
    assert tags["translator.backtranslation.0"] == f"models:/bt-reverse/{champion.version} (models:/bt-reverse@champion)"
    assert tags["translator.backtranslation.0.digest"] == champion.tags["weights_digest"]
    assert metrics["monolingual_rows"] == 80 and metrics["rows_backtranslation"] > 40
    assert metrics["rows_train"] == metrics["rows_original"] + metrics["rows_keyboard"] + metrics["rows_backtranslation"] \
        - metrics["dropped_repeat_pair"]
    assert {d.dataset.name for d in augment.inputs.dataset_inputs} == {"augment-train"}
    sample = client.list_artifacts(augment.info.run_id)
    assert "augmented_sample.json" in {a.path for a in sample}

    # the synthetic rows, and only they, carry the tag; their targets are the monolingual German
    train = pd.read_parquet(next((work / "augment-pairs").glob("*/train.parquet")))
    mono = set((bt_files / "de.txt").read_text().splitlines())
    tagged = train[train["source"].str.startswith("[BT] ")]
    assert len(tagged) == metrics["rows_backtranslation"]
    assert set(tagged["target"]) <= mono
    assert not train[~train["source"].str.startswith("[BT] ")]["target"].isin(mono).any()
    from lowlm.text.tokenizer import Tokenizer

    source_vocab = Tokenizer.load(next((work / "tokenize-pairs").glob("*/source_tokenizer.json")))
    assert source_vocab.encode("[BT] ein hund")[0] == source_vocab.tokens().index("[BT]")  # one reserved token

    again = seq2seq(config, return_state=True)  # unchanged: every augment step is a cache hit
    steps = {"augment-shard", "augment-pairs", "ingest-monolingual"}
    states = task_states(again.state_details.flow_run_id, expect=steps)
    assert states["augment-shard"] == states["augment-pairs"] == states["ingest-monolingual"] == "Cached"

    other = next(v for v in reverse_model if v != champion.version)  # another reverse model: a miss
    changed = seq2seq(bt_config(bt_files, work, f"models:/bt-reverse/{other}"), return_state=True)
    assert changed.is_completed(), changed.message
    states = task_states(changed.state_details.flow_run_id, expect=steps)
    assert states["augment-pairs"] == "Completed" and states["ingest-monolingual"] == "Cached"
    augment2 = stage_runs(client, changed.result()["mlflow_run_id"])["augment"]
    assert augment2.data.tags["translator.backtranslation.0"].startswith(f"models:/bt-reverse/{other} ")


def test_a_reverse_model_of_the_wrong_languages_or_kind_fails_before_any_work(
        first_run, reverse_model, bt_files, tmp_path, tracking_uri, trained_sample):
    from lowlm.serving.pyfunc import log_pyfunc

    # s2s-test (first_run) translates en -> de: the wrong way for back-translating translate-sample's German
    state = seq2seq(bt_config(bt_files, tmp_path / "w1", "models:/s2s-test@champion"), return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "models:/s2s-test@champion" in message and "en -> de" in message and "de -> en" in message, message
    assert task_states(state.state_details.flow_run_id, expect=set()) == {}  # nothing ran: not even ingest

    mlflow.set_tracking_uri(tracking_uri)
    folder = trained_sample["classifier"].save(tmp_path / "classifier")
    with mlflow.start_run():
        info = log_pyfunc(str(folder), input_example=["a text"])
    mlflow.register_model(info.model_uri, "bt-not-a-translator")
    state = seq2seq(bt_config(bt_files, tmp_path / "w2", "models:/bt-not-a-translator/1"), return_state=True)
    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert "models:/bt-not-a-translator/1" in message and "is a classifier, not a translator" in message, message
    assert task_states(state.state_details.flow_run_id, expect=set()) == {}


def test_classification_rows_get_round_trip_paraphrases_from_a_preset_and_a_registered_model(
        reverse_model, sample_csv, tmp_path, tracking_uri):
    """en -> de by a preset the flow trains first (as its own pipeline run), then de -> en by bt-reverse."""
    from flows.classification import classification

    preset = {"preset": "translate-sample", "overrides": {
        "work_dir": str(tmp_path / "preset"), "experiment": "bt-preset", "registry.model_name": "bt-preset-en-de",
        "train.epochs": 3, "train.progress": False, "decode.select": False, "augment.enabled": False}}
    config = load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path / "work"), "experiment": "bt-classify",
        "registry.model_name": "bt-classify", "train.epochs": 2, "train.progress": False,
        "fewshot.enabled": False, "attack.enabled": False, "augment.shard_rows": 100,
        "augment.augmenters": [{"kind": "backtranslation", "ratio": 0.5, "models": [preset, {"uri": "models:/bt-reverse@champion"}],
                                "generation": {"method": "sample", "top_k": 5, "max_length": 30}}]})
    state = classification(config, return_state=True)
    assert state.is_completed(), state.message
    client = MlflowClient(tracking_uri)
    trained = client.get_model_version_by_alias("bt-preset-en-de", "champion")  # the preset ran and registered
    augment = stage_runs(client, state.result()["mlflow_run_id"])["augment"]
    tags, metrics = augment.data.tags, augment.data.metrics
    assert tags["translator.backtranslation.0"] == f"models:/bt-preset-en-de/{trained.version} (preset translate-sample)"
    assert tags["translator.backtranslation.1"].startswith("models:/bt-reverse/")
    assert metrics["rows_backtranslation"] > 0 and metrics["rows_made_backtranslation"] >= metrics["rows_backtranslation"]
    train = pd.read_parquet(next((tmp_path / "work" / "augment").glob("*/train.parquet")))
    original = pd.read_csv(sample_csv)
    assert len(train) == metrics["rows_train"] and set(train["label"]) <= set(original["label"].astype(str))
