"""The one place lowlm meets MLflow: our models packaged as MLflow pyfunc models.

The model is logged "from code": MLflow stores this file and the bundle's plain files (state dict,
tokenizer JSON, bundle.json) as artifacts, and nothing of ours is pickled. Loading:

>>> model = mlflow.pyfunc.load_model("models:/sentiment@champion")                   # doctest: +SKIP
>>> model.predict(pd.DataFrame({"text": ["what a lovely film", "dull and far too long"]}))  # doctest: +SKIP
   label     score   probabilities
>>> load("models:/sentiment@champion").predict(["what a lovely film"])             # doctest: +SKIP

(``load`` wraps the model so that a plain list of strings works too; see "Input".)

Input. The signature names one required string column, ``text``. MLflow enforces it first;
``model_texts`` then checks again, as the final guard (MLflow's checks can be bypassed):

- a DataFrame with a ``text`` column (REST ``dataframe_split`` / ``dataframe_records``); other
  columns (an ``id``, ...) are ignored; a frame without ``text`` is refused, naming its columns;
- a Series named ``text``, a list of ``{"text": ...}`` records, REST ``{"inputs": [strings]}``;
- a plain list (or Series, 1-d array) of strings when this class is called directly. Through
  ``mlflow.pyfunc.load_model``, MLflow 3.17 refuses a plain list against a named column ("Model is
  missing inputs ['text']"): pass ``pd.DataFrame({"text": texts})``, which older versions (logged
  with one unnamed column) take too.

A reader (extractive QA) names two string columns instead, ``context`` and ``question``: a DataFrame
with both, a list of ``{"context": ..., "question": ...}`` records or a dict of two lists
(``model_columns``; errors name the column and the row).

Limits, read from the environment when the model loads: at most ``LOWLM_MAX_ROWS`` rows per request
(default 10,000) and ``LOWLM_MAX_CHARS`` characters per text (default 20,000). Over a limit is an
error naming it; nothing is truncated.

Bad input raises ``InputError``: a ``ValueError`` (``InputTypeError``, also a ``TypeError``, for an
item that is not a string or is missing) and an ``MlflowException`` with INVALID_PARAMETER_VALUE, so
``mlflow models serve`` answers 400 with its message, which names the position (``input 3: ...``),
the columns or the limit. A string holding a lone surrogate (JSON can carry one as a ``\\ud800``
escape) is refused too: the tokenizers cannot read it. What MLflow's enforcement refuses first
raises MLflow's ``MlflowException`` (no ``text`` column, a numeric one, a plain list). MLflow's
REST parser casts ``{"inputs": [...]}`` to strings before the model sees it (1 -> "1", null ->
"None"); lowlm's server (``flows.model_server``, ``lowlm serve-model``) checks those items before
MLflow parses them, so REST and Python agree; a bare ``mlflow models serve`` answers them.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature, infer_signature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from lowlm.inference.bundle import check_texts, load_bundle

TEXT_COLUMN = "text"
MAX_ROWS, MAX_CHARS = 10_000, 20_000  # defaults for LOWLM_MAX_ROWS / LOWLM_MAX_CHARS


class InputError(MlflowException, ValueError):
    """A request the model does not answer; REST serving turns it into a 400 with this message."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


class InputTypeError(InputError, TypeError):
    """An input item that is not a string (or is missing)."""


def limits_from_env(environ=os.environ) -> tuple[int, int]:
    """(max rows per request, max characters per text) from LOWLM_MAX_ROWS / LOWLM_MAX_CHARS.

    >>> limits_from_env({}), limits_from_env({"LOWLM_MAX_ROWS": "50"})
    ((10000, 20000), (50, 20000))
    """
    out = []
    for name, default in (("LOWLM_MAX_ROWS", MAX_ROWS), ("LOWLM_MAX_CHARS", MAX_CHARS)):
        raw = environ.get(name, "").strip()
        try:
            value = int(raw) if raw else default
        except ValueError:
            value = 0
        if value < 1:
            raise ValueError(f"{name}={raw!r}: expected a positive whole number (default {default})")
        out.append(value)
    return out[0], out[1]


