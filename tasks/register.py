"""Register: package the model as a pyfunc, add a registry version, and let the gate pick its alias.

The alias ``champion`` moves to the new version only when its test metric beats the current
champion's on the same test data (same digest: the stored metric; other test data: the champion
is re-scored on ours); the champion it replaces becomes ``challenger``. Otherwise the new version is
``challenger``. A model whose digest is already registered is not registered again. If anything fails
after the version is created, the version is deleted: nothing half-written stays in the registry.

Two registrations of one model at once (two flows, two hosts) must not both read the old champion:
``gate`` reads, compares and moves the aliases under the model's lock (``tasks.champion_lock``), so the
second one compares with whatever the first decided. Where the store allows no lock (an MLflow server
over http), it compares-and-sets instead: just before writing it checks that the champion is still the
one it compared with, and after writing it re-reads the alias; if another version took it, it compares
with that one by the rule both sides apply (``rematch``: higher metric wins, a tie goes to the lower
version number) and writes again, until two re-reads (``SETTLE_S`` to ``2 * SETTLE_S`` apart) find the
alias where it left it. Its limits: a process can still report (and tag) an outcome that the other one
corrects after its last re-read; a writer stalled for longer than those re-reads between its check and
its write can still overwrite a finished decision; the champion history can miss a step. The registry
converges when both processes run to the end, but only the lock makes the decision a single step.
"""

from __future__ import annotations

import math
import random
import subprocess
import time

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from prefect import task

from lowlm.evaluation.gate import CHALLENGER, CHAMPION, Verdict, decide, rematch
from lowlm.evaluation.metrics import accuracy, macro_f1, score_texts
from lowlm.evaluation.squad import squad_scores
from lowlm.serving.pyfunc import TEXT_COLUMN, load, log_pyfunc
from tasks._stage import Tracking, stage_run
from tasks.champion import SETTLE_S, _upserted, aliases, crown, registry_uri
from tasks.champion_lock import ChampionLock, champion_lock
from tasks.integrity import tag_digests, verified_copy
from tasks.model_card import description, model_card
from tasks.registry import model_versions

LOWER_IS_BETTER = {"perplexity"}  # gate metrics where the smaller value wins


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10, check=False).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def load_registered(model_uri: str, version: str | None = None, tracking_uri: str | None = None):
    """``mlflow.pyfunc.load_model`` of a copy checked against the version's digests first
    (``tasks.integrity``: a changed model raises ``IntegrityError`` before any of its code runs), with
    a clear error for a version whose stored code cannot be imported beside this lowlm (registered
    before the library's layout changed)."""
    local, _ = verified_copy(model_uri, tracking_uri or mlflow.get_tracking_uri())
    try:
        return load(local)  # plain lists of texts work too
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
    # one text column: what a named input signature needs, and what an unnamed one (older versions) takes
    if task == "seq2seq":
        generated = model.predict(pd.DataFrame({TEXT_COLUMN: test["source"]}))["generated"].tolist()
        return score_texts(metric, generated, test["target"].tolist(), bleu_tokenize)
    if task == "qa":  # SQuAD's exact match or F1, in points
        answers = model.predict(test[["context", "question"]])["answer"].tolist()
        return squad_scores(answers, [list(a) for a in test["answers"]])[metric]
    if task == "lm":  # corpus perplexity: per predicted token over all the test texts
        scored = model.predict(pd.DataFrame({TEXT_COLUMN: test["text"]}))
        return math.exp(-scored["log_prob"].sum() / scored["tokens"].sum())
    predicted = model.predict(pd.DataFrame({TEXT_COLUMN: test["text"]}))["label"].tolist()
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


def gate(client: MlflowClient, name: str, version: str, ours: float, corpus: dict, task: str, metric: str,
         bleu_tokenize: str = "13a", refused: str | None = None) -> dict:
    """Give new ``version`` (its test metric ``ours``) its alias: read the champion, compare, move the
    aliases and tag the version's ``gate`` reason, all under the model's lock (or compare-and-set where
    there is none). ``refused``: why the version may not be champion whatever it scores (a requirement
    it fails). Returns ``{alias, reason, champion_version, champion_score}``."""
    def decision(recheck: bool = False) -> dict:
        return _decision(client, name, version, ours, corpus, task, metric, bleu_tokenize, recheck, refused)

    with champion_lock(registry_uri(client), name) as lock:
        outcome = decision()
        before = outcome["champion_version"]
        try:
            if lock is not None:
                _apply(client, name, version, outcome, lock)
            else:
                outcome = _compare_and_set(client, name, version, outcome, decision)
        except BaseException:
            # the version is deleted next (and its aliases with it): the old champion keeps its alias
            if before is not None and aliases(client, name).get(CHAMPION) == str(version):
                client.set_registered_model_alias(name, CHAMPION, before)
            raise
    return outcome


