"""Optimize: int8 and pruned variants load through the bundle and the registry, and keep the original's answers."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from mlflow import MlflowClient

from flows.classification import classification
from lowlm.config import TrainConfig, load_pipeline_config
from lowlm.config.stages import OptimizeVariant
from lowlm.inference.bundle import BundleError, load_bundle
from lowlm.optimize.prune import make_permanent, prune_model, prunable, sparsity
from lowlm.optimize.variants import build_variant, folder_bytes
from lowlm.text.batching import Batches
from lowlm.training.objectives import train_classifier
from tasks.register import load_registered
from tests.test_flow import stage_runs


@pytest.fixture(scope="module")
def saved(trained_sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("optimize") / "original"
    trained_sample["classifier"].save(folder)
    return folder


def _labels(bundle, texts):
    return [r["label"] for r in bundle.predict(texts)]


def test_an_int8_classifier_is_smaller_and_answers_as_the_original(saved, trained_sample, tmp_path):
    out = tmp_path / "int8"
    record = build_variant(saved, OptimizeVariant(name="int8", quantize=True), out)
    assert record == {"variant": "int8", "weights": "int8", "runtime": "dynamic_int8"}
    original, quantized = load_bundle(saved), load_bundle(out)
    assert type(quantized.model.rnn).__module__.startswith("torch.ao.nn.quantized.dynamic")
    assert (saved / "weights.pt").stat().st_size > 2.2 * (out / "weights.pt").stat().st_size
    held_out = trained_sample["corpus"].splits["test"]["text"]
    same = sum(a == b for a, b in zip(_labels(original, held_out), _labels(quantized, held_out)))
    assert same / len(held_out) >= 0.9
    with pytest.raises(BundleError, match="does not save"):
        quantized.save(tmp_path / "again")


def test_pruning_zeroes_the_stated_share_and_recovery_keeps_them_zero(saved, trained_sample):
    bundle = load_bundle(saved)
    targets = prune_model(bundle.model, 0.6, "layer")
    assert all(abs(float((getattr(m, n) == 0).float().mean()) - 0.6) < 0.01 for m, n in targets)
    zeroed = [(getattr(m, n) == 0).clone() for m, n in targets]
    corpus = trained_sample["corpus"]
    train = Batches(bundle.tokenizer.encode_batch(corpus.splits["train"]["text"]), corpus.splits["train"]["label"],
                    batch_size=16, shuffle=True, seed=0)
    train_classifier(bundle.model, train, None, len(bundle.labels), TrainConfig(epochs=1, lr=1e-3, progress=False))
    make_permanent(bundle.model)
    assert all(bool((getattr(m, n)[z] == 0).all()) for (m, n), z in zip(prunable(bundle.model), zeroed))
    assert not any(k.endswith(("_orig", "_mask")) for k in bundle.model.state_dict())
    assert round(sparsity(bundle.model), 2) == 0.6


def test_a_pruned_int8_variant_records_what_was_done(saved, tmp_path):
    out = tmp_path / "pruned"
    record = build_variant(saved, OptimizeVariant(name="p80", prune=0.8, quantize=True), out)
    assert record["sparsity"] == pytest.approx(0.8, abs=0.01) and record["recovery_epochs"] == 0
    reloaded = load_bundle(out)
    assert reloaded.optimization["variant"] == "p80"
    weight = reloaded.model.head.weight()  # a dynamically quantized Linear: int8 values, most of them zero
    assert float((weight.int_repr() == 0).float().mean()) > 0.5
    assert folder_bytes(out) < folder_bytes(saved)


@pytest.fixture(scope="module")
def optimized_run(prefect_harness, tmp_path_factory, sample_csv):
    config = load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "work_dir": str(tmp_path_factory.mktemp("work")), "experiment": "flow-optimize",
        "registry.model_name": "flow-optimize", "train.epochs": 6, "train.progress": False,
        "augment.enabled": False, "attack.enabled": False, "attack.generate.enabled": False,
        "fewshot.enabled": False, "optimize.enabled": True, "optimize.tolerance": 5.0, "optimize.repeats": 1,
        "optimize.latency_rows": 20,
        "optimize.variants": [{"name": "int8", "quantize": True},
                              {"name": "pruned-95", "prune": 0.95, "recovery_epochs": 0}]})
    state = classification(config, return_state=True)
    assert state.is_completed(), state.message
    return state.result()


def test_the_optimize_stage_registers_variants_within_tolerance_beside_the_champion(optimized_run, tracking_uri):
    result = optimized_run
    client = MlflowClient(tracking_uri)
    champion = client.get_model_version_by_alias("flow-optimize", "champion")
    assert str(champion.version) == result["model"]["version"]  # variants never pass through the gate
    int8 = client.get_model_version_by_alias("flow-optimize", "optimized-int8")
    assert int8.tags["optimized"] == "true" and int8.tags["optimized_from_version"] == str(champion.version)
    assert float(int8.tags["metric_drop"]) <= 5.0 and float(int8.tags["size_ratio"]) > 2
    with pytest.raises(Exception):  # 95% of the weights gone and no recovery: far outside the tolerance
        client.get_model_version_by_alias("flow-optimize", "optimized-pruned-95")
    card = client.get_model_version("flow-optimize", champion.version).description  # the model card
    assert card.startswith(f"# flow-optimize version {champion.version}")
    assert champion.tags["data_digest.train"] in card and champion.tags["data_digest.test"] in card
    assert "## Known limitations" in card and "test_accuracy" in card
    assert "## Optimized variants" in card and f"| int8 | {int8.version} |" in card
    assert "| pruned-95 | not registered |" in card
    assert "optimized variant of version" in client.get_model_version("flow-optimize", int8.version).description
    runs = stage_runs(client, result["mlflow_run_id"])
    explained = {a.path for a in client.list_artifacts(runs["evaluate"].info.run_id, "explanations")}
    assert {"explanations/saliency.html", "explanations/attention.html"} <= explained
    stage = runs["optimize"].data.metrics
    assert stage["pruned-95.metric_drop"] > 5.0 and "int8.batch64_p95_ms" in stage
    served = load_registered("models:/flow-optimize@optimized-int8", tracking_uri=tracking_uri)
    original = load_registered("models:/flow-optimize@champion", tracking_uri=tracking_uri)
    texts = ["my card was declined at the shop", "how do I reset my password", "where is my refund"]
    frame = pd.DataFrame({"text": texts})
    assert (served.predict(frame)["label"] == original.predict(frame)["label"]).sum() >= 2


def test_an_int8_translator_decodes_as_the_float_one(tmp_path):
    """Dynamic int8 on the seq2seq model (GRU encoder, GRUCell decoder, attention and output layers)."""
    import random

    from lowlm.config import Seq2SeqModelConfig, Seq2SeqTrainConfig
    from lowlm.inference.translator import Translator
    from lowlm.models.seq2seq import Seq2Seq
    from lowlm.text.batching import PairBatches
    from lowlm.text.tokenizer import Tokenizer
    from lowlm.training.objectives import train_translator
    from lowlm.training.trainer import seed_everything

    rng = random.Random(3)
    words = [f"w{i}" for i in range(12)]
    sources = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 7))) for _ in range(1500)]
    targets = [" ".join(reversed(s.split())) for s in sources]
    tok = Tokenizer.train(sources + targets)
    seed_everything(0)
    net = Seq2Seq(Seq2SeqModelConfig(embedding_dim=32, hidden_dim=64, attention_dim=32, dropout=0.0, coverage=True),
                  tok.vocab_size, tok.vocab_size)
    translator = Translator(net, tok, tok)
    batches = PairBatches(tok.encode_batch(sources), tok.encode_target_batch(targets), 64, shuffle=True, seed=0)
    train_translator(translator, batches, None, [], [], Seq2SeqTrainConfig(epochs=4, lr=3e-3, warmup_ratio=0.0,
                                                                              progress=False))
    translator.save(tmp_path / "float")
    build_variant(tmp_path / "float", OptimizeVariant(name="int8", quantize=True), tmp_path / "int8")
    held_out = [" ".join(rng.choice(words) for _ in range(5)) for _ in range(40)]
    original, quantized = load_bundle(tmp_path / "float"), load_bundle(tmp_path / "int8")
    assert type(quantized.model.cell).__module__.startswith("torch.ao.nn.quantized.dynamic")
    a, b = original.translate(held_out, max_length=12), quantized.translate(held_out, max_length=12)
    assert sum(x == " ".join(reversed(s.split())) for x, s in zip(a, held_out)) >= 30  # the float model learnt it
    assert sum(x == y for x, y in zip(a, b)) >= 0.9 * len(held_out)


def test_a_long_card_fits_the_registry_description_and_keeps_its_config_in_the_artifact():
    from tasks.model_card import DESCRIPTION_LIMIT, description, model_card, with_variants

    corpus = {"rows": {"train": 10, "test": 5}, "digests": {"train": "aaaa1111", "test": "bbbb2222"},
              "labels": [f"class_{i}" for i in range(77)]}
    metrics = {f"test_metric_{i}": 0.5 for i in range(400)}
    card = model_card("m", "3", "classification", corpus, {"kind": "rnn_attention", "digest": "d1"},
                      {"metrics": metrics}, {"pretrained_uri": "models:/lm/2", "pretrained_version": "2"},
                      config={"model": {"kind": "rnn_attention"}})
    assert "## Config" in card and "`aaaa1111`" in card and "models:/lm/2" in card and "..." in card
    short = description(card, "runs:/r/model_card.md")
    assert len(short) <= DESCRIPTION_LIMIT and "## Config" not in short and "runs:/r/model_card.md" in short
    assert short.startswith("# m version 3") and "`bbbb2222`" in short
    row = {"size_ratio": 3.7, "batch1_speedup": 1.6, "metric_drop": 0.2, "registered": {"version": "4"}}
    twice = with_variants(with_variants(short, {"int8": row}), {"int8": row})
    assert twice.count("## Optimized variants") == 1 and "| int8 | 4 | 3.70x | 1.60x | +0.20 |" in twice


def test_explain_names_the_tokens_behind_an_answer_on_the_command_line(optimized_run, tmp_path):
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    page = tmp_path / "why.html"
    out = runner.invoke(app, ["explain", "models:/flow-optimize@champion", "my card was declined", "--html", str(page)])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert "integrated_gradients" in lines[0] and [line.split("\t")[-1] for line in lines[1:]] == \
        ["my", "card", "was", "declined"]
    assert "<span" in page.read_text()
    quantized = runner.invoke(app, ["explain", "models:/flow-optimize@optimized-int8", "my card was declined", "--json"])
    assert quantized.exit_code == 0, quantized.output
    assert json.loads(quantized.output)["method"] == "occlusion"  # int8 layers have no gradients
    bad = runner.invoke(app, ["explain", "models:/flow-optimize@champion", "hello", "--label", "no-such-class"])
    assert bad.exit_code == 2 and "no-such-class" in bad.output


def test_a_compressed_bag_of_ngrams_is_far_smaller_retrains_its_head_and_answers_as_before(trained_sample, tmp_path):
    from lowlm.config import BagOfNgramsConfig
    from lowlm.inference.classifier import TextClassifier
    from lowlm.models.kinds import build_model
    from lowlm.training.trainer import seed_everything

    corpus = trained_sample["corpus"]
    tok = trained_sample["classifier"].tokenizer
    train = Batches(tok.encode_batch(corpus.splits["train"]["text"]), corpus.splits["train"]["label"], batch_size=16,
                    shuffle=True, seed=0)
    seed_everything(0)
    net = build_model(BagOfNgramsConfig(embedding_dim=32, ngrams=2, buckets=100_000), vocab_size=tok.vocab_size,
                      num_labels=len(corpus.labels))
    net.index_ngrams((b.ids, b.lengths) for b in train)
    train_classifier(net, train, None, len(corpus.labels), TrainConfig(epochs=8, lr=0.5, progress=False))
    TextClassifier(net.eval(), tok, corpus.labels).save(tmp_path / "bag")
    head_before = net.head.weight.clone()

    def retrain(bundle):  # the head only: compression froze the table
        train_classifier(bundle.model, train, None, len(bundle.labels), TrainConfig(epochs=1, lr=0.1, progress=False))

    variant = OptimizeVariant(name="pq", compress=True, keep_ngrams=0.25, keep_words=0.8, pq_dsub=4, pq_bits=6)
    record = build_variant(tmp_path / "bag", variant, tmp_path / "pq", retrain)
    assert record["weights"] == "pq" and record["ngram_rows"] == round(0.25 * record["ngram_rows_before"])
    compressed = load_bundle(tmp_path / "pq")
    assert len(compressed.model.ngram_index) == record["ngram_rows"]
    assert not torch.equal(compressed.model.head.weight, head_before)  # retrained on the quantized rows
    weights = lambda f: (f / "weights.pt").stat().st_size  # noqa: E731
    assert weights(tmp_path / "bag") > 10 * weights(tmp_path / "pq")
    texts = list(corpus.splits["test"]["text"])
    original = load_bundle(tmp_path / "bag")
    same = sum(a == b for a, b in zip(_labels(original, texts), _labels(compressed, texts)))
    assert same / len(texts) >= 0.8
    trained_sample["classifier"].save(tmp_path / "rnn")
    with pytest.raises(ValueError, match="compress is for the bag of n-grams"):
        build_variant(tmp_path / "rnn", variant, tmp_path / "again")
