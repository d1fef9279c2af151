"""The one place lowlm meets MLflow: a text classifier packaged as an MLflow pyfunc model.

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
from mlflow.types import ColSpec, DataType, Schema

from lowlm.predictor import MODEL, TOKENIZER, WEIGHTS, TextClassifier

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


class ClassifierPyfunc(PythonModel):
    """Raw strings in; label, score and per-class probabilities out (one row per input)."""

    def load_context(self, context) -> None:
        art = context.artifacts
        self.classifier = TextClassifier.from_files(art["weights"], art["tokenizer"], art["model"])

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        rows = self.classifier.predict(_texts(model_input))
        return pd.DataFrame({
            "label": [r["label"] for r in rows],
            "score": [r["score"] for r in rows],
            "probabilities": [r["probabilities"] for r in rows],
        })


def log_classifier(folder: str | Path, name: str = "model", input_example: list[str] | None = None,
                   registered_model_name: str | None = None):
    """Log a folder written by ``TextClassifier.save`` as a pyfunc model in the active run.

    Returns MLflow's ``ModelInfo``. The signature is inferred from a real prediction on
    ``input_example``; requirements are the project's pinned packages (no slow inference).
    """
    folder = Path(folder)
    classifier = TextClassifier.load(folder)
    example = list(input_example or ["an example sentence"])
    output = ClassifierPyfunc()
    output.classifier = classifier
    # One unnamed string column: a list of strings, a Series or a one-column DataFrame all pass.
    signature = ModelSignature(inputs=Schema([ColSpec(DataType.string)]),
                               outputs=infer_signature(example, output.predict(None, example)).outputs)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=str(Path(__file__)),
        artifacts={"weights": str(folder / WEIGHTS), "tokenizer": str(folder / TOKENIZER),
                   "model": str(folder / MODEL)},
        code_paths=[str(Path(__file__).parent)],
        signature=signature,
        input_example=example,
        pip_requirements=_requirements(),
        registered_model_name=registered_model_name,
    )


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{pkg}=={version(pkg)}" for pkg in ("torch", "tokenizers", "pandas", "numpy", "mlflow")]


mlflow.models.set_model(ClassifierPyfunc())
