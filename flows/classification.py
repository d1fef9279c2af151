"""Text classification as a Prefect DAG, tracked in MLflow.

    ingest ─> tokenize ─> augment ─> train ─> adversarial
                                       ├────> fewshot (ingest of a second corpus)
                                       └────> evaluate ─> register

One flow run is one MLflow parent run; each stage logs to its own nested run.

Run it:  python -m flows.classification sample --set train.epochs=3
"""

from __future__ import annotations

import argparse
import sys

import mlflow
from prefect import flow

from lowlm.config import PipelineConfig, load_pipeline_config, parse_override
from lowlm.corpus import corpus_fingerprint
from tasks._stage import Tracking, ensure_experiment, tracking_uri
from tasks.adversarial import adversarial
from tasks.augment import augment
from tasks.evaluate import evaluate
from tasks.fewshot import fewshot
from tasks.ingest import ingest
from tasks.register import register
from tasks.tokenize import tokenize
from tasks.train import train


@flow(name="classification")
def classification(config: PipelineConfig) -> dict:
    """Train, evaluate and register a text classifier from one pipeline config."""
    experiment_id = ensure_experiment(config.experiment)
    with mlflow.start_run(experiment_id=experiment_id, run_name=config.name) as parent:
        mlflow.set_tags({"lowlm.flow": "classification", "config_hash": config.digest()})
        mlflow.log_dict(config.model_dump(mode="json"), "config.json")
        tracking = Tracking(tracking_uri(), experiment_id, parent.info.run_id)

        corpus = ingest(config.corpus, config.work_dir, tracking, fingerprint=corpus_fingerprint(config.corpus))
        vocab = tokenize(corpus, config.tokenizer, config.work_dir, tracking)
        train_split = augment(corpus, config.augment, config.work_dir, tracking)
        trained = train(corpus, train_split, vocab, config.model, config.train, config.work_dir, tracking)
        attack = adversarial(corpus, trained, config.attack, tracking)
        transfer = None
        if config.fewshot.enabled:
            target = ingest.with_options(name="ingest-fewshot")(
                config.fewshot.corpus, config.work_dir, tracking, stage="ingest-fewshot",
                fingerprint=corpus_fingerprint(config.fewshot.corpus))
            transfer = fewshot(target, trained, config.fewshot, config.work_dir, tracking)
        evaluation = evaluate(corpus, trained, tracking)
        digests = {**{f"{k}": v for k, v in corpus["digests"].items()}, "train_augmented": train_split["digest"]}
        registered = register(corpus, trained, evaluation, config.registry.model_name, config.registry.metric,
                              config.digest(), digests, tracking)

        summary = {**evaluation["metrics"], "best_val": trained["best_val"]}
        if attack.get("enabled"):
            summary["attack_success_rate"] = attack["attack_success_rate"]
        if transfer:
            summary["fewshot_accuracy"] = transfer["fewshot_accuracy"]
        mlflow.log_metrics(summary)
        mlflow.set_tags({"registered_version": registered["version"], "alias": str(registered["alias"])})
        return {"mlflow_run_id": parent.info.run_id, "experiment_id": experiment_id, "metrics": summary,
                "model": registered}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.classification", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("preset", nargs="?", default="sample", help="preset name under configs/ or a YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a setting, e.g. --set train.epochs=3 (repeatable)")
    args = parser.parse_args(argv)
    try:
        config = load_pipeline_config(args.preset, dict(parse_override(o) for o in args.overrides))
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    state = classification(config, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except Exception as exc:  # the stage's own message names the file, row or field
            print(f"error: the pipeline failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    result = state.result()
    model = result["model"]
    print("\n" + "=" * 72)
    print(f"test accuracy {result['metrics']['test_accuracy']:.4f}   macro-F1 {result['metrics']['test_macro_f1']:.4f}")
    print(f"registered model: {model['name']}  version {model['version']}  alias {model['alias']}")
    print(f"  ({model['reason']})")
    print(f"load it:  mlflow.pyfunc.load_model('models:/{model['name']}@{model['alias']}')")
    print(f"browse:   .venv/bin/mlflow ui --backend-store-uri {tracking_uri()} --host 127.0.0.1 --port 5000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