def _decision(client: MlflowClient, name: str, version: str, ours: float, corpus: dict, task: str, metric: str,
              bleu_tokenize: str, recheck: bool, refused: str | None = None) -> dict:
    """Compare with the champion as it is now. ``recheck`` (compare-and-set, another version took the
    alias meanwhile): the rule both sides apply alike, a tie going to the lower version number."""
    champ_version, champ_score, how = champion_metric(client, name, corpus, task, metric, bleu_tokenize)
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0  # the rule compares "higher is better"
    theirs = None if champ_score is None else sign * champ_score
    verdict = (rematch(sign * ours, int(version), theirs, int(champ_version))
               if recheck and champ_score is not None else decide(sign * ours, theirs))
    reason = how if champ_score is None else (
        f"{how}; new test_{metric} {ours:.4f} vs champion v{champ_version} {champ_score:.4f}"
        + (f" (re-checked: v{champ_version} took the alias meanwhile)" if recheck else ""))
    if refused:
        verdict, reason = Verdict(CHALLENGER, False), f"{refused}; {reason}"
    return {"alias": verdict.alias, "champion_version": champ_version,
            "champion_score": champ_score, "reason": reason}


def _apply(client: MlflowClient, name: str, version: str, outcome: dict, lock: ChampionLock | None) -> None:
    if lock is not None:
        lock.check()
    client.set_model_version_tag(name, version, "gate", outcome["reason"])
    if outcome["alias"] == CHAMPION:
        crown(client, name, str(version), outcome["champion_version"], lock)
    else:
        if lock is not None:
            lock.check()
        _upserted(client.set_registered_model_alias, name, CHALLENGER, version)


def _compare_and_set(client: MlflowClient, name: str, version: str, outcome: dict, decision,
                     rounds: int = 10) -> dict:
    """Write ``outcome`` if the champion is still the one it was decided against (else decide again
    against the new one), then re-read until two reads in a row find the champion where we left it."""
    written, steady = False, 0
    for _ in range(rounds):
        holder = aliases(client, name).get(CHAMPION)
        left = str(version) if outcome["alias"] == CHAMPION else outcome["champion_version"]
        if written and holder == left:
            steady += 1
            if steady == 2:
                break
        elif holder == str(version):  # made champion by someone else (a promote): nothing to compare
            return {**outcome, "alias": CHAMPION}
        else:
            if holder != outcome["champion_version"]:  # moved since we read it
                outcome = decision(recheck=True)
            _apply(client, name, version, outcome, None)
            written, steady = True, 0
        time.sleep(SETTLE_S * (1 + random.random()))
    return outcome


def _log_model(model_dir: str, sample: list[str], decoding: dict | None = None):
    """``log_pyfunc`` in the active run (``decoding``: the serving defaults chosen on validation); if it
    fails (a full disk, say), the half-written logged model's files are removed from a local artifact
    store, and the cause is raised."""
    try:
        return log_pyfunc(model_dir, input_example=sample, param_defaults=decoding)
    except BaseException:
        _remove_partial_models(mlflow.active_run().info.run_id)
        raise


def _plots(client: MlflowClient, run_id: str) -> list[str]:
    """Artifact paths of the training run's plots (for the model card)."""
    try:
        return [f"runs:/{run_id}/{a.path}" for a in client.list_artifacts(run_id, "plots")]
    except MlflowException:
        return []


def _remove_partial_models(run_id: str) -> None:
    import shutil
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    try:
        models = mlflow.search_logged_models(filter_string=f"source_run_id = '{run_id}'", output_format="list")
    except Exception:  # noqa: BLE001 -- cleaning up must not hide the cause
        return
    for model in models:
        location = urlparse(model.artifact_location or "")
        if str(model.status).upper().endswith("READY") or location.scheme not in ("", "file"):
            continue
        shutil.rmtree(url2pathname(location.path), ignore_errors=True)


