"""A hyperparameter sweep over a classification preset: the search space (ranges, log scales, choices),
Optuna's TPE sampler and median pruner, where the study is stored and where trials run.

    trials: 16
    space:
      train.lr: {low: 0.01, high: 0.5, log: true}
      train.epochs: {low: 2, high: 12, type: int}
      model.embedding_dim: {choices: [50, 100, 200]}

A key names a ``model.*`` or ``train.*`` setting of the preset (dotted, as ``--set`` takes it); a key
the preset's config does not have is a config error naming it. Data stages (ingest, tokenize,
augment, adversarial rows) are shared by every trial, so only what training reads can be swept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Union
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from lowlm.config.base import _Strict
from lowlm.config.runner import Runner

SWEEPABLE = ("model", "train")


class SweepSpaceError(ValueError):
    """A search space that does not fit the preset: the message names the key."""


class Range(_Strict):
    """A number drawn between ``low`` and ``high`` (both included), uniformly or on a log scale."""

    low: float
    high: float
    log: bool = Field(False, description="Draw on a log scale (learning rates, weight decay).")
    type: Literal["float", "int"] = Field("float", description="int: whole numbers (epochs, sizes).")
    step: float | None = Field(None, gt=0, description="Only multiples of step above low (not with log).")

    @model_validator(mode="after")
    def _bounds(self) -> "Range":
        if self.low > self.high:
            raise ValueError(f"low {self.low:g} is above high {self.high:g}")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0 (got {self.low:g})")
        if self.log and self.step is not None:
            raise ValueError("step and log: true do not go together")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"type int needs whole bounds (got {self.low:g}, {self.high:g})")
        return self

    def distribution(self):
        from optuna.distributions import FloatDistribution, IntDistribution

        if self.type == "int":
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def contains(self, value) -> bool:
        """Whether the sampler could draw ``value``."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.type == "int" and value != int(value):
            return False
        step = self.step or (1 if self.type == "int" else None)
        return step is None or abs((value - self.low) / step - round((value - self.low) / step)) < 1e-9

    def bounds(self) -> list:
        cast = int if self.type == "int" else float
        return [cast(self.low), cast(self.high)]


class Choice(_Strict):
    """One of a list of values (sizes, cell types, booleans)."""

    choices: list[Union[bool, int, float, str, None]] = Field(min_length=1)

    def distribution(self):
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def contains(self, value) -> bool:
        return any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in self.choices)

    def bounds(self) -> list:
        return list(self.choices)


Dimension = Union[Choice, Range]


class SweepConfig(Runner):
    """The sweep's settings: loaded from ``lowlm sweep --space FILE`` (YAML), options on the command line win."""

    trials: int = Field(16, ge=1, description="Finished trials the study should hold: a rerun of the same sweep "
                                              "continues the stored study up to this many.")
    space: dict[str, Dimension] | None = Field(None, description="Dotted key -> {low, high, log, type, step} or "
                                                                 "{choices}; None: the default space of the model kind.")
    seed: int = Field(13, description="The TPE sampler's seed: with workers 1 the same sweep draws the same trials.")
    startup_trials: int = Field(5, ge=1, description="Random trials before TPE models the results.")
    pruner_startup: int = Field(4, ge=0, description="Finished trials before the median pruner stops any trial.")
    warmup_epochs: int = Field(1, ge=0, description="Epochs every trial runs unpruned (the pruner judges from the "
                                                            "epoch after).")
    study: str | None = Field(None, description="The Optuna study's name; None: the preset's name and a digest of "
                                                "the preset and space (another space starts another study).")
    storage: str | None = Field(None, description="Optuna's database URL; None: beside the MLflow store, in the "
                                                  "same family (sqlite: optuna.db next to mlflow.db; postgresql: "
                                                  "the database NAME_optuna on the same server).")
    workers: int = Field(1, ge=1, description="Trials trained at once (threads, or local Dask worker processes).")
    baseline: bool = Field(True, description="The first trial of a new study trains the preset's own values of the "
                                             "space's keys (those inside the space): the sweep registers nothing "
                                             "worse on validation than the preset.")

    @field_validator("space")
    @classmethod
    def _keys(cls, space):
        for key in space or {}:
            if key.split(".")[0] not in SWEEPABLE or "." not in key:
                raise ValueError(f"space key {key!r}: only model.* and train.* settings can be swept (data stages "
                                 f"are shared by every trial)")
        return space


def load_sweep_config(path: str | Path | None, overrides: dict | None = None) -> SweepConfig:
    """The sweep settings in the YAML file ``path`` (or the defaults), with ``overrides`` (CLI options) on top."""
    from lowlm.config.presets import read_preset

    raw: dict = {}
    if path is not None:
        if not Path(path).is_file():  # a file, never a preset name: read_preset would look those up
            raise FileNotFoundError(f"no sweep space file {str(path)!r}")
        path, raw = read_preset(path)  # UTF-8 YAML holding a mapping, or a ValueError naming the file
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return SweepConfig.model_validate(raw)
    except Exception as exc:
        raise ValueError(f"{path or 'sweep settings'}: invalid sweep config:\n{exc}") from None


