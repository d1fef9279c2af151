"""Text classification as a Prefect DAG, tracked in MLflow.

    (translators for back-translation, and the champion to attack: resolved first)
    ingest ─> ingest-fewshot ─> tokenize ─> augment (shards) ─> [probe] ─> adversarial (shards) ─> train
        ├────> fewshot-cell x (strategies x k x seeds) ─> fewshot ─> register (NAME-fewshot)
        └────> evaluate ─> evaluate-attack (shards) ─> register ─> optimize (int8 / pruned variants of a new champion)

The adversarial stage attacks the registry's champion (or, when there is none, a probe model trained
here) and adds the examples that fooled it to the training split; evaluate-attack measures the new
model under the same attack, and the gate can require a minimum accuracy under attack.
The few-shot corpus is read and checked before anything trains: a bad one fails fast.

One flow run is one MLflow parent run; each stage logs to its own nested run.

Run it:  python -m flows.classification sample --set train.epochs=3
"""

from __future__ import annotations

import sys

from prefect import flow

from lowlm.config import PipelineConfig, TrainConfig
from lowlm.config.attack import PerturbationConfig
from lowlm.data.corpus import corpus_fingerprint
from flows.attacking import adversarial_split, robustness_of
from flows.augmenting import augment_split, classification_translators
from flows.runners import check_runners, map_shards
from flows.runtime import guard_api_run
from tasks._cache import WorkFolder
from tasks._stage import pipeline_run, tracking_uri
from tasks.evaluate import evaluate
from tasks.fewshot import fewshot, fewshot_cell
from tasks.ingest import ingest
from tasks.optimize import optimize
from tasks.register import register
from tasks.registered import fetch_champion, fetch_classifier, fetch_language_model
from tasks.summarize import summarize
from tasks.tokenize import pretrained_tokenizer, tokenize
from tasks.train import train


@flow(name="classification")
def classification(config: PipelineConfig, resume: bool = False) -> dict:
    """Train, evaluate and register a text classifier from one pipeline config."""
    guard_api_run(config)  # a run started through the API reads and writes only where its deployment allows
    check_runners(*parallel_stages(config))  # a named Dask scheduler answers, now
    work = WorkFolder(config.work_dir)  # stage outputs and their cached results live here
    resolved = resolve_inputs(config, work)
    with pipeline_run("classification", config) as tracking:

        corpus = work(ingest)(config.corpus, work.path, tracking, fingerprint=corpus_fingerprint(config.corpus))
        target = None
        if config.fewshot.enabled:  # read and checked now: a bad second corpus fails before any training
            target = work(ingest.with_options(name="ingest-fewshot"))(
                config.fewshot.corpus, work.path, tracking, stage="ingest-fewshot",
                fingerprint=corpus_fingerprint(config.fewshot.corpus))
        vocab, train_split = training_data(corpus, config, work, tracking, resolved)
        trained = work(train)(corpus, train_split, vocab, config.model, config.train, work.path, tracking,
                              resume=resume, **train_options(config, resolved))
        transfer = None
        if target is not None:
            transfer = fewshot_grid(target, trained, config, work, tracking)
        evaluation, registered = evaluate_and_register(corpus, train_split, trained, config, work, tracking)

        if config.optimize.enabled:  # int8 and pruned variants of a new champion, registered beside it
            optimize(corpus, trained, evaluation, registered, config.optimize, config.task, config.registry.metric,
                     config.train, work.path, tracking)
        summary = {**evaluation["metrics"], "best_val": trained["best_val"]}
        if transfer:
            summary["fewshot_accuracy"] = transfer["fewshot_accuracy"]
            fewshot_name = config.fewshot.model_name or f"{config.registry.model_name}-fewshot"
            transfer["registered"] = register(
                target, transfer, transfer, config.task, fewshot_name, "accuracy", config.digest(),
                {**target["digests"], "content": target["content_digest"], "base_model": trained["digest"]}, tracking,
                stage="register-fewshot", config=config.model_dump(mode="json"))
        result = summarize(summary, registered, tracking)
        if transfer:
            result["fewshot_model"] = transfer["registered"]
        return result


def parallel_stages(config: PipelineConfig) -> list:
    """The stage configs whose work is mapped over a task runner in this pipeline (those that are on)."""
    attack = config.attack
    return [stage for stage, on in ((config.augment, config.augment.enabled), (config.fewshot, config.fewshot.enabled),
                                    (attack, attack.enabled or attack.generate.enabled)) if on]


def resolve_inputs(config: PipelineConfig, work: WorkFolder) -> dict:
    """What the run uses from the registry, resolved to one version each and checked before any work:
    back-translation models, the champion to attack (None: a probe), the language model to start from."""
    translators = classification_translators(config, work, tracking_uri())
    champion = attack_target(config, work)
    lm = None  # checked against the model config now
    if config.pretrained is not None:
        lm = fetch_language_model(config.pretrained.uri, work.path, tracking_uri(), config.model)
    return {"translators": translators, "champion": champion, "lm": lm}


