"""Configs: declared kinds (a model config per ``kind``, a pipeline per ``task``), presets, overrides."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lowlm.config import (CONFIGS_DIR, BagOfNgramsConfig, LanguageModelPipelineConfig, PipelineConfig, QAPipelineConfig,
                          RNNAttentionConfig, Seq2SeqPipelineConfig, load_pipeline_config, pipeline_task)
from lowlm.models.kinds import MODEL_KINDS, build_model, model_class


@pytest.mark.parametrize("preset", sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml")))
def test_every_preset_declares_its_task_and_validates(preset):
    task = pipeline_task(preset)
    config = load_pipeline_config(preset)
    assert config.task == task
    assert type(config) is {"classification": PipelineConfig, "seq2seq": Seq2SeqPipelineConfig,
                            "lm": LanguageModelPipelineConfig, "qa": QAPipelineConfig}[task]
    assert config.model.kind in MODEL_KINDS


def test_a_preset_without_a_task_is_refused_with_the_choices(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("corpus: {path: data/sample/intents.csv}\n")
    with pytest.raises(ValueError, match=r"mine\.yaml: no 'task' setting.*classification, seq2seq, lm, qa"):
        load_pipeline_config(path)
    path.write_text("task: ner\ncorpus: {path: x.csv}\n")
    with pytest.raises(ValueError, match="task 'ner' is not a kind of pipeline"):
        load_pipeline_config(path)


def test_a_preset_run_as_the_wrong_kind_of_pipeline_is_an_error():
    with pytest.raises(ValueError, match="task"):
        load_pipeline_config("translate-sample", model=PipelineConfig)


def test_model_configs_are_told_apart_by_kind():
    config = PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "bag_of_ngrams",
                                                                                   "ngrams": 3}})
    assert isinstance(config.model, BagOfNgramsConfig) and config.model.ngrams == 3
    # settings of another kind are errors, not silently ignored
    with pytest.raises(ValidationError, match="hidden_dim"):
        PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "bag_of_ngrams",
                                                                              "hidden_dim": 64}})
    with pytest.raises(ValidationError, match="kind"):
        PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "cnn"}})
    with pytest.raises(ValidationError, match="not divisible by heads"):
        PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "transformer", "heads": 3}})
    assert isinstance(PipelineConfig.model_validate({"corpus": {"path": "x.csv"}}).model, RNNAttentionConfig)


def test_switching_kind_by_override_starts_from_that_kinds_defaults():
    config = load_pipeline_config("sample", {"model.kind": "bag_of_ngrams", "model.embedding_dim": 32})
    assert config.model == BagOfNgramsConfig(embedding_dim=32)
    same = load_pipeline_config("sample", {"model.kind": "rnn_attention"})
    assert same.model.char_dim == 32  # the preset's own kind: its settings stay


def test_each_kind_builds_its_class_from_its_config():
    net = build_model(BagOfNgramsConfig(embedding_dim=4), vocab_size=10, num_labels=2)
    assert type(net) is model_class("bag_of_ngrams") and net.config.embedding_dim == 4
    with pytest.raises(ValueError, match="unknown model kind 'cnn'"):
        model_class("cnn")


def test_the_prefect_form_schema_names_every_classifier_kind():
    schema = PipelineConfig.model_json_schema()
    assert {"BagOfNgramsConfig", "RNNAttentionConfig", "TransformerConfig"} <= set(schema["$defs"])


def test_a_bag_of_ngrams_trains_with_its_validation_chosen_defaults_unless_told_otherwise():
    import json
    from pathlib import Path

    from lowlm.config import PipelineConfig
    from lowlm.config.pipelines import BAG_TRAIN_DEFAULTS

    chosen = json.loads((Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "bag_defaults.json")
                        .read_text())["chosen"]
    assert {k: BAG_TRAIN_DEFAULTS[k] for k in ("lr", "epochs", "batch_size")} == \
        {k: chosen[k] for k in ("lr", "epochs", "batch_size")}  # the benchmark's pick, not a number typed in
    bag = PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "bag_of_ngrams"}})
    assert (bag.train.lr, bag.train.epochs, bag.train.batch_size, bag.train.warmup_ratio) == (0.05, 3, 128, 0.0)
    told = PipelineConfig.model_validate({"corpus": {"path": "x.csv"}, "model": {"kind": "bag_of_ngrams"},
                                          "train": {"lr": 0.1, "epochs": 7}})
    assert (told.train.lr, told.train.epochs, told.train.batch_size) == (0.1, 7, 128)
    rnn = PipelineConfig.model_validate({"corpus": {"path": "x.csv"}})
    assert (rnn.train.lr, rnn.train.epochs) == (2e-3, 10)
    assert PipelineConfig.model_validate(bag.model_dump(mode="json")).digest() == bag.digest()


def test_a_pretrained_seq2seq_encoder_trains_whole_and_takes_no_reserved_tag():
    uri = {"pretrained.uri": "models:/lm@champion"}
    assert load_pipeline_config("translate-sample", uri, Seq2SeqPipelineConfig).pretrained.unfreeze == "all"
    assert load_pipeline_config("sample", uri).pretrained.unfreeze == "gradual"  # classifiers keep ULMFiT's default
    with pytest.raises(ValueError, match="gradual unfreezing is for classifiers"):
        load_pipeline_config("translate-sample", {**uri, "pretrained.unfreeze": "gradual"}, Seq2SeqPipelineConfig)
    with pytest.raises(ValueError, match="back-translation tag"):
        load_pipeline_config("multi30k-bt", uri, Seq2SeqPipelineConfig)
