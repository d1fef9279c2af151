"""A hyperparameter sweep of a classification preset as a Prefect flow, searched by Optuna, tracked in MLflow.

    (space, study database, Dask scheduler and registry inputs checked first)
    ingest ─> tokenize ─> augment (shards) ─> [probe ─> adversarial]      (shared by every trial, cached)
       ─> trial x N (``workers`` at once on the task runner; TPE proposes, the median pruner stops)
       ─> evaluate ─> evaluate-attack ─> register   (the best trial's model, through the usual gate)

The study lives in a database of the MLflow store's family (``optuna.db`` beside ``mlflow.db``, or
``NAME_optuna`` on the same PostgreSQL server), named from the preset and the space: a rerun of the
same sweep continues it until ``trials`` trials have finished (completed or pruned); trials a killed
run left RUNNING are marked FAIL first. Each trial is a nested MLflow run (``trial-NNN``) with its
params, per-epoch curves and the tags ``sweep.study``, ``sweep.trial``, ``sweep.state``; the parent run
holds the trials table, the best trial's settings and a parallel-coordinates and importance plot.

With ``workers: 1`` the same sweep on the same data draws the same trials and gets the same metrics;
with more, which trials TPE sees finished when it proposes the next depends on timing.

Run it:  lowlm sweep trec --set model.kind=bag_of_ngrams --trials 16
"""

from __future__ import annotations

import math

import mlflow
import pandas as pd
from prefect import flow
from prefect.futures import as_completed

from lowlm.config import PipelineConfig
from lowlm.config.secrets import mask
from lowlm.config.sweep import (SweepConfig, SweepSpaceError, baseline_params, check_space, distributions, space_of,
                                study_name, study_storage, trial_config)
from lowlm.data.corpus import corpus_fingerprint
from flows.classification import (evaluate_and_register, parallel_stages, resolve_inputs, train_options,
                                  training_data)
from flows.runners import check_runners, task_runner
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import log_figure, log_table, pipeline_run, stage_logger, tracking_uri
from tasks.ingest import ingest
from tasks.summarize import summarize
from tasks.sweep import open_study, trial


@flow(name="sweep")
def sweep(config: PipelineConfig, settings: SweepConfig) -> dict:
    """Run the sweep's trials of ``config`` (Optuna study continued up to ``settings.trials`` finished),
    then evaluate and register the best trial's model."""
    from optuna.trial import TrialState

    guard_api_run(config)
    space = space_of(settings, config)
    check_space(config, space)  # every key a setting of this preset, every bound a valid value
    check_runners(*parallel_stages(config), settings)
    storage = study_storage(settings, tracking_uri())
    shown = mask(storage)  # credentials never reach a tag or the result
    name = study_name(settings, config, space)
    study = open_study(storage, name, seed=settings.seed, startup_trials=settings.startup_trials,
                       pruner_startup=settings.pruner_startup, warmup_epochs=settings.warmup_epochs, create=True)
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):  # left by a killed run
        study.tell(stale.number, state=TrialState.FAIL)
    baseline = baseline_params(config, space) if settings.baseline else {}
    if baseline and not study.trials:  # trial 0: the preset as it is (within the space)
        study.enqueue_trial(baseline)
    work = WorkFolder(config.work_dir)
    resolved = resolve_inputs(config, work)
    with pipeline_run("sweep", config) as tracking:
        mlflow.set_tags({"sweep.study": name, "sweep.storage": shown})
        mlflow.log_dict({"settings": settings.model_dump(mode="json", exclude={"space"}),
                         "space": {k: v.model_dump() for k, v in space.items()}}, "sweep/space.json")
        corpus = work(ingest)(config.corpus, work.path, tracking, fingerprint=corpus_fingerprint(config.corpus))
        vocab, train_split = training_data(corpus, config, work, tracking, resolved)
        shared = {"corpus": corpus, "train_split": train_split, "vocab": vocab, "work_dir": work.path,
                  "tracking": tracking, "options": train_options(config, resolved),
                  "study": {"storage": storage, "name": name, "warmup_epochs": settings.warmup_epochs,
                            "pruner_startup": settings.pruner_startup}}
        ran = run_trials(study, space, config, settings, shared)
        completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not completed:
            raise RuntimeError(f"no trial of the study {name} completed (all {len(study.trials)} pruned or failed): "
                               f"nothing to register; raise sweep.pruner_startup or widen the space")
        best = study.best_trial
        best_config = trial_config(config, best.params)
        trained = best.user_attrs["trained"]
        counts = log_study(study, best, ran, f"validation {config.train.metric}")
        evaluation, registered = evaluate_and_register(corpus, train_split, trained, best_config, work, tracking)
        summary = {**evaluation["metrics"], "best_val": best.value, **counts}
        result = summarize(summary, registered, tracking)
        result["sweep"] = {"study": name, "storage": shown, "best_trial": best.number,
                           "best_params": best.params, "ran": ran, **counts}
        return result


