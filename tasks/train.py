"""Train: encode the splits, fit the configured classifier, save it, log curves and checkpoints."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
import pandas as pd
import torch
from prefect import task

from lowlm.data.corpus import encode_labels, encode_scoped
from lowlm.config import ClassifierConfig, Seq2SeqModelConfig, Seq2SeqTrainConfig, TrainConfig
from lowlm.config.attack import AttackConfig
from lowlm.config.stages import CalibrationConfig
from lowlm.evaluation.calibration import calibrate
from lowlm.evaluation.metrics import majority_baseline
from lowlm.evaluation.plots import curves_figure, seq2seq_curves_figure
from lowlm.inference.classifier import TextClassifier
from lowlm.inference.translator import Translator
from lowlm.models.kinds import build_model
from lowlm.text.batching import Batches, PairBatches
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.objectives import train_classifier, train_translator
from lowlm.inference.language_model import LanguageModelBundle
from lowlm.training.adversarial import AdversarialRefresh
from lowlm.training.fewshot import GradualUnfreezing, layer_groups
from lowlm.training.pretrained import load_encoder
from lowlm.training.trainer import Checkpoint, EpochMetrics, seed_everything
from tasks._cache import STAGE_OPTIONS
from tasks._stage import Tracking, digest_of, log_figure, output_dir, stage_run


log_epochs = EpochMetrics(lambda epoch, metrics: mlflow.log_metrics(metrics, step=epoch))
CHECKPOINT = "checkpoint.pt"


def checkpointing(folder, resume: bool) -> tuple[list, str | None]:
    """The periodic checkpoint of a training whose outputs go to ``folder`` (one per epoch: model,
    optimizers, schedules, early stopping, RNG and data order), and what to resume from.

    A checkpoint left by an interrupted run of the same stage key is continued with ``resume``
    (``lowlm run --resume``), giving the uninterrupted run's result; without it training starts over.
    """
    path = folder / CHECKPOINT
    start = None
    if path.exists():
        if resume:
            start = str(path)
            mlflow.set_tag("resumed_from", str(path))
            print(f"resuming training from the checkpoint {path}")
        else:
            print(f"an interrupted training left {path}; starting over (`lowlm run --resume` continues it)")
    return [Checkpoint(path)], start


def save_trained(bundle, out, name: str) -> tuple[str, str]:
    """Save a finished bundle as ``out/name`` (it replaces the periodic checkpoint), log it as the stage's
    ``checkpoint`` artifact and tag its digest; returns (folder, digest)."""
    folder = bundle.save(out / name)
    (out / CHECKPOINT).unlink(missing_ok=True)
    mlflow.log_artifacts(str(folder), artifact_path="checkpoint")
    digest = bundle.digest()
    mlflow.set_tag("lowlm.model_digest", digest)
    return str(folder), digest


def labelled_batches(path: str, tok: Tokenizer, labels: list[str], batch_size: int, shuffle: bool = False,
                     seed: int = 0) -> Batches:
    frame = pd.read_parquet(path)
    return Batches(tok.encode_batch(frame["text"].tolist()), encode_labels(frame["label"], labels, path),
                   batch_size=batch_size, shuffle=shuffle, seed=seed)


def refreshing(attack: AttackConfig | None, train_frame: pd.DataFrame, tok: Tokenizer, labels: list[str],
               source: str) -> list:
    """The trainer callback that re-generates adversarial rows against the model being trained
    (``attack.refresh.every`` epochs), logging what each refresh found; none when it is off."""
    if attack is None or not attack.refresh.every:
        return []

    def log(epoch: int, summary: dict, rows: int) -> None:
        mlflow.log_metrics({"refresh_rows": rows, "refresh_success_rate": summary["success_rate"],
                            "refresh_attacked_accuracy": summary["attacked_accuracy"]}, step=epoch)

    return [AdversarialRefresh(train_frame["text"].tolist(), encode_labels(train_frame["label"], labels, source), tok,
                               labels, attack, log=log)]


def _start_from(net, pretrained: dict, tok: Tokenizer, unfreeze: str) -> None:
    """Copy the language model's encoder into ``net`` and tag the run with the version it came from."""
    _tag_pretrained(pretrained, load_encoder(net, LanguageModelBundle.load(pretrained["model_dir"]), tok), unfreeze)


def _tag_pretrained(pretrained: dict, copied: list, unfreeze: str) -> None:
    mlflow.set_tags({"pretrained.uri": pretrained["uri"], "pretrained.version": pretrained["version"],
                     "pretrained.digest": pretrained["digest"], "pretrained.unfreeze": unfreeze})
    mlflow.log_metric("pretrained_tensors", len(copied))


@dataclass
class Prepared:
    """What a classifier's training starts from, built alike by the stage and by each torchrun process."""

    tokenizer: Tokenizer
    net: torch.nn.Module
    train_batches: Batches
    val_batches: Batches  # the in-scope validation rows
    val: pd.DataFrame  # all validation rows (calibration)
    val_labels: list[int]  # -1: out of scope
    callbacks: list = field(default_factory=list)  # gradual unfreezing
    groups: list[dict] | None = None  # its discriminative learning rates
    copied: list = field(default_factory=list)  # tensors copied from a language model
    ngram_rows: int | None = None