def model_texts(model_input, max_rows: int = MAX_ROWS, max_chars: int = MAX_CHARS) -> list[str]:
    """The raw strings in what pyfunc hands us, or an ``InputError`` saying what is wrong.

    >>> model_texts(pd.DataFrame({"id": [7], "text": ["hello"]}))
    ['hello']
    >>> model_texts(pd.DataFrame({"id": [7], "sentence": ["hello"]}))
    Traceback (most recent call last):
    ...
    lowlm.serving.pyfunc.InputError: expected a 'text' column; got columns ['id', 'sentence']
    >>> model_texts(["ok", None])
    Traceback (most recent call last):
    ...
    lowlm.serving.pyfunc.InputTypeError: input 1: expected a string, got None (a missing value)
    """
    items = _items(model_input)
    if len(items) > max_rows:
        raise InputError(f"{len(items)} rows in one request; this model answers at most {max_rows} "
                         f"(LOWLM_MAX_ROWS); split the request")
    try:
        texts = check_texts(items)
    except TypeError as exc:
        raise InputTypeError(str(exc)) from None
    except ValueError as exc:
        raise InputError(str(exc)) from None
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise InputError(f"input {i}: {len(text)} characters; this model takes at most {max_chars} "
                             f"per text (LOWLM_MAX_CHARS)")
    return texts


def model_columns(model_input, columns: tuple[str, ...], max_rows: int = MAX_ROWS,
                  max_chars: int = MAX_CHARS) -> dict[str, list[str]]:
    """For a model of several string columns (a reader: ``context`` and ``question``): column -> strings,
    from a DataFrame with those columns (others ignored), a list of records, or a dict of lists; or an
    ``InputError`` naming the column and row.

    >>> model_columns([{"context": "Paris is in France.", "question": "Where is Paris?"}], ("context", "question"))
    {'context': ['Paris is in France.'], 'question': ['Where is Paris?']}
    >>> model_columns(pd.DataFrame({"context": ["x"]}), ("context", "question"))
    Traceback (most recent call last):
    ...
    lowlm.serving.pyfunc.InputError: expected the columns ['context', 'question']; got ['context'] (no 'question')
    """
    if isinstance(model_input, dict):
        model_input = pd.DataFrame(model_input)
    elif isinstance(model_input, (list, tuple)):
        for i, row in enumerate(model_input):
            if not isinstance(row, dict):
                raise InputTypeError(f"input {i}: expected a record with {list(columns)}, got {type(row).__name__}")
        model_input = pd.DataFrame.from_records(list(model_input), columns=None)
    if not isinstance(model_input, pd.DataFrame):
        raise InputTypeError(f"expected a DataFrame with the columns {list(columns)} or a list of records, "
                             f"got {type(model_input).__name__}")
    got = list(model_input.columns)
    missing = [c for c in columns if got.count(c) != 1]
    if missing:
        raise InputError(f"expected the columns {list(columns)}; got {got[:20]} "
                         f"({', '.join(f'no {c!r}' if c not in got else f'{c!r} twice' for c in missing)})")
    if len(model_input) > max_rows:
        raise InputError(f"{len(model_input)} rows in one request; this model answers at most {max_rows} "
                         f"(LOWLM_MAX_ROWS); split the request")
    out = {}
    for column in columns:
        try:
            out[column] = check_texts(model_input[column].tolist())
        except TypeError as exc:
            raise InputTypeError(f"{column}, {exc}") from None
        except ValueError as exc:
            raise InputError(f"{column}, {exc}") from None
        for i, text in enumerate(out[column]):
            if len(text) > max_chars:
                raise InputError(f"{column}, input {i}: {len(text)} characters; this model takes at most "
                                 f"{max_chars} per text (LOWLM_MAX_CHARS)")
    return out


def _items(model_input) -> list:
    if isinstance(model_input, pd.DataFrame):
        columns = list(model_input.columns)
        if columns.count(TEXT_COLUMN) != 1:
            problem = "more than one" if TEXT_COLUMN in columns else "a"
            raise InputError(f"expected {problem} '{TEXT_COLUMN}' column; got columns {columns[:20]}"
                             + (f" (and {len(columns) - 20} more)" if len(columns) > 20 else ""))
        return model_input[TEXT_COLUMN].tolist()
    if isinstance(model_input, (pd.Series, np.ndarray)):
        if getattr(model_input, "ndim", 1) != 1:
            raise InputError(f"expected a 1-d array of strings, got shape {model_input.shape}")
        return model_input.tolist()
    if isinstance(model_input, (list, tuple)):
        return list(model_input)
    if isinstance(model_input, str):
        raise InputTypeError("expected a list of strings, got one string; wrap it in a list")
    raise InputTypeError(f"expected a DataFrame with a '{TEXT_COLUMN}' column or a list of strings, "
                         f"got {type(model_input).__name__}")


