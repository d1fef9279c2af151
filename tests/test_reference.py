"""The configuration reference is what the models say, and `lowlm validate` checks without training."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.cli import app
from lowlm.config import PIPELINES
from lowlm.config.reference import reference

ROOT = Path(__file__).resolve().parent.parent


def test_docs_config_md_is_generated_from_the_models():
    text = reference()
    current = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == text, "docs/config.md is stale: python -m lowlm.config.reference > docs/config.md"
    for config in PIPELINES.values():  # every setting of every pipeline is there, with its section
        assert f"### {config.__name__}" in text
        for name in config.model_fields:
            assert f"| `{name}` |" in text
    assert "| ingest-fewshot | `fewshot.enabled` |" in text


def test_validate_checks_config_and_corpora_without_training(tmp_path, tracking_uri):
    from mlflow import MlflowClient

    runner = CliRunner()
    before = len(MlflowClient(tracking_uri).search_experiments())
    ok = runner.invoke(app, ["validate", "sample"])
    assert ok.exit_code == 0, ok.output
    assert "corpus: train 259 rows, validation 29 rows, test 72 rows; 4 labels" in ok.output
    assert "fewshot.corpus:" in ok.output and "ok: nothing was trained or logged" in ok.output
    pairs = runner.invoke(app, ["validate", "translate-sample"])
    assert pairs.exit_code == 0 and "pairs" in pairs.output, pairs.output
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine,a\n,b\n")
    refused = runner.invoke(app, ["validate", "sample", "--set", f"corpus.path={bad}"])
    assert refused.exit_code == 2 and "bad.csv, row 2: empty or missing text" in refused.output
    assert len(MlflowClient(tracking_uri).search_experiments()) == before  # nothing logged
