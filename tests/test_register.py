"""The register stage and its gate on a real registry: deterministic wins and losses, re-scoring the
champion on other test data, cleaning up after a failure, and versions whose code is gone; moving the
champion by hand (``lowlm models promote`` and ``rollback``) and listing models whatever their names.
Two registrations at once: ``test_gate_race``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from lowlm.config import load_pipeline_config
from lowlm.data.corpus import corpus_fingerprint
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run
from flows.augmenting import augment_split
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.register import champion_metric, gate, load_registered, register
from tasks.registry import registry_versions
from tasks.tokenize import tokenize
from tasks.train import train


@pytest.fixture(scope="module")
def stages(prefect_harness, tmp_path_factory, sample_csv, tracking_uri):
    """Real stage outputs for the sample corpus: a trained model and one that learnt nothing."""
    config = load_pipeline_config("sample", {
        "corpus.path": str(sample_csv), "experiment": "register-test", "augment.enabled": False,
        "model": {"kind": "bag_of_ngrams", "embedding_dim": 32, "buckets": 1 << 16}, "train.progress": False})
    work = WorkFolder(tmp_path_factory.mktemp("register"))
    with pipeline_run("classification", config) as tracking:
        corpus = work(ingest)(config.corpus, work.path, tracking, fingerprint=corpus_fingerprint(config.corpus))
        vocab = work(tokenize)(corpus, config.tokenizer, work.path, tracking)
        split = augment_split(corpus, config.augment, work, tracking, {})

        def trained(lr: float, epochs: int):
            settings = config.train.model_copy(update={"lr": lr, "epochs": epochs})
            model = work(train)(corpus, split, vocab, config.model, settings, work.path, tracking)
            return model, work(evaluate)(corpus, model, tracking)

        strong, weak = trained(0.05, 10), trained(1e-9, 1)
    assert strong[1]["metrics"]["test_accuracy"] > weak[1]["metrics"]["test_accuracy"] + 0.3
    digests = {**corpus["digests"], "content": corpus["content_digest"]}
    return {"corpus": corpus, "strong": strong, "weak": weak, "tracking": tracking, "digests": digests,
            "client": MlflowClient(tracking_uri)}


def _register(stages, which: str, name: str, digests: dict | None = None) -> dict:
    model, evaluation = stages[which]
    return register(stages["corpus"], model, evaluation, "classification", name, "accuracy", "cfg",
                    digests or stages["digests"], stages["tracking"])


def _champion(stages, name: str) -> str:
    return str(stages["client"].get_model_version_by_alias(name, "champion").version)


def test_a_better_model_must_win(stages):
    assert _register(stages, "weak", "gate-win")["alias"] == "champion"  # no champion yet
    second = _register(stages, "strong", "gate-win")
    assert second["alias"] == "champion" and second["version"] == "2"
    assert _champion(stages, "gate-win") == "2"
    assert stages["client"].get_model_version("gate-win", "1").aliases == ["challenger"]  # the runner-up


def test_a_worse_model_must_lose(stages):
    assert _register(stages, "strong", "gate-lose")["alias"] == "champion"
    second = _register(stages, "weak", "gate-lose")
    assert second["alias"] == "challenger" and "same test digest" in second["reason"]
    assert _champion(stages, "gate-lose") == "1"


def test_a_failure_after_the_version_was_created_deletes_it(stages):
    # a tag MLflow refuses (its key is over 250 characters): the version exists by then, and must not stay
    with pytest.raises(Exception, match="key"):
        _register(stages, "strong", "gate-fail", digests={**stages["digests"], "k" * 300: "x"})
    assert stages["client"].search_model_versions("name = 'gate-fail'") == []


def test_the_champion_is_rescored_on_a_test_split_whose_labels_differ(stages, tmp_path):
    _register(stages, "strong", "gate-rescore")
    corpus = stages["corpus"]
    test = pd.read_parquet(corpus["splits"]["test"])
    relabelled = test.assign(label=test["label"].where(test["label"] != "transfer", "wire_transfer"))
    path = tmp_path / "test.parquet"
    relabelled.to_parquet(path, index=False)
    other = {**corpus, "splits": {**corpus["splits"], "test": str(path)}, "digests": {**corpus["digests"],
             "test": "another-test-split"}, "labels": sorted(set(corpus["labels"]) - {"transfer"} | {"wire_transfer"})}
    version, score, how = champion_metric(stages["client"], "gate-rescore", other, "classification", "accuracy")
    assert (version, how) == ("1", "re-scored on this test split")
    predicted = mlflow.pyfunc.load_model("models:/gate-rescore@champion").predict(relabelled[["text"]])
    expected = (predicted["label"].to_numpy() == relabelled["label"].to_numpy()).mean()
    assert score == pytest.approx(expected)  # rows it knows as 'transfer' now count as wrong
    stored = float(stages["client"].get_model_version("gate-rescore", "1").tags["test_accuracy"])
    assert score < stored


def test_a_version_whose_stored_code_is_gone_is_refused_with_how_to_reregister(stages):
    _register(stages, "strong", "gate-old")
    # what a version logged before the library's layout changed looks like: its model code (stored
    # beside it, in the local artifact store) imports a module this lowlm does not have
    stored = Path(stages["client"].get_model_version_download_uri("gate-old", "1").removeprefix("file://"))
    code = stored / "pyfunc.py"
    code.write_text(code.read_text().replace("from __future__ import annotations\n",
                                             "from __future__ import annotations\nimport lowlm.predictor\n"))
    from tasks.integrity import DIGEST_TAGS

    for tag in DIGEST_TAGS:  # ... and was registered before versions recorded digests
        stages["client"].delete_model_version_tag("gate-old", "1", tag)
    with pytest.raises(RuntimeError, match="registered by an older lowlm.*Re-register: drop its alias"):
        load_registered("models:/gate-old@champion", "1")


# ------------------------------------------------------------------- moving the champion by hand


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """A fresh SQLite store that ``lowlm`` (in this process) reads and writes."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return MlflowClient(uri)


