"""The register stage and its gate on a real registry: deterministic wins and losses, re-scoring the
champion on other test data, cleaning up after a failure, and versions whose code is gone."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from lowlm.config import load_pipeline_config
from lowlm.data.corpus import corpus_fingerprint
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run
from tasks.augment import augment
from tasks.evaluate import evaluate
from tasks.ingest import ingest
from tasks.register import champion_metric, load_registered, register
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
        split = work(augment)(corpus, config.augment, work.path, tracking)

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
    assert stages["client"].get_model_version("gate-win", "1").aliases == []  # the alias moved


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
    predicted = mlflow.pyfunc.load_model("models:/gate-rescore@champion").predict(relabelled["text"].tolist())
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
    with pytest.raises(RuntimeError, match="registered by an older lowlm.*Re-register: drop its alias"):
        load_registered("models:/gate-old@champion", "1")
