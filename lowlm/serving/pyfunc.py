"""The one place lowlm meets MLflow: our models packaged as MLflow pyfunc models.

The model is logged "from code": MLflow stores this file and the classifier's plain files
(state dict, tokenizer JSON, model JSON) as artifacts, and nothing of ours is pickled. Loading:

>>> model = mlflow.pyfunc.load_model("models:/sentiment@champion")     # doctest: +SKIP
>>> model.predict(["what a lovely film", "dull and far too long"])     # doctest: +SKIP
   label     score   probabilities
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema

from lowlm.inference.bundle import load_bundle

TEXT_COLUMN = "text"


def _texts(model_input) -> list[str]:
    """Raw strings from what pyfunc hands us: a DataFrame with a text column, a Series, a list."""
    if isinstance(model_input, pd.DataFrame):
        if TEXT_COLUMN in model_input.columns:
            column = model_input[TEXT_COLUMN]
        elif model_input.shape[1] == 1:
            column = model_input.iloc[:, 0]
        else:
            raise ValueError(f"expected a '{TEXT_COLUMN}' column, got columns {list(model_input.columns)}")
        return column.tolist()
    if isinstance(model_input, pd.Series):
        return model_input.tolist()
    if isinstance(model_input, str):
        return [model_input]
    return list(model_input)


class LowlmPyfunc(PythonModel):
    """Raw strings in; the bundle answers for its kind (``Bundle.serve``): a classifier its label, score and
    per-class probabilities, a translator the generated text (``beam_size``, ``max_length`` as parameters)."""

    # No type hints on predict, and no MLflow type-hint validation: the explicit signature in
    # log_pyfunc validates inputs. This class attribute is how MLflow's own ChatModel opts out; it
    # also silences the "add type hints" warning on every class creation (every model load).
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        self.bundle = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        return pd.DataFrame(self.bundle.serve(_texts(model_input), params or {}))


def log_pyfunc(folder: str | Path, name: str = "model", input_example: list[str] | None = None,
               registered_model_name: str | None = None):
    """Log a bundle folder (any kind ``load_bundle`` knows) as a pyfunc model.

    Returns MLflow's ``ModelInfo``. The output signature comes from a real prediction on
    ``input_example``; the inference parameters are the bundle kind's ``serve_params``;
    requirements are the project's pinned packages.
    """
    folder = Path(folder)
    wrapper = LowlmPyfunc()
    wrapper.bundle = load_bundle(folder)
    defaults = wrapper.bundle.serve_params
    params = ParamSchema([ParamSpec(k, DataType.long, v) for k, v in defaults.items()]) if defaults else None
    example = list(input_example or ["an example sentence"])
    # One unnamed string column: a list of strings, a Series or a one-column DataFrame all pass.
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.string)]),
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


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("torch", "tokenizers", "pandas", "numpy", "mlflow")]


mlflow.models.set_model(LowlmPyfunc())
