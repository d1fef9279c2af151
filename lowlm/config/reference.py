"""The configuration reference, written from the pydantic models themselves: ``docs/config.md``.

Every setting of every pipeline, with its type, default and description, section by section, and
which stages run for each ``task``. ``python -m lowlm.config.reference > docs/config.md``
regenerates it; a test checks that the file in the repository is what the models say.
"""

from __future__ import annotations

import sys
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from lowlm.config.models import BagOfNgramsConfig, RNNAttentionConfig
from lowlm.config.pipelines import PIPELINES
from lowlm.config.sweep import Choice, Range, SweepConfig

# Which stages a pipeline of each task runs (flows/classification.py, flows/seq2seq.py), and when.
STAGES = {
    "classification": [
        ("ingest", "always", "read, check and split the corpus; digests"),
        ("ingest-fewshot", "`fewshot.enabled`", "the second corpus, read and checked before anything trains"),
        ("tokenize", "always", "fit the tokenizer on train; unknown-token rate of validation"),
        ("augment", "`augment.enabled` (else train as it is)", "nlpaug copies of train rows"),
        ("probe", "`attack.generate.enabled` and no champion to attack",
         "a quick model (`attack.generate.probe_epochs`) for the adversarial stage to attack"),
        ("adversarial", "`attack.generate.enabled`",
         "attack the champion (or the probe) on sampled train rows; the examples that fool it join training"),
        ("train", "always", "fit the model (`train.perturbation`: FGM/PGD/FreeLB; `attack.refresh`: adversarial rows "
                            "re-generated every N epochs); checkpoints every epoch (`lowlm run --resume`)"),
        ("fewshot", "`fewshot.enabled`", "k examples per class of the second corpus"),
        ("evaluate", "always", "test metrics, majority baseline, plots"),
        ("evaluate-attack", "`attack.enabled`", "the new model under the attack on validation and test; "
                                                "per-example table"),
        ("register", "always", "pyfunc model, registry version, champion/challenger gate "
                               "(`registry.min_attacked_accuracy`)"),
    ],
    "seq2seq": [
        ("ingest", "always", "read, filter, dedupe and split the pairs; digests"),
        ("tokenize", "always", "source and target (or joint) tokenizers"),
        ("augment", "`augment.enabled` (else train as it is)", "noise on training sources"),
        ("train", "always", "fit the encoder-decoder; checkpoints every epoch"),
        ("evaluate", "always", "BLEU, chrF, ROUGE, attention maps; the metric's drop under source noise "
                               "(`robustness`)"),
        ("register", "always", "pyfunc model, registry version, champion/challenger gate"),
    ],
}


def type_name(annotation: Any) -> str:
    """A readable type: ``int``, ``str | None``, ``'word' | 'bpe'``, ``list[str]``."""
    origin = get_origin(annotation)
    if annotation is type(None):
        return "null"
    if origin is Literal:
        return " \\| ".join(repr(a) for a in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in get_args(annotation))
    if origin is typing.Annotated:
        return type_name(get_args(annotation)[0])
    if origin in (list, dict, tuple, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in get_args(annotation))}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
    return getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return f"{type(value).__name__} defaults"
    return f"`{value!r}`"


def _models(model: type[BaseModel], seen: dict[str, type[BaseModel]]) -> None:
    if model.__name__ in seen:
        return
    seen[model.__name__] = model
    for field in model.model_fields.values():
        for candidate in _nested(field.annotation):
            _models(candidate, seen)


def _nested(annotation) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _nested(arg)]


def section(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
    rows = [f"### {model.__name__}", "", doc, "", "| setting | type | default | description |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        rows.append(f"| `{name}` | {type_name(field.annotation)} | {_default(field)} | {description} |")
    return "\n".join(rows) + "\n"


def reference() -> str:
    """The whole reference as Markdown."""
    out = ["# Configuration reference", "",
           "Generated from the pydantic models by `python -m lowlm.config.reference > docs/config.md`; a test "
           "keeps it current. A preset (YAML under `configs/`) or `--set key=value` sets any of these; "
           "`lowlm validate PRESET` checks a config and its corpus without training.", ""]
    out += ["## Stages each task runs", ""]
    for task, stages in STAGES.items():
        out += [f"**{task}** (`{PIPELINES[task].__name__}`)", "", "| stage | runs when | what it does |",
                "|---|---|---|"]
        out += [f"| {name} | {when} | {what} |" for name, when, what in stages]
        out.append("")
    out += ["## Settings", ""]
    seen: dict[str, type[BaseModel]] = {}
    for config in PIPELINES.values():
        _models(config, seen)
    for kind in (RNNAttentionConfig, BagOfNgramsConfig):  # the classifier kinds (a union on `kind`)
        _models(kind, seen)
    out += [section(model) for model in seen.values()]
    out += ["## Sweeps", "", "`lowlm sweep PRESET --space FILE`: the YAML file holds these settings; the command's "
            "options (`--trials`, `--workers`, `--runner`, `--address`, `--study`, `--storage`) win over it. A "
            "`space` key is a dotted `model.*` or `train.*` setting of the preset, valued by a `Range` or a "
            "`Choice`.", ""]
    sweep_models: dict[str, type[BaseModel]] = {}
    for model in (SweepConfig, Range, Choice):
        _models(model, sweep_models)
    out += [section(model) for name, model in sweep_models.items() if name not in seen]
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    sys.stdout.write(reference())