def run_trials(study, space: dict, config: PipelineConfig, settings: SweepConfig, shared: dict) -> int:
    """Ask, train and tell until the study holds ``settings.trials`` finished trials, ``settings.workers``
    in flight at once; returns how many ran now. A trial that fails is told FAIL, the others in flight
    are finished and told, then the error is raised (the study keeps every finished trial)."""
    from optuna.trial import TrialState

    logger = stage_logger()
    wanted = settings.trials - len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if wanted <= 0:
        logger.info(f"the study {study.study_name} already holds {settings.trials} finished trials")
        return 0
    dists = distributions(space)
    pending: dict = {}
    launched, error = 0, None
    with task_runner(settings) as runner:
        while pending or (launched < wanted and error is None):
            while error is None and launched < wanted and len(pending) < settings.workers:
                proposed = study.ask(dists)
                params = dict(proposed.params)
                try:
                    settings_of_trial = trial_config(config, params)
                except ValueError as exc:  # a combination no single bound showed to be invalid
                    study.tell(proposed, state=TrialState.FAIL)
                    error = SweepSpaceError(f"trial {proposed.number}: the settings {params} do not make a valid "
                                            f"config: {exc}")
                    break
                future = runner.submit(trial.with_options(name=f"trial-{proposed.number:03d}"), {
                    "number": proposed.number, "trial_id": proposed._trial_id, "params": params,
                    "config": settings_of_trial, **shared})
                pending[future] = proposed
                launched += 1
            if not pending:  # nothing in flight: the error above ends the loop
                break
            done = next(as_completed(list(pending)))
            proposed = pending.pop(done)
            try:
                out = done.result()
            except Exception as exc:  # noqa: BLE001 - told FAIL, the rest drained, then raised
                study.tell(proposed, state=TrialState.FAIL)
                error = error or exc
                continue
            proposed.set_user_attr("trained", {k: v for k, v in out.items() if k not in ("state", "pruned_at")})
            proposed.set_user_attr("run_id", out["run_id"])
            if out["state"] == "pruned":
                proposed.set_user_attr("pruned_at", out["pruned_at"])
                study.tell(proposed, state=TrialState.PRUNED)
            else:
                study.tell(proposed, float(out["best_val"]))
            logger.info(f"trial {proposed.number}: {out['state']} (best validation {out['best_val']:.4f}) "
                        f"{proposed.params}")
    if error is not None:
        raise error
    return launched


def log_study(study, best, ran: int, target: str) -> dict:
    """On the parent run: the trials table, the best trial's settings (params ``best.KEY``), the counts,
    and the parallel-coordinates and importance plots (when the study has enough trials for them);
    returns the counts."""
    from optuna.trial import TrialState

    rows = []
    for t in study.trials:
        rows.append({"trial": t.number, "state": t.state.name, "value": _number(t.value),
                     "pruned_at": t.user_attrs.get("pruned_at"), "run_id": t.user_attrs.get("run_id"),
                     "seconds": t.duration.total_seconds() if t.duration else None, **t.params})
    log_table(pd.DataFrame(rows), "sweep/trials.json")
    mlflow.log_params({f"best.{k}": v for k, v in best.params.items()})
    mlflow.set_tags({"sweep.best_trial": str(best.number), "sweep.best_run_id": str(best.user_attrs.get("run_id"))})
    counts = {f"trials_{state.name.lower()}": sum(t.state == state for t in study.trials)
              for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    counts["trials_ran"] = ran
    _log_plots(study, target)
    return counts


def _log_plots(study, target: str) -> None:
    """Parallel coordinates (every trial's settings against its value) and parameter importances."""
    import warnings

    from optuna.visualization import matplotlib as plots

    logger = stage_logger()
    for name, draw in (("parallel_coordinates", plots.plot_parallel_coordinate),
                       ("param_importances", plots.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                axes = draw(study, target_name=target)
            figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            figure.set_size_inches(10, 5)
            figure.tight_layout()
            log_figure(figure, f"sweep/{name}.png")
        except Exception as exc:  # noqa: BLE001 - a plot the study cannot draw yet (too few trials) is skipped
            logger.warning(f"no {name} plot: {type(exc).__name__}: {exc}")


def _number(value):
    return None if value is None or not math.isfinite(value) else float(value)
