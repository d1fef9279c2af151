"""Register: package the model as a pyfunc, add a registry version, and let the gate pick its alias.

The alias ``champion`` moves to the new version only when its test metric beats the current
champion's on the same test data (same digest: the stored metric; other test data: the champion
is re-scored on ours). Otherwise the new version is ``challenger``. A model whose digest is already
registered is not registered again. If anything fails after the version is created, the version
is deleted: nothing half-written stays in the registry.
"""

from __future__ import annotations

import subprocess

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task

from lowlm.evaluation.metrics import accuracy, macro_f1
from lowlm.serving.pyfunc import log_pyfunc
from lowlm.evaluation.gate import CHAMPION, decide
from lowlm.evaluation.metrics import score_texts
from tasks._stage import Tracking, stage_run

def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_registered(model_uri: str, version: str | None = None):
    """``mlflow.pyfunc.load_model``, with a clear error for a version whose stored code cannot be
    imported beside this lowlm (registered before the library's layout changed)."""
    try:
        return mlflow.pyfunc.load_model(model_uri)
    except Exception as exc:  # MLflow wraps what the model's code raised
        missing = exc
        while missing is not None and not isinstance(missing, ImportError):
            missing = missing.__cause__ or missing.__context__
        if missing is None or not (missing.name or "").startswith("lowlm"):
            raise
        raise RuntimeError(
            f"{model_uri}{f' (version {version})' if version else ''} was registered by an older lowlm: its stored "
            f"code needs what this lowlm does not have ({missing}), so it cannot be loaded (or re-scored) here. "
            f"Re-register: drop its alias (mlflow.MlflowClient().delete_registered_model_alias(NAME, 'champion')) "
            f"and run its preset again (`lowlm run PRESET`)"
        ) from exc


def _score(model_uri: str, corpus: dict, task: str, metric: str, bleu_tokenize: str = "13a",
           version: str | None = None) -> float:
    """The metric of a registered model on this run's test split (classification or generation)."""
    test = pd.read_parquet(corpus["splits"]["test"])
    model = load_registered(model_uri, version)
    if task == "seq2seq":
        generated = model.predict(test["source"].tolist())["generated"].tolist()
        return score_texts(metric, generated, test["target"].tolist(), bleu_tokenize)
    predicted = model.predict(test["text"].tolist())["label"].tolist()
    labels = list(corpus["labels"])
    index = {name: i for i, name in enumerate(labels)}
    y_true = [index[x] for x in test["label"]]
    unknown = len(labels)  # a label the champion knows but this data doesn't: always wrong
    y_pred = [index.get(x, unknown) for x in predicted]
    if metric == "accuracy":
        return accuracy(y_true, y_pred)
    return macro_f1(y_true, y_pred, len(labels) + 1)


def champion_metric(client: MlflowClient, name: str, corpus: dict, task: str, metric: str,
                    bleu_tokenize: str = "13a") -> tuple[str | None, float | None, str]:
    """(champion version, its metric on our test data, how we got it); (None, None, why) if no champion."""
    try:
        champion = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None, "no champion yet"
    stored = champion.tags.get(f"test_{metric}")
    if champion.tags.get("test_digest") == corpus["digests"]["test"] and stored is not None:
        return str(champion.version), float(stored), "stored metric on the same test digest"
    score = _score(f"models:/{name}@{CHAMPION}", corpus, task, metric, bleu_tokenize, str(champion.version))
    return str(champion.version), score, "re-scored on this test split"


@task(name="register")
def register(corpus: dict, trained: dict, evaluation: dict, task: str, model_name: str, metric: str,
             config_hash: str, data_digests: dict, tracking: Tracking) -> dict:
    """``task``: the pipeline's declared kind (``classification``, ``seq2seq``), which says how the
    champion is re-scored."""
    client = MlflowClient(tracking.uri)
    with stage_run(tracking, "register"):
        existing = client.search_model_versions(f"name = '{model_name}'") if _exists(client, model_name) else []
        same = [v for v in existing if v.tags.get("model_digest") == trained["digest"]]
        if same:
            version = client.get_model_version(model_name, same[0].version)
            aliases = list(version.aliases)
            mlflow.set_tags({"decision": "already registered", "version": version.version})
            return {"name": model_name, "version": str(version.version), "alias": aliases[0] if aliases else None,
                    "new": False, "reason": f"model digest {trained['digest']} is already version {version.version}"}
        ours = evaluation["metrics"][f"test_{metric}"]
        champ_version, champ_score, how = champion_metric(client, model_name, corpus, task, metric,
                                                          evaluation.get("bleu_tokenize", "13a"))
        test = pd.read_parquet(corpus["splits"]["test"])
        sample = test["source" if task == "seq2seq" else "text"].head(3).tolist()
        info = log_pyfunc(trained["model_dir"], input_example=sample)
        version = None
        try:
            version = mlflow.register_model(info.model_uri, model_name)
            tags = {"model_digest": trained["digest"], "config_hash": config_hash, "git_commit": git_commit(),
                    "test_digest": corpus["digests"]["test"], "train_run_id": trained["run_id"],
                    **{f"data_digest.{k}": v for k, v in data_digests.items()},
                    **{k: f"{v:.6f}" for k, v in evaluation["metrics"].items()}}
            for key, value in tags.items():
                client.set_model_version_tag(model_name, version.version, key, value)
            alias = decide(ours, champ_score).alias
            reason = (f"{how}; new test_{metric} {ours:.4f} vs champion v{champ_version} {champ_score:.4f}"
                      if champ_score is not None else how)
            client.set_registered_model_alias(model_name, alias, version.version)
            client.set_model_version_tag(model_name, version.version, "gate", reason)
        except BaseException:
            if version is not None:
                client.delete_model_version(model_name, version.version)
            raise
        mlflow.set_tags({"decision": alias, "reason": reason, "version": version.version})
        mlflow.log_metrics({"new_metric": ours, **({"champion_metric": champ_score} if champ_score is not None else {})})
        return {"name": model_name, "version": str(version.version), "alias": alias, "new": True, "reason": reason}


def _exists(client: MlflowClient, name: str) -> bool:
    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False