TEST_DIGEST = {"digests": {"test": "same-test-digest"}}


def _gated(client: MlflowClient, name: str, *accuracies: float) -> list[dict]:
    """Versions with a stored test metric on one test digest, each through the real gate in turn."""
    if name not in {m.name for m in client.search_registered_models()}:
        client.create_registered_model(name)
    out = []
    for accuracy in accuracies:
        v = client.create_model_version(name, "file:///nowhere", tags={"test_accuracy": f"{accuracy:.6f}",
                                                                     "test_digest": "same-test-digest"})
        out.append(gate(client, name, str(v.version), accuracy, TEST_DIGEST, "classification", "accuracy"))
    return out


def _state(client: MlflowClient, name: str) -> tuple[dict, list]:
    model = client.get_registered_model(name)
    return ({a: str(v) for a, v in model.aliases.items()}, json.loads(model.tags["lowlm.champion_history"]))


def _lowlm(*args: str):
    return CliRunner().invoke(app, list(args))


def test_rollback_brings_back_the_champion_before_and_promote_picks_one(registry):
    name = "hand-moved"
    assert [r["alias"] for r in _gated(registry, name, 0.5, 0.7, 0.6)] == ["champion", "champion", "challenger"]
    assert _state(registry, name) == ({"champion": "2", "challenger": "3"}, ["1", "2"])

    out = _lowlm("models", "rollback", name, "--reason", "v2 misroutes refunds")
    assert out.exit_code == 0, out.output
    assert "models:/hand-moved@champion -> v1 (was v2, now challenger)" in out.output
    assert _state(registry, name) == ({"champion": "1", "challenger": "2"}, ["1"])
    tags = registry.get_model_version(name, "1").tags
    assert (tags["rollback_reason"], tags["rollback_from"]) == ("v2 misroutes refunds", "2")
    assert tags["rollback_by"] and tags["rollback_at"].startswith("20")

    again = _lowlm("models", "rollback", name)  # nothing was champion before v1
    assert again.exit_code == 1 and "no champion before v1" in again.output
    assert _state(registry, name) == ({"champion": "1", "challenger": "2"}, ["1"])

    out = _lowlm("models", "promote", name, "3")
    assert out.exit_code == 0, out.output
    assert _state(registry, name) == ({"champion": "3", "challenger": "1"}, ["1", "3"])
    tags = registry.get_model_version(name, "3").tags
    user = tags["promoted_by"]
    assert user == (os.environ.get("USER") or user) and tags["promote_reason"] == f"manual promote by {user}"
    assert tags["promoted_from"] == "1" and tags["promoted_at"].startswith("20")

    assert _lowlm("models", "rollback", name, "--reason", "undo").exit_code == 0
    assert _state(registry, name) == ({"champion": "1", "challenger": "3"}, ["1"])
    # the gate carries on from the restored champion
    assert _gated(registry, name, 0.55)[0]["reason"].endswith("vs champion v1 0.5000")
    assert _state(registry, name) == ({"champion": "4", "challenger": "1"}, ["1", "4"])


