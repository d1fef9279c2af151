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

from lowlm.predictor import MODEL, TOKENIZER, WEIGHTS, TextClassifier
from lowlm.translator import SOURCE, TARGET, Translator

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
    """Raw strings in. A classifier answers label, score and per-class probabilities per input; a
    sequence-to-sequence model answers the generated text, with ``beam_size`` and ``max_length`` as
    inference parameters."""

    # No type hints on predict, and no MLflow type-hint validation: the explicit signature in
    # log_pyfunc validates inputs. This class attribute is how MLflow's own ChatModel opts out; it
    # also silences the "add type hints" warning on every class creation (every model load).
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        art = context.artifacts
        if "source_tokenizer" in art:
            self.model = Translator.from_files(art["weights"], art["source_tokenizer"], art["target_tokenizer"],
                                               art["model"])
        else:
            self.model = TextClassifier.from_files(art["weights"], art["tokenizer"], art["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        texts = _texts(model_input)
        if isinstance(self.model, Translator):
            params = {**DECODING, **(params or {})}
            out = self.model.translate(texts, beam_size=int(params["beam_size"]), max_length=int(params["max_length"]))
            return pd.DataFrame({"generated": out})
        rows = self.model.predict(texts)
        return pd.DataFrame({
            "label": [r["label"] for r in rows],
            "score": [r["score"] for r in rows],
            "probabilities": [r["probabilities"] for r in rows],
        })


DECODING = {"beam_size": 5, "max_length": 80}


def log_pyfunc(folder: str | Path, name: str = "model", input_example: list[str] | None = None,
               registered_model_name: str | None = None):
    """Log a folder written by ``TextClassifier.save`` or ``Translator.save`` as a pyfunc model.

    Returns MLflow's ``ModelInfo``. The output signature comes from a real prediction on
    ``input_example``; requirements are the project's pinned packages (no slow inference).
    """
    folder = Path(folder)
    wrapper = LowlmPyfunc()
    if (folder / SOURCE).exists():
        wrapper.model = Translator.load(folder)
        artifacts = {"weights": WEIGHTS, "source_tokenizer": SOURCE, "target_tokenizer": TARGET, "model": MODEL}
        params = ParamSchema([ParamSpec(key, DataType.long, value) for key, value in DECODING.items()])
    else:
        wrapper.model = TextClassifier.load(folder)
        artifacts = {"weights": WEIGHTS, "tokenizer": TOKENIZER, "model": MODEL}
        params = None
    example = list(input_example or ["an example sentence"])
    # One unnamed string column: a list of strings, a Series or a one-column DataFrame all pass.
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.string)]),
                               outputs=infer_signature(example, wrapper.predict(None, example)).outputs,
                               params=params)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__)),
        artifacts={key: str(folder / file) for key, file in artifacts.items()},
        code_paths=[str(Path(__file__).parent)],
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
        registered_model_name=registered_model_name,
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("torch", "tokenizers", "pandas", "numpy", "mlflow")]


mlflow.models.set_model(LowlmPyfunc())