def prepare_classifier(corpus: dict, augmented: dict, tokenizer: dict, model: ClassifierConfig, config: TrainConfig,
                       pretrained: dict | None = None, unfreeze: str = "all", lr_decay: float = 2.6) -> Prepared:
    """Batches of the training and validation rows, and the model built after seeding (its initial weights
    are part of the result), started from the language model's encoder when one is given."""
    labels = corpus["labels"]
    tok = Tokenizer.load(tokenizer["path"])
    train_batches = labelled_batches(augmented["train"], tok, labels, config.batch_size, True, config.seed)
    val = pd.read_parquet(corpus["splits"]["validation"])
    val_labels = encode_scoped(val["label"], labels, corpus["splits"]["validation"])
    in_scope = [y >= 0 for y in val_labels]
    val_batches = Batches(tok.encode_batch(val["text"][in_scope].tolist()), [y for y in val_labels if y >= 0],
                          batch_size=256)
    seed_everything(config.seed)
    net = build_model(model, vocab_size=tok.vocab_size, num_labels=len(labels), words=tok.tokens())
    prepared = Prepared(tok, net, train_batches, val_batches, val, val_labels)
    if pretrained is not None:
        prepared.copied = load_encoder(net, LanguageModelBundle.load(pretrained["model_dir"]), tok)
        if unfreeze == "gradual":
            layers = layer_groups(net)
            prepared.callbacks = [GradualUnfreezing(layers)]
            prepared.groups = [{"params": g, "lr": config.lr / lr_decay ** (len(layers) - 1 - i),
                                "weight_decay": config.weight_decay} for i, g in enumerate(layers)]
    if model.kind == "bag_of_ngrams":  # its n-gram table holds rows only for buckets seen in training
        prepared.ngram_rows = net.index_ngrams((b.ids, b.lengths) for b in train_batches)
    return prepared


@task(name="train", **STAGE_OPTIONS)
def train(corpus: dict, augmented: dict, tokenizer: dict, model: ClassifierConfig, config: TrainConfig, work_dir: str,
          tracking: Tracking, resume: bool = False, calibration: CalibrationConfig | None = None,
          attack: AttackConfig | None = None, stage: str = "train", pretrained: dict | None = None,
          unfreeze: str = "all", lr_decay: float = 2.6, callbacks: list | None = None) -> dict:
    """Fit the classifier (early stopping on the in-scope validation rows), then calibrate it on all of
    validation: a temperature, and a rejection threshold when asked or when validation holds out-of-scope rows.
    ``attack``: its ``refresh`` re-generates adversarial rows during training. ``stage``: the MLflow run's
    and output folder's name (``probe``: the quick model the adversarial stage attacks when there is no champion).
    ``pretrained``: a language model's handle (``tasks.registered.fetch_language_model``) whose encoder the
    model starts from, trained with every weight at once (``unfreeze: all``) or ULMFiT's gradual
    unfreezing with discriminative rates (``gradual``, each lower group's rate / ``lr_decay``). ``callbacks``:
    more trainer callbacks, after the stage's own (a sweep's pruning); not part of the cache key."""
    calibration = calibration or CalibrationConfig()
    if config.distributed is not None and (callbacks or (attack is not None and attack.refresh.every)
                                           or unfreeze == "gradual"):  # the pipeline config says so first
        raise ValueError("train.distributed: only the trainer's own steps run under DDP (no attack refresh, gradual "
                         "unfreezing or extra callbacks such as a sweep's pruning)")
    with stage_run(tracking, stage) as run:
        mlflow.log_params({f"model.{k}": v for k, v in model.model_dump().items()})
        mlflow.log_params({f"train.{k}": v for k, v in config.model_dump().items()})
        mlflow.log_params({f"calibration.{k}": v for k, v in calibration.model_dump().items()})
        labels = corpus["labels"]
        prepared = prepare_classifier(corpus, augmented, tokenizer, model, config, pretrained, unfreeze, lr_decay)
        tok, net, val, val_labels = prepared.tokenizer, prepared.net, prepared.val, prepared.val_labels
        if pretrained is not None:
            _tag_pretrained(pretrained, prepared.copied, unfreeze)
        if prepared.ngram_rows is not None:
            mlflow.log_metric("ngram_rows", prepared.ngram_rows)
        mlflow.log_metric("parameters", sum(p.numel() for p in net.parameters()))
        refresh = refreshing(attack, pd.read_parquet(augmented["train"]), tok, labels, augmented["train"])
        key = digest_of(model, config, augmented["digest"], corpus["digests"]["validation"], tokenizer["digest"],
                        calibration, *([attack] if refresh else []),
                        *([pretrained["digest"], unfreeze, lr_decay] if pretrained else []))
        out = output_dir(work_dir, stage, key)
        if config.distributed is not None:  # torchrun's processes train; rank 0 logs the epochs to this run
            from tasks.distributed import launch

            result = launch(out, run.info.run_id, tracking.uri, net,
                            {"corpus": corpus, "augmented": augmented, "tokenizer": tokenizer,
                             "model": model.model_dump(mode="json"), "config": config.model_dump(mode="json"),
                             "pretrained": pretrained, "unfreeze": unfreeze, "lr_decay": lr_decay}, resume)
        else:
            saves, start = checkpointing(out, resume)
            result = train_classifier(net, prepared.train_batches, prepared.val_batches, len(labels), config,
                                      callbacks=[log_epochs, *prepared.callbacks, *refresh, *saves, *(callbacks or [])],
                                      resume=start, param_groups=prepared.groups, words=tok.tokens())
        val_batches = prepared.val_batches
        mlflow.log_metrics({"best_epoch": result.best_epoch, f"best_val_{config.metric}": result.best_metric,
                            "train_seconds": result.seconds, "stopped_early": int(result.stopped_early)})
        train_labels = encode_labels(pd.read_parquet(corpus["splits"]["train"])["label"], labels,
                                     corpus["splits"]["train"])  # the corpus's own train split, as evaluate does
        mlflow.log_metric("validation_majority_baseline", majority_baseline(train_labels, val_batches.labels.tolist()))
        log_figure(curves_figure(result.history, title=f"{model.kind} training"), "plots/training_curves.png")
        classifier = TextClassifier(net, tok, labels)
        fitted = calibrate(classifier.logits(val["text"].tolist()), val_labels, temperature=calibration.temperature,
                           reject=calibration.reject, candidates=calibration.thresholds)
        mlflow.log_metrics(fitted.metrics)
        classifier.temperature, classifier.threshold = fitted.temperature, fitted.threshold
        folder, digest = save_trained(classifier, out, "classifier")
        return {"model_dir": folder, "digest": digest, "run_id": run.info.run_id,
                "best_epoch": result.best_epoch, "best_val": result.best_metric, "kind": model.kind,
                "pretrained": {k: pretrained[k] for k in ("uri", "version", "digest")} if pretrained else None}