def test_promote_and_rollback_refuse_unknown_models_and_versions(registry):
    _gated(registry, "known", 0.5)
    for args, message in [(("promote", "unknown", "1"), "error: no registered model 'unknown'"),
                          (("promote", "known", "7"), "error: model 'known' has no version '7' (versions: 1)"),
                          (("promote", "known", "one"), "has no version 'one'"),
                          (("rollback", "unknown"), "error: no registered model 'unknown'")]:
        out = _lowlm("models", *args)
        assert out.exit_code == 2 and message in out.output and len(out.output.strip().splitlines()) == 1, args
    same = _lowlm("models", "promote", "known", "1")
    assert same.exit_code == 0 and "already the champion" in same.output
    assert _state(registry, "known") == ({"champion": "1"}, ["1"])


def test_models_lists_in_every_form_beside_its_subcommands(registry):
    _gated(registry, "alpha", 0.5, 0.7)
    _gated(registry, "promote", 0.6)  # a model named like a subcommand
    table = _lowlm("models")
    assert table.exit_code == 0 and table.output.splitlines()[0].split() == [
        "model", "version", "aliases", "metrics", "train", "data", "registered"]
    assert [line.split()[:3] for line in table.output.splitlines()[1:]] == [
        ["alpha", "2", "champion"], ["alpha", "1", "challenger"], ["promote", "1", "champion"]]
    one = _lowlm("models", "alpha")
    assert one.exit_code == 0 and [line.split()[:2] for line in one.output.splitlines()[1:]] == [["alpha", "2"], ["alpha", "1"]]
    for args in (["alpha", "--json"], ["--json", "alpha"], ["list", "alpha", "--json"]):
        out = _lowlm("models", *args)
        assert out.exit_code == 0, args
        assert [(r["version"], r["aliases"]) for r in json.loads(out.output)] == [("2", ["champion"]), ("1", ["challenger"])]
    everything = _lowlm("models", "--json")
    assert [r["name"] for r in json.loads(everything.output)] == ["alpha", "alpha", "promote"]
    named = _lowlm("models", "list", "promote")
    assert named.exit_code == 0 and named.output.splitlines()[1].split()[:3] == ["promote", "1", "champion"]
    missing = _lowlm("models", "nothing-here")
    assert missing.exit_code == 1 and "no registered versions of 'nothing-here'" in missing.output


def test_model_names_with_quotes_list_and_move(registry):
    names = ["plain", "it's", 'o\'neil "beta"', "back\\slash%_"]
    for name in names:
        _gated(registry, name, 0.5, 0.7)
    listed = _lowlm("models", "--json")
    assert listed.exit_code == 0, listed.output
    assert sorted({r["name"] for r in json.loads(listed.output)}) == sorted(names)
    for name in names:
        assert [r["version"] for r in registry_versions(registry.tracking_uri, name)] == ["2", "1"]
        out = _lowlm("models", "rollback", name)
        assert out.exit_code == 0, out.output
        assert _state(registry, name)[0] == {"champion": "1", "challenger": "2"}
    assert _lowlm("models", "it's").output.splitlines()[1].split()[:3] == ["it's", "2", "challenger"]


def test_a_model_changed_in_the_artifact_store_is_refused(stages, tracking_uri):
    """Loading a model runs the code stored beside it: each version records digests of its files, and
    lowlm predict and the gate's re-scoring refuse a version whose stored files changed."""
    from tasks.integrity import DIGEST_TAGS, IntegrityError, folder_digests, verified_copy

    _register(stages, "strong", "tampered")
    client = stages["client"]
    version = client.get_model_version("tampered", "1")
    assert all(len(version.tags[t]) == 32 for t in DIGEST_TAGS)
    local, note = verified_copy("models:/tampered@champion", tracking_uri)
    assert "digests verified" in note and folder_digests(local)["artifact_digest"] == version.tags["artifact_digest"]
    runner = CliRunner()
    ok = runner.invoke(app, ["predict", "models:/tampered@champion", "my card was declined"])
    assert ok.exit_code == 0, ok.output

    stored = Path(mlflow.artifacts.download_artifacts(artifact_uri="models:/tampered/1", tracking_uri=tracking_uri))
    source = Path(client.get_model_version_download_uri("tampered", "1").removeprefix("file://"))
    assert source.is_dir() and (source / "MLmodel").exists()
    code = next(source.rglob("pyfunc.py"))
    code.write_text(code.read_text() + "\nimport os  # an attacker's line\n")
    with pytest.raises(IntegrityError, match="code_digest .* != "):
        verified_copy("models:/tampered@champion", tracking_uri)
    refused = runner.invoke(app, ["predict", "models:/tampered@champion", "my card was declined"])
    assert refused.exit_code == 1 and "does not match what was registered" in refused.output
    with pytest.raises(IntegrityError):
        load_registered("models:/tampered@champion")
    assert stored.exists()
