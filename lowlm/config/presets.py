"""Presets: YAML files under ``configs/`` (or any path) loaded into the config their ``task`` declares,
with ``--set key=value`` overrides."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from lowlm.config.pipelines import PIPELINES
from lowlm.config.secrets import mask, mask_validation_error

CONFIGS_DIR = Path(__file__).resolve().parents[2] / "configs"


def load_pipeline_config(preset: str | Path, overrides: dict[str, object] | None = None,
                         model: type[BaseModel] | None = None):
    """A preset by name (``configs/NAME.yaml``) or a YAML path, with dotted ``overrides`` applied,
    validated as ``model`` (default: the config class of the ``task`` the preset declares).

    >>> load_pipeline_config("sample", {"train.epochs": 2}).train.epochs   # doctest: +SKIP
    2
    """
    path, raw = read_preset(preset)
    # a new kind (``--set model.kind=bag_of_ngrams``) starts from that kind's defaults: the preset's
    # other settings in that section belonged to the old kind
    for key, value in sorted((overrides or {}).items(), key=lambda kv: not kv[0].endswith(".kind")):
        section = get_dotted(raw, key.rsplit(".", 1)[0]) if key.endswith(".kind") else None
        if isinstance(section, dict) and section.get("kind") not in (None, value):
            section.clear()
        set_dotted(raw, key, value)
    model = model or PIPELINES[declared_task(path, raw)]
    try:
        return model.model_validate(raw)
    except Exception as exc:  # pydantic's message echoes values: secret-named ones are masked
        raise ValueError(f"{path}: invalid pipeline config:\n{mask_validation_error(str(exc))}") from None


def read_preset(preset: str | Path) -> tuple[Path, dict]:
    """The YAML of a preset (``configs/NAME.yaml``, looked up in the working folder first) or a path."""
    path = Path(preset)
    if not path.exists():
        candidates = [Path("configs") / f"{preset}.yaml", CONFIGS_DIR / f"{preset}.yaml"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no config file {preset!r} and no preset of that name; presets: {names}")
    if path.is_dir():
        raise ValueError(f"{path}: a folder, not a preset; give a YAML file or a preset name")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a UTF-8 text file (byte {exc.object[exc.start:exc.start + 1]!r} at offset "
                         f"{exc.start}); a preset is a YAML file") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {mask(str(exc))}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    return path, raw


def pipeline_task(preset: str | Path) -> str:
    """The ``task`` a preset declares (``classification``, ``seq2seq``, ...)."""
    path, raw = read_preset(preset)
    return declared_task(path, raw)


def declared_task(path: Path, raw: dict) -> str:
    task = raw.get("task")
    if task is None:
        raise ValueError(f"{path}: no 'task' setting; declare the kind of pipeline, one of "
                         f"{', '.join(PIPELINES)} (e.g. task: classification)")
    if task not in PIPELINES:
        raise ValueError(f"{path}: task {task!r} is not a kind of pipeline; expected one of {', '.join(PIPELINES)}")
    return task


def parse_override(item: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML: ``train.epochs=3`` -> ("train.epochs", 3)."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"--set: expected key=value, got {mask(item)!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as exc:
        why = str(getattr(exc, "problem", None) or exc).strip()
        raise ValueError(f"--set {key.strip()}: the value {mask(value)!r} is not valid YAML ({why}); quote a "
                         f"string, e.g. --set '{key.strip()}=\"{mask(value)}\"'") from None


def set_dotted(data: dict, dotted: str, value) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way.

    >>> d = {}; set_dotted(d, "train.epochs", 3); d
    {'train': {'epochs': 3}}
    """
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ValueError(f"cannot set {dotted}: {key} is not a mapping")
    data[keys[-1]] = value


def get_dotted(data: dict, dotted: str):
    """``data['a']['b']`` for ``dotted='a.b'``, or None.

    >>> get_dotted({"model": {"kind": "x"}}, "model.kind")
    'x'
    """
    for key in dotted.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data
