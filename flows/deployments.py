"""Deployments of every flow, their schedule and event trigger, served by one process or a work pool.

    classification/sample        the classification pipeline; its parameter is the whole PipelineConfig
                                 (a typed form in the Prefect UI), defaulting to the `sample` preset
    seq2seq/translate-sample     the seq2seq pipeline, defaulting to the `translate-sample` preset
    sweep/sample                 Optuna trials of a classification config (the sample preset with a bag of
                                 n-grams, 8 trials by default); the best trial registered
    retrain/sample               merge new data and retrain when it changed: on a cron schedule
                                 (03:00 UTC daily by default) and on every `lowlm.data.added` event

Serve them all from one process (what `lowlm serve` does), against the Prefect API in
PREFECT_API_URL:

    python -m flows.deployments --cron "0 3 * * *"

For a team, register the same deployments with a process work pool and run workers where the data
and the MLflow store are reachable (see README, "Deployments"):

    prefect work-pool create lowlm --type process
    python -m flows.deployments --pool lowlm
    prefect worker start --pool lowlm
"""

from __future__ import annotations

import sys
from pathlib import Path

from prefect.events import DeploymentEventTrigger

from flows.classification import classification
from flows.retrain import DEFAULT_INCOMING, retrain
from flows.seq2seq import seq2seq
from flows.sweep import sweep
from lowlm.config import PipelineConfig, Seq2SeqPipelineConfig, load_pipeline_config
from lowlm.config.sweep import SweepConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CRON = "0 3 * * *"
DEFAULT_TIMEZONE = "UTC"
DATA_ADDED = "lowlm.data.added"


def incoming_resource(incoming_dir: str) -> str:
    """The Prefect event resource id for an incoming folder (what `lowlm data add` emits): its absolute
    path, so `data/incoming` and `$PWD/data/incoming` name the same folder."""
    return f"lowlm.data.incoming.{Path(incoming_dir).resolve().as_posix()}"


def deployment_specs(cron: str | None = DEFAULT_CRON, timezone: str = DEFAULT_TIMEZONE,
                     retrain_preset: str = "sample", incoming_dir: str = DEFAULT_INCOMING,
                     event_trigger: bool = True) -> list[tuple[object, dict]]:
    """(flow, keyword arguments of ``to_deployment``/``deploy``) for every deployment.

    ``cron=None`` leaves the retrain deployment unscheduled (runs on demand and on events only).
    """
    classify = load_pipeline_config("sample", {}, PipelineConfig)
    translate = load_pipeline_config("translate-sample", {}, Seq2SeqPipelineConfig)
    swept = load_pipeline_config("sample", {"model.kind": "bag_of_ngrams", "fewshot.enabled": False}, PipelineConfig)
    retrain_params = {"preset": retrain_preset, "incoming_dir": incoming_dir, "force": False}
    triggers = [DeploymentEventTrigger(
        name=f"retrain {Path(retrain_preset).stem} on new data", expect={DATA_ADDED},
        match={"prefect.resource.id": incoming_resource(incoming_dir)}, parameters=retrain_params,
    )] if event_trigger else []
    retrain_kwargs = dict(
        name=Path(retrain_preset).stem, parameters=retrain_params, triggers=triggers, concurrency_limit=1, tags=["lowlm"],
        description=f"Merge new files from {incoming_dir}/ into the {retrain_preset!r} corpus and retrain when "
                    f"the data changed; the registry gate decides the champion.",
    )
    if cron:
        from prefect.schedules import Cron

        retrain_kwargs["schedules"] = [Cron(cron, timezone=timezone)]
    return [
        (classification, dict(name="sample", parameters={"config": classify.model_dump(mode="json")},
                              tags=["lowlm"], description="Train, evaluate and register a text classifier.")),
        (seq2seq, dict(name="translate-sample", parameters={"config": translate.model_dump(mode="json")},
                       tags=["lowlm"], description="Train, evaluate and register a seq2seq model.")),
        (sweep, dict(name="sample", parameters={"config": swept.model_dump(mode="json"),
                                                "settings": SweepConfig(trials=8).model_dump(mode="json")},
                     tags=["lowlm"], description="Optuna trials of a classification config (TPE, median pruning); "
                                                 "the best trial's model registered through the gate.")),
        (retrain, retrain_kwargs),
    ]


def runner_deployments(**options) -> list:
    """The deployments as RunnerDeployments, for ``prefect.serve``."""
    return [flow.to_deployment(**kwargs) for flow, kwargs in deployment_specs(**options)]


def serve_all(limit: int = 1, **options) -> None:
    """Serve every deployment from this process until interrupted (runs execute as subprocesses)."""
    from prefect import serve

    serve(*runner_deployments(**options), limit=limit)


def deploy_to_pool(pool: str, **options) -> list[str]:
    """Register every deployment with work pool ``pool``, code read from this checkout; returns their ids."""
    ids = []
    for flow, kwargs in deployment_specs(**options):
        source = Path(flow.fn.__code__.co_filename).resolve().relative_to(ROOT)
        remote = flow.from_source(source=str(ROOT), entrypoint=f"{source.as_posix()}:{flow.fn.__name__}")
        ids.append(str(remote.deploy(work_pool_name=pool, print_next_steps=False, **kwargs)))
    return ids


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.deployments [--pool POOL] ...``: ``lowlm deploy`` with a pool, else ``lowlm serve``."""
    from flows.cli import alias

    args = list(sys.argv[1:] if argv is None else argv)
    return alias(["deploy"] if "--pool" in args else ["serve"], args)


if __name__ == "__main__":
    sys.exit(main())