class LowlmPyfunc(PythonModel):
    """Raw strings in; the bundle answers for its kind (``Bundle.serve``): a classifier its label, score and
    per-class probabilities, a translator the generated text (``beam_size``, ``max_length`` as parameters)."""

    # No type hints on predict, and no MLflow type-hint validation: the explicit signature in
    # log_pyfunc validates inputs. This class attribute is how MLflow's own ChatModel opts out; it
    # also silences the "add type hints" warning on every class creation (every model load).
    _skip_type_hint_validation = True
    max_rows, max_chars = MAX_ROWS, MAX_CHARS

    def load_context(self, context) -> None:
        self.max_rows, self.max_chars = limits_from_env()
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        columns = self.bundle.input_columns
        if columns == (TEXT_COLUMN,):
            inputs = model_texts(model_input, self.max_rows, self.max_chars)
        else:
            inputs = model_columns(model_input, columns, self.max_rows, self.max_chars)
        return pd.DataFrame(self.bundle.serve(inputs, params or {}))


def log_pyfunc(folder: str | Path, name: str = "model", input_example: list[str] | list[dict] | None = None,
               registered_model_name: str | None = None, param_defaults: dict | None = None):
    """Log a bundle folder (any kind ``load_bundle`` knows) as a pyfunc model.

    Returns MLflow's ``ModelInfo``. The input signature is the bundle kind's named string columns
    (``text``; a reader's ``context`` and ``question``, whose ``input_example`` is a list of records);
    the output signature comes from a real prediction on ``input_example`` (logged as a frame); the
    inference parameters are the bundle kind's ``serve_params``; requirements are the project's
    pinned packages.
    """
    folder = Path(folder)
    wrapper = LowlmPyfunc()
    wrapper.bundle = load_bundle(folder)
    # the kind's inference parameters; ``param_defaults`` (e.g. the decoding chosen on validation) override
    # their defaults, so what is served by default is what was evaluated
    defaults = {**wrapper.bundle.serve_params, **{k: v for k, v in (param_defaults or {}).items()
                                                  if k in wrapper.bundle.serve_params}}
    params = ParamSchema([ParamSpec(k, DataType.double if isinstance(v, float) else DataType.long,
                                    type(wrapper.bundle.serve_params[k])(v)) for k, v in defaults.items()]) \
        if defaults else None
    # a frame, not a list: MLflow validates the example against the named signature, and a list
    # becomes a frame whose one column is called 0
    columns = wrapper.bundle.input_columns
    if columns == (TEXT_COLUMN,):
        example = pd.DataFrame({TEXT_COLUMN: list(input_example or ["an example sentence"])})
    else:
        example = pd.DataFrame.from_records(list(input_example or [{c: f"an example {c}" for c in columns}]),
                                            columns=list(columns))
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.string, c) for c in columns]),
                               outputs=infer_signature(example, wrapper.predict(None, example)).outputs,
                               params=params)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__)),
        artifacts={"bundle": str(folder)},
        code_paths=[str(Path(__file__).resolve().parents[1])],  # the lowlm package, stored beside the model
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
        registered_model_name=registered_model_name,
    )


class TextModel:
    """A loaded pyfunc model that also takes a plain list (or Series, or one string) of texts: it wraps
    them as the ``text`` column the signature names before MLflow checks them. ``lowlm predict`` and the
    pipeline's tasks load models this way (``load``); ``metadata`` and ``unwrap_python_model`` pass through."""

    def __init__(self, model):
        self.model = model

    def predict(self, data, params=None) -> pd.DataFrame:
        if isinstance(data, str):
            data = [data]
        if isinstance(data, (list, tuple)) and data and all(isinstance(row, dict) for row in data):
            data = pd.DataFrame.from_records(list(data))  # records: a reader's context and question
        elif isinstance(data, (list, tuple, np.ndarray)) or (isinstance(data, pd.Series) and data.name != TEXT_COLUMN):
            data = pd.DataFrame({TEXT_COLUMN: pd.Series(list(data), dtype=object)})
        return self.model.predict(data, params=params)

    def __getattr__(self, name):
        return getattr(self.model, name)


def load(model_uri: str | Path) -> TextModel:
    """``mlflow.pyfunc.load_model`` (a model URI or a local folder), as a ``TextModel``: plain lists work.

    >>> load("models:/intents@champion").predict(["my card was declined"])    # doctest: +SKIP
    """
    return TextModel(mlflow.pyfunc.load_model(str(model_uri)))


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("torch", "tokenizers", "pandas", "numpy", "mlflow")]


if __name__ != "lowlm.serving.pyfunc":
    # MLflow runs this file as the model's code under a module name of its own (code_model_<id>);
    # serve the importable class instead, so what a loaded model raises is lowlm's InputError
    from lowlm.serving.pyfunc import LowlmPyfunc
mlflow.models.set_model(LowlmPyfunc())