def training_data(corpus: dict, config: PipelineConfig, work: WorkFolder, tracking, resolved: dict) -> tuple:
    """(tokenizer, training rows): tokenize (or the language model's vocabulary), augment in shards, then
    the adversarial rows that fooled the champion or a probe."""
    lm = resolved["lm"]
    vocab = (work(pretrained_tokenizer)(corpus, lm, tracking) if lm is not None
             else work(tokenize)(corpus, config.tokenizer, work.path, tracking))
    train_split = augment_split(corpus, config.augment, work, tracking, resolved["translators"])
    if config.attack.generate.enabled:
        victim = victim_of(resolved["champion"], corpus, work) or work(train.with_options(name="probe"))(
            corpus, train_split, vocab, config.model, probe_settings(config), work.path, tracking, stage="probe")
        train_split = adversarial_split(corpus, train_split, victim, config.attack, work, tracking)
    return vocab, train_split


def train_options(config: PipelineConfig, resolved: dict) -> dict:
    """The train stage's arguments beyond the model and trainer settings: calibration, the attack whose
    ``refresh`` re-generates adversarial rows (None when off), and the language model to start from."""
    options = {"calibration": config.calibration,
               "attack": config.attack.placeless() if config.attack.refresh.every else None}
    lm = resolved["lm"]
    if lm is not None:
        options.update(pretrained=lm, unfreeze=config.pretrained.unfreeze, lr_decay=config.pretrained.lr_decay)
    return options


def evaluate_and_register(corpus: dict, train_split: dict, trained: dict, config: PipelineConfig, work: WorkFolder,
                          tracking) -> tuple[dict, dict]:
    """Test metrics (clean and under the attack), then the registry's gate: (evaluation, registered)."""
    evaluation = work(evaluate)(corpus, trained, tracking)
    robust = robustness_of(corpus, trained, config.attack, work, tracking)
    evaluation = {**evaluation, "metrics": {**evaluation["metrics"], **robust["metrics"]},
                  "robustness": robust.get("summary")}
    digests = {**corpus["digests"], "content": corpus["content_digest"], "train_augmented": train_split["digest"]}
    registered = register(corpus, trained, evaluation, config.task, config.registry.model_name,
                          config.registry.metric, config.digest(), digests, tracking,
                          min_attacked_accuracy=config.registry.min_attacked_accuracy,
                          attacked=train_split.get("attacked"), config=config.model_dump(mode="json"))
    return evaluation, registered


def fewshot_grid(target: dict, base: dict, config: PipelineConfig, work: WorkFolder, tracking) -> dict:
    """Every (strategy, k, seed) cell fine-tuned from ``base`` on the task runner, then the summary stage."""
    fs = config.fewshot
    cells = map_shards(work(fewshot_cell), [
        {"target": target, "base": base, "strategy": strategy, "k": k, "seed": seed, "finetune": fs.finetune,
         "work_dir": work.path, "tracking": tracking}
        for strategy in fs.strategies for k in fs.shots for seed in fs.seeds], fs, what="few-shot")
    return work(fewshot)(target, cells, fs, tracking)


def attack_target(config: PipelineConfig, work: WorkFolder) -> dict | None:
    """The registered champion the adversarial stage attacks (one version, fetched and verified now), or
    None when it trains a probe instead (no champion yet, ``attack.generate.target: probe``, or off)."""
    generate = config.attack.generate
    if not generate.enabled or generate.target != "champion":
        return None
    return fetch_champion(config.registry.model_name, work.path, tracking_uri())


def victim_of(champion: dict | None, corpus: dict, work: WorkFolder) -> dict | None:
    """The model whose adversarial examples join training: the champion when it was trained on other data
    (new data: harden against the model in service); on the same data, the model that champion attacked
    itself, so that every candidate on one corpus trains on the same adversarial rows (the gate compares
    like with like) and an identical rerun rebuilds them (a cache hit) instead of hardening against its
    own output. None: a probe."""
    if champion is None:
        return None
    tags = champion["tags"]
    handle = {k: v for k, v in champion.items() if k != "tags"}
    if tags.get("data_digest.content") != corpus["content_digest"]:
        return handle
    earlier = tags.get("adversarial_target_version")
    if not earlier or earlier == "probe":
        return None
    fetched = fetch_classifier(f"models:/{champion['name']}/{earlier}", work.path, tracking_uri())
    return {k: v for k, v in fetched.items() if k != "tags"}


def probe_settings(config: PipelineConfig) -> TrainConfig:
    """The probe's trainer: the pipeline's settings, ``attack.generate.probe_epochs`` epochs, no perturbation."""
    return config.train.model_copy(update={"epochs": config.attack.generate.probe_epochs,
                                           "perturbation": PerturbationConfig()})


def main(argv: list[str] | None = None) -> int:
    """``python -m flows.classification [PRESET] [--set k=v]``: ``lowlm run`` with ``sample`` by default."""
    from flows.cli import alias

    return alias(["run"], argv, default="sample")


if __name__ == "__main__":
    sys.exit(main())
