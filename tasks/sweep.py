"""The sweep's trial: one training of the preset with the trial's settings, reported to Optuna epoch by
epoch (the median pruner may stop it) and logged as its own nested MLflow run.

The trial runs where the task runner puts it (a thread of the flow's process or a Dask worker): it
opens the study from its database by name, so every process sees the same trials.
"""

from __future__ import annotations

import mlflow
from prefect import task
from prefect.cache_policies import NO_CACHE

from lowlm.training.trainer import Callback
from tasks._stage import Tracking
from tasks.train import train

SQLITE_TIMEOUT = 60  # seconds a writer waits for SQLite's lock (parallel trials report at once)


CONNECT_TIMEOUT = 10  # seconds a database server has to answer when the sweep starts


class StudyUnavailable(RuntimeError):
    """The study's database cannot be opened; the message names it (credentials masked)."""


def with_driver(url: str) -> str:
    """A ``postgresql://`` URL with the driver that is installed (psycopg 3; SQLAlchemy's default is psycopg2)."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


def ensure_database(url: str) -> None:
    """Create the PostgreSQL database ``url`` names when the server lacks it (Optuna creates tables, not
    databases); the role needs CREATEDB, or the database is made beforehand."""
    import sqlalchemy

    target = sqlalchemy.engine.make_url(with_driver(url))
    admin = sqlalchemy.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT",
                                     connect_args={"connect_timeout": CONNECT_TIMEOUT})
    try:
        with admin.connect() as db:
            found = db.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                               {"name": target.database}).first()
            if not found:
                db.execute(sqlalchemy.text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def open_study(storage: str, name: str, seed: int | None = None, startup_trials: int = 5, pruner_startup: int = 4,
               warmup_epochs: int = 1, create: bool = False):
    """The Optuna study ``name`` in ``storage`` (created with ``create``): maximises the validation metric
    with TPE (``seed``) and the median pruner. A database that does not answer raises StudyUnavailable."""
    import optuna
    import sqlalchemy.exc

    from lowlm.config.secrets import mask

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if storage.startswith("sqlite"):
        engine = {"connect_args": {"timeout": SQLITE_TIMEOUT}}
    else:
        engine = {"pool_pre_ping": True, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    try:
        if create and storage.startswith("postgresql"):
            ensure_database(storage)
        db = optuna.storages.RDBStorage(with_driver(storage), engine_kwargs=engine)
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.ArgumentError, ModuleNotFoundError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise StudyUnavailable(f"the sweep's study database {mask(storage)} cannot be opened: {mask(reason)}") \
            from None
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup_trials, constant_liar=True)
    # epochs count from 1: with warmup_epochs w, the first epoch a trial can be pruned after is w + 1
    pruner = optuna.pruners.MedianPruner(n_startup_trials=pruner_startup, n_warmup_steps=warmup_epochs + 1)
    if create:
        return optuna.create_study(storage=db, study_name=name, direction="maximize", sampler=sampler, pruner=pruner,
                                   load_if_exists=True)
    return optuna.load_study(storage=db, study_name=name, sampler=sampler, pruner=pruner)


class Pruning(Callback):
    """Reports the validation metric after every epoch; stops training (as early stopping does) when the
    pruner says the trial is behind the median of finished trials at that epoch."""

    def __init__(self, trial, metric: str):
        self.trial, self.key = trial, f"val_{metric}"
        self.pruned_at: int | None = None

    def on_epoch_end(self, trainer, epoch, metrics):
        self.trial.report(float(metrics[self.key]), step=epoch)
        if self.pruned_at is None and self.trial.should_prune():
            self.pruned_at = epoch
            trainer.result.stopped_early = True
            if mlflow.active_run() is not None:  # the trial's run
                mlflow.log_metric("pruned_at_epoch", epoch)


@task(name="trial", cache_policy=NO_CACHE, retries=0)
def trial(number: int, trial_id: int, params: dict, study: dict, corpus: dict, train_split: dict, vocab: dict,
          config, work_dir: str, tracking: Tracking, options: dict) -> dict:
    """Train trial ``number`` (``params``: its dotted settings, already in ``config``) of the study ``study``
    ({storage, name, ...}); ``options``: the train stage's other arguments (``flows.classification.train_options``).
    Returns the train stage's handle with ``state`` (complete or pruned) and ``pruned_at`` (epoch or None)."""
    import optuna
    from mlflow.tracking import MlflowClient

    opened = open_study(study["storage"], study["name"], warmup_epochs=study["warmup_epochs"],
                        pruner_startup=study["pruner_startup"])
    pruning = Pruning(optuna.trial.Trial(opened, trial_id), config.train.metric)
    trained = train.fn(corpus, train_split, vocab, config.model, config.train, work_dir, tracking,
                       stage=f"trial-{number:03d}", callbacks=[pruning], **options)
    state = "pruned" if pruning.pruned_at is not None else "complete"
    client = MlflowClient(tracking.uri)
    for key, value in {"sweep.study": study["name"], "sweep.trial": str(number), "sweep.state": state,
                       **{f"sweep.param.{k}": str(v) for k, v in params.items()}}.items():
        client.set_tag(trained["run_id"], key, value)
    return {**trained, "state": state, "pruned_at": pruning.pruned_at}