def robustness_requirement(metrics: dict, minimum: float | None) -> str | None:
    """Why a version may not become champion under ``registry.min_attacked_accuracy`` (None: it may).

    >>> robustness_requirement({"val_attacked_accuracy": 0.30}, 0.4)
    'val_attacked_accuracy 0.3000 is below registry.min_attacked_accuracy 0.4000'
    >>> robustness_requirement({"val_attacked_accuracy": 0.50}, 0.4) is None
    True
    """
    if minimum is None:
        return None
    value = metrics.get("val_attacked_accuracy")
    if value is None:
        return "no accuracy under attack was measured (attack.enabled is false) but registry.min_attacked_accuracy is set"
    return None if value >= minimum else (
        f"val_attacked_accuracy {value:.4f} is below registry.min_attacked_accuracy {minimum:.4f}")


@task(name="register")
def register(corpus: dict, trained: dict, evaluation: dict, task: str, model_name: str, metric: str,
             config_hash: str, data_digests: dict, tracking: Tracking, min_attacked_accuracy: float | None = None,
             attacked: dict | None = None, stage: str = "register", config: dict | None = None) -> dict:
    """``task``: the pipeline's declared kind (``classification``, ``seq2seq``), which says how the
    champion is re-scored. ``min_attacked_accuracy``: the robustness a champion needs (on validation);
    ``attacked``: the model the adversarial stage attacked for training rows (tagged). ``stage``: the MLflow
    run's name (``register-fewshot`` for the few-shot model). ``config``: the pipeline config (JSON), quoted
    in the version's model card."""
    client = MlflowClient(tracking.uri)
    with stage_run(tracking, stage):
        same = [v for v in model_versions(client, model_name) if v.tags.get("model_digest") == trained["digest"]]
        if same:
            version = client.get_model_version(model_name, same[0].version)
            held = list(version.aliases)
            mlflow.set_tags({"decision": "already registered", "version": version.version})
            return {"name": model_name, "version": str(version.version), "alias": held[0] if held else None,
                    "new": False, "reason": f"model digest {trained['digest']} is already version {version.version}"}
        ours = evaluation["metrics"][f"test_{metric}"]
        test = pd.read_parquet(corpus["splits"]["test"])
        if task == "qa":  # a reader's input is a record of context and question
            sample = test[["context", "question"]].head(3).to_dict("records")
        else:
            sample = test["source" if task == "seq2seq" else "text"].head(3).tolist()
        info = _log_model(trained["model_dir"], sample, evaluation.get("decoding"))
        version = None
        try:
            version = mlflow.register_model(info.model_uri, model_name)
            tags = {"model_digest": trained["digest"], "config_hash": config_hash, "git_commit": git_commit(),
                    "test_digest": corpus["digests"]["test"], "train_run_id": trained["run_id"],
                    **{f"data_digest.{k}": v for k, v in data_digests.items()},
                    **{k: f"{v:.6f}" for k, v in evaluation["metrics"].items()}}
            if trained.get("pretrained"):  # the language model its encoder started from
                tags.update({f"pretrained_{k}": v for k, v in trained["pretrained"].items()})
            if evaluation.get("robustness"):
                tags["robustness"] = evaluation["robustness"]
            if attacked and attacked.get("digest"):  # the model whose adversarial examples it trained on
                tags["adversarial_target_version"] = attacked.get("version") or "probe"
                tags["adversarial_target_digest"] = attacked["digest"]
            for key, value in tags.items():
                client.set_model_version_tag(model_name, version.version, key, value)
            tag_digests(client, model_name, str(version.version), info.model_uri)  # verified before every load
            card = model_card(model_name, str(version.version), task, corpus, trained, evaluation,
                              tags, config, _plots(client, trained["run_id"]))
            mlflow.log_text(card, "model_card.md")
            client.update_model_version(model_name, version.version, description=description(
                card, f"runs:/{mlflow.active_run().info.run_id}/model_card.md"))
            outcome = gate(client, model_name, str(version.version), ours, corpus, task, metric,
                           evaluation.get("bleu_tokenize", "13a"),
                           refused=robustness_requirement(evaluation["metrics"], min_attacked_accuracy))
        except BaseException:
            if version is not None:
                client.delete_model_version(model_name, version.version)
            raise
        alias, reason, champ_score = outcome["alias"], outcome["reason"], outcome["champion_score"]
        mlflow.set_tags({"decision": alias, "reason": reason, "version": version.version})
        mlflow.log_metrics({"new_metric": ours, **({"champion_metric": champ_score} if champ_score is not None else {})})
        return {"name": model_name, "version": str(version.version), "alias": alias, "new": True, "reason": reason}