@task(name="train-seq2seq", **STAGE_OPTIONS)
def train_seq2seq(corpus: dict, train_split: dict, vocab: dict, model: Seq2SeqModelConfig, config: Seq2SeqTrainConfig,
                  work_dir: str, tracking: Tracking, resume: bool = False, pretrained: dict | None = None) -> dict:
    """Fit the encoder-decoder (early stopping on the validation metric). ``pretrained``: a language model's
    handle whose embedding and RNN start the encoder (the source tokenizer is then the LM's)."""
    with stage_run(tracking, "train") as run:
        mlflow.log_params({f"model.{k}": v for k, v in model.model_dump().items()})
        mlflow.log_params({f"train.{k}": v for k, v in config.model_dump().items()})
        source, target = Tokenizer.load(vocab["source"]), Tokenizer.load(vocab["target"])
        train_pairs = pd.read_parquet(train_split["train"])
        val_pairs = pd.read_parquet(corpus["splits"]["validation"])
        seed_everything(config.seed)
        net = build_model(model, src_vocab=source.vocab_size, tgt_vocab=target.vocab_size)
        if pretrained is not None:
            _start_from(net, pretrained, source, "all")
        mlflow.log_metric("parameters", sum(p.numel() for p in net.parameters()))
        translator = Translator(net, source, target, tuple(corpus.get("languages") or (None, None)))
        batches = PairBatches(source.encode_batch(train_pairs["source"].tolist()),
                              target.encode_target_batch(train_pairs["target"].tolist()),
                              batch_size=config.batch_size, shuffle=True, seed=config.seed)
        val_batches = PairBatches(source.encode_batch(val_pairs["source"].tolist()),
                                  target.encode_target_batch(val_pairs["target"].tolist()), batch_size=128)
        key = digest_of(model, config, train_split["digest"], corpus["digests"]["validation"], vocab["digest"],
                        *([pretrained["digest"]] if pretrained else []))
        out = output_dir(work_dir, "train-seq2seq", key)
        saves, start = checkpointing(out, resume)
        result = train_translator(translator, batches, val_batches, val_pairs["source"].tolist(),
                                  val_pairs["target"].tolist(), config, callbacks=[log_epochs, *saves], resume=start)
        mlflow.log_metrics({"best_epoch": result.best_epoch, f"best_val_{config.metric}": result.best_metric,
                            "train_seconds": result.seconds, "target_tokens_per_second": result.throughput})
        log_figure(seq2seq_curves_figure(result.history, config.metric), "plots/training_curves.png")
        folder, digest = save_trained(translator, out, "translator")
        return {"model_dir": folder, "digest": digest, "run_id": run.info.run_id, "best_epoch": result.best_epoch,
                "best_val": result.best_metric, "tokens_per_second": result.throughput,
                "pretrained": {k: pretrained[k] for k in ("uri", "version", "digest")} if pretrained else None}