DEFAULT_SPACES = {
    "bag_of_ngrams": {
        "train.lr": Range(low=0.01, high=0.5, log=True),
        "train.epochs": Range(low=2, high=12, type="int"),
        "model.embedding_dim": Choice(choices=[50, 100, 200]),
        "model.ngrams": Range(low=1, high=3, type="int"),
        "model.dropout": Range(low=0.0, high=0.5),
    },
    "rnn_attention": {
        "train.lr": Range(low=3e-4, high=1e-2, log=True),
        "model.hidden_dim": Choice(choices=[64, 128, 256]),
        "model.dropout": Range(low=0.0, high=0.5),
        "train.batch_size": Choice(choices=[16, 32, 64]),
    },
    "transformer": {
        "train.lr": Range(low=1e-4, high=3e-3, log=True),
        "model.dropout": Range(low=0.0, high=0.3),
        "train.batch_size": Choice(choices=[16, 32, 64]),
    },
}


def space_of(sweep: SweepConfig, config) -> dict[str, Dimension]:
    """The space to search: the sweep's own, or the default for the preset's model kind."""
    if sweep.space:
        return dict(sweep.space)
    try:
        return dict(DEFAULT_SPACES[config.model.kind])
    except KeyError:
        raise SweepSpaceError(f"no default search space for model.kind {config.model.kind}: give one "
                              f"(--space FILE)") from None


def _field_of(config, key: str):
    """The pydantic field a dotted key names in ``config`` (walking into nested models), or a SweepSpaceError."""
    node = config
    parts = key.split(".")
    for depth, part in enumerate(parts):
        fields = type(node).model_fields if isinstance(node, BaseModel) else {}
        if part not in fields:
            where = ".".join(parts[:depth]) or "the config"
            known = ", ".join(sorted(fields)) or "none (not a section)"
            kind = f" (model.kind {config.model.kind})" if parts[0] == "model" else ""
            raise SweepSpaceError(f"sweep space key {key!r}: {where}{kind} has no setting {part!r}; its settings: "
                                  f"{known}")
        node = getattr(node, part)
    return node


def check_space(config, space: dict[str, Dimension]) -> None:
    """Every key names a setting of ``config`` (not ``model.kind``), and every bound and choice makes a valid
    config: raises SweepSpaceError naming the key otherwise."""
    if getattr(config, "task", None) != "classification":
        raise SweepSpaceError(f"lowlm sweep runs classification presets; this preset is a {config.task} pipeline")
    if config.train.distributed is not None:
        raise SweepSpaceError("train.distributed: a sweep's trials train in the flow's own processes (and prune "
                              "by epoch there); drop train.distributed from the preset, or --set it to null")
    for key, dimension in space.items():
        if key == "model.kind":
            raise SweepSpaceError("sweep space key 'model.kind': a sweep searches one kind of model; choose it "
                                  "with --set model.kind=...")
        current = _field_of(config, key)
        if isinstance(current, BaseModel):
            raise SweepSpaceError(f"sweep space key {key!r} is a section; name one of its settings "
                                  f"({', '.join(type(current).model_fields)})")
        for value in dimension.bounds():
            try:
                trial_config(config, {key: value})
            except ValueError as exc:
                raise SweepSpaceError(f"sweep space key {key!r}: the value {value!r} is not a valid setting: "
                                      f"{_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[-2:]) if len(lines) > 1 else (lines[0] if lines else type(exc).__name__)


def trial_config(config, params: dict):
    """``config`` with the trial's ``params`` (dotted keys) set, validated again."""
    from lowlm.config.presets import set_dotted

    raw = config.model_dump(mode="json")
    for key, value in params.items():
        set_dotted(raw, key, value)
    return type(config).model_validate(raw)


def baseline_params(config, space: dict[str, Dimension]) -> dict:
    """The preset's own values of the space's keys, those the space contains (the first trial's settings)."""
    from lowlm.config.presets import get_dotted

    raw = config.model_dump(mode="json")
    values = {key: get_dotted(raw, key) for key in space}
    return {key: value for key, value in values.items() if space[key].contains(value)}


def distributions(space: dict[str, Dimension]) -> dict:
    return {key: dimension.distribution() for key, dimension in space.items()}


def study_name(sweep: SweepConfig, config, space: dict[str, Dimension]) -> str:
    """The stored study this sweep continues: named, or the preset's name and a digest of preset and space."""
    if sweep.study:
        return sweep.study
    import hashlib

    blob = json.dumps([config.digest(), {k: v.model_dump() for k, v in sorted(space.items())},
                       sweep.seed, sweep.startup_trials, sweep.pruner_startup, sweep.warmup_epochs], sort_keys=True)
    return f"{config.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def study_storage(sweep: SweepConfig, tracking_uri: str) -> str:
    """Optuna's database: ``sweep.storage``, or one beside the MLflow store in the same family."""
    if sweep.storage:
        return sweep.storage
    parts = urlsplit(tracking_uri)
    if parts.scheme == "sqlite":
        path = Path(tracking_uri[len("sqlite:///"):])
        return f"sqlite:///{path.resolve().parent / 'optuna.db'}"
    if parts.scheme.startswith("postgresql"):
        database = parts.path.lstrip("/") or "postgres"
        return urlunsplit(parts._replace(path=f"/{database}_optuna"))
    raise SweepSpaceError(f"the MLflow store {parts.scheme}://{parts.hostname or ''} is not a database this sweep "
                          f"can sit beside: set the study's database (--storage sqlite:///... or "
                          f"postgresql://...)")
