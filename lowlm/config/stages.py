"""One config per pipeline stage: tokenizers, training, few-shot, decoding, registry (augmentation:
``lowlm.config.augment``; attacks and adversarial training: ``lowlm.config.attack``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from lowlm.config.attack import AttackConfig, PerturbationConfig  # noqa: F401 (AttackConfig: re-exported)
from lowlm.config.base import _Strict
from lowlm.config.data import CorpusConfig
from lowlm.config.runner import Runner


def _classifiers_only_distributed(cls, value):
    """``train.distributed`` of a trainer whose stage does not launch torchrun (yet): a config error, not ignored."""
    if value is not None:
        raise ValueError("distributed: only the classifier's train stage runs under torchrun (DDP) so far")
    return value


class TokenizerConfig(_Strict):
    kind: Literal["word", "bpe", "char"] = "word"
    lowercase: bool = True
    nfkc: bool = True
    vocab_size: int = Field(30000, gt=10)
    min_frequency: int = Field(1, ge=1)
    max_length: int = Field(128, gt=0, description="Longer inputs are truncated at encode time.")


class DistributedConfig(_Strict):
    """Data-parallel training (torch DDP) under ``torchrun``: the train stage launches ``nodes x
    procs_per_node`` processes that share every global batch (``batch_size`` rows), so the steps are
    those of one process on the same batches. On one machine the stage starts them all; across
    machines it starts the first node's and logs the command each other node runs (docs/team.md)."""

    nodes: int = Field(1, ge=1, description="Machines taking part; the others run the logged torchrun command.")
    procs_per_node: int = Field(2, ge=1, description="Processes per machine (one per GPU, or per few CPU cores).")
    backend: Literal["auto", "gloo", "nccl"] = Field("auto", description="auto: nccl when the processes have GPUs, "
                                                                         "else gloo.")
    endpoint: str | None = Field(None, description="host:port of the rendezvous on the first machine, which every "
                                                   "node reaches; needed when nodes > 1 (one machine: 127.0.0.1 and "
                                                   "a free port).")
    threads: int | None = Field(None, ge=1, description="torch threads per process; None: torchrun's 1 when a "
                                                        "machine runs several.")

    @model_validator(mode="after")
    def _endpoint_across_machines(self) -> "DistributedConfig":
        if self.nodes > 1 and not self.endpoint:
            raise ValueError(f"nodes is {self.nodes}: set endpoint (host:port of the first machine's rendezvous)")
        if self.endpoint and not re.match(r"^[^\s:/]+:\d{1,5}$", self.endpoint):
            raise ValueError(f"endpoint {self.endpoint!r}: expected host:port, e.g. 10.0.0.5:29400")
        return self


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant", "slanted_triangular"] = Field(
        "linear", description="After the warm-up (warmup_ratio): linear or cosine decay, constant, or ULMFiT's "
                              "slanted triangular rates (the warm-up is its rise; 1/32 of the peak at both ends).")
    grad_clip: float = Field(1.0, ge=0, description="Max gradient norm; 0 disables clipping.")
    patience: int = Field(3, ge=0, description="Epochs without improvement before stopping; 0 = never.")
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    sparse_optimizer: Literal["sparse_adam", "lazy_adam"] = Field(
        "lazy_adam", description="For sparse embedding tables: LazyAdam (SparseAdam's updates, gathering only "
                                 "the touched rows; faster), or torch's SparseAdam.")
    seed: int = 13
    threads: int | None = Field(None, ge=1, description="torch threads; None keeps torch's default.")
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1' or 'auto' (cuda when available).")
    progress: bool = True
    perturbation: PerturbationConfig = Field(default_factory=PerturbationConfig,
                                             description="Adversarial training in embedding space (FGM, PGD, FreeLB).")
    distributed: DistributedConfig | None = Field(
        None, description="Train under torchrun with DDP (classifiers); None: in the stage's own process.")

    @model_validator(mode="after")
    def _distributed_plain_steps(self):
        if self.distributed is not None and self.perturbation.method != "none":
            raise ValueError(f"distributed: embedding-space perturbation ({self.perturbation.method}) is not run "
                             "under DDP; set perturbation.method: none or drop distributed")
        return self


class LanguageModelTrainConfig(TrainConfig):
    """Training settings for a language model: the classifier's, plus how texts are cut into sequences."""

    _not_distributed = field_validator("distributed")(_classifiers_only_distributed)

    batch_size: int = Field(64, ge=1)
    epochs: int = Field(5, ge=1)
    window: int = Field(70, ge=4, description="Texts longer than this many tokens are cut into pieces this long.")
    sampled_softmax: int = Field(0, ge=0, description="Training's softmax over the batch's words plus this many "
                                                      "sampled ones (0: the full vocabulary); validation is exact.")
    patience: int = Field(2, ge=0, description="Epochs without a lower validation loss before stopping; 0 = never.")

    @field_validator("perturbation")
    @classmethod
    def _classifiers_only(cls, value: PerturbationConfig) -> PerturbationConfig:
        if value.method != "none":
            raise ValueError("perturbation: embedding-space adversarial training is for classifiers, not language models")
        return value


class CalibrationConfig(_Strict):
    """Probabilities that mean something, fitted on validation after training; and rejecting what is unsure."""

    temperature: bool = Field(True, description="Fit a temperature on validation (the logits are divided by it; "
                                                "the predicted class never changes).")
    reject: bool = Field(False, description="Fit a threshold on the top probability below which `predict` answers "
                                            "'out_of_scope'; always on when validation holds out-of-scope rows "
                                            "(corpus.out_of_scope_labels).")
    thresholds: list[float] = Field(
        default_factory=lambda: [round(0.05 * i, 2) for i in range(1, 20)],
        description="Candidate thresholds; the one with the best mean of in-scope accuracy and out-of-scope recall "
                    "on validation is kept.")

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, values: list[float]) -> list[float]:
        if not values or not all(0 < v < 1 for v in values):
            raise ValueError(f"thresholds: give at least one, each between 0 and 1 (exclusive), got {values}")
        return values


Strategy = Literal["prototypes", "head", "gradual_unfreezing", "full", "scratch"]
STRATEGIES: tuple[str, ...] = ("prototypes", "head", "gradual_unfreezing", "full", "scratch")


class FineTuneConfig(_Strict):
    """How each strategy fine-tunes on the k-shot rows (``lowlm.training.fewshot``).

    Defaults that do not underfit with many classes: 300 steps (a 30-step head scored 3% on 150
    intents where 300 steps at 0.1 scored 37%)."""

    steps: int = Field(300, ge=1, description="Optimizer steps (the head: full-batch steps on cached features).")
    batch_size: int = Field(32, ge=1, description="Rows per step for the strategies that run the encoder.")
    head_lr: float = Field(0.1, gt=0, description="'head': the linear head's learning rate (frozen encoder).")
    lr: float = Field(1e-2, gt=0, description="gradual_unfreezing, full, scratch: the top layer group's rate.")
    lr_decay: float = Field(2.6, ge=1, description="gradual_unfreezing: each lower layer group's rate is the one "
                                                   "above's divided by this (ULMFiT's discriminative rates).")
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Warm-up share of the steps (STLR's rise for "
                                                             "gradual_unfreezing).")


class FewShotConfig(Runner):
    """Transfer to a second task: a grid of k x seeds x strategies, each fine-tuned on k examples per class,
    run in parallel on the task runner; the best strategy (validation accuracy at the largest k, mean over
    seeds) is registered as its own model."""

    enabled: bool = True
    corpus: CorpusConfig | None = None
    shots: list[int] = Field(default_factory=lambda: [8], min_length=1,
                             description="k: labelled examples per class (a class with fewer uses all it has).")
    seeds: list[int] = Field(default_factory=lambda: [13], min_length=1, description="One k-shot sample and run each.")
    strategies: list[Strategy] = Field(default_factory=lambda: ["head"], min_length=1, description=(
        "prototypes: nearest class centroid on the frozen encoder; head: a linear head on it; gradual_unfreezing: "
        "ULMFiT (discriminative rates, slanted triangular schedule, one more layer group each epoch); full: every "
        "weight at once; scratch: the same architecture from random weights (the baseline)."))
    finetune: FineTuneConfig = Field(default_factory=FineTuneConfig)
    model_name: str | None = Field(None, description="Registered model of the chosen few-shot model; None: the "
                                                     "pipeline's registry.model_name + '-fewshot'.")

    @field_validator("shots", "seeds", "strategies")
    @classmethod
    def _distinct(cls, values: list) -> list:
        if len(set(values)) != len(values):
            raise ValueError(f"a value is listed twice in {values}")
        return values


class ReaderTrainConfig(TrainConfig):
    """Training settings for an extractive reader; epochs are selected on validation F1 (or exact match)."""

    _not_distributed = field_validator("distributed")(_classifiers_only_distributed)

    epochs: int = Field(12, ge=1)
    batch_size: int = Field(32, ge=1)
    metric: Literal["f1", "exact_match"] = Field("f1", description="The SQuAD metric that selects the epoch.")

    @field_validator("perturbation")
    @classmethod
    def _classifiers_only(cls, value: PerturbationConfig) -> PerturbationConfig:
        if value.method != "none":
            raise ValueError("perturbation: embedding-space adversarial training is for classifiers, not readers")
        return value


class QARegistryConfig(_Strict):
    model_name: str = "lowlm-reader"
    metric: Literal["f1", "exact_match"] = Field("f1", description="Test F1 or exact match (SQuAD's, in points).")


class RegistryConfig(_Strict):
    model_name: str = "lowlm-classifier"
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    min_attacked_accuracy: float | None = Field(
        None, ge=0, le=1, description="A version whose accuracy under attack on validation (the robustness "
                                      "stage) is below this never becomes champion. None: no such requirement.")


class LanguageModelRegistryConfig(_Strict):
    model_name: str = "lowlm-lm"
    metric: Literal["perplexity"] = Field("perplexity", description="Test perplexity: lower is better.")


class PretrainedConfig(_Strict):
    """Start the encoder (a classifier's or a seq2seq model's) from a registered language model (ULMFiT): its
    tokenizer replaces the tokenize stage's, its embedding and RNN weights the fresh ones
    (``lowlm.training.pretrained``)."""

    uri: str = Field(description="models:/NAME@alias or models:/NAME/VERSION of a language model "
                                 "(a `task: lm` pipeline registers one); resolved to one version at flow start.")
    unfreeze: Literal["all", "gradual"] = Field(
        "gradual", description="all: every weight trains from the start; gradual: ULMFiT's gradual unfreezing, one "
                               "more layer group each epoch from the top, with discriminative rates.")
    lr_decay: float = Field(2.6, ge=1, description="gradual: each lower layer group's rate is the one above's / this.")

    @field_validator("uri")
    @classmethod
    def _registered(cls, value: str) -> str:
        if not value.startswith("models:/"):
            raise ValueError(f"uri must be a registered model, models:/NAME@alias or models:/NAME/VERSION; got {value!r}")
        return value


class Seq2SeqTrainConfig(TrainConfig):
    """Training settings for sequence-to-sequence models: the classifier's plus decoding and smoothing."""

    _not_distributed = field_validator("distributed")(_classifiers_only_distributed)

    label_smoothing: float = Field(0.1, ge=0, lt=1)
    metric: Literal["bleu", "chrf", "rougeL", "loss"] = Field(
        "bleu", description="Validation metric for early stopping (greedy decoding; 'loss' is teacher-forced).")
    bleu_tokenize: str = Field("13a", description="sacreBLEU tokenizer: '13a', or 'zh' for Chinese targets.")
    validation_max_pairs: int = Field(1000, ge=1, description="Validation pairs decoded after each epoch.")
    max_length: int = Field(80, gt=0, description="Longest output when decoding.")

    @field_validator("perturbation")
    @classmethod
    def _classifiers_only(cls, value: PerturbationConfig) -> PerturbationConfig:
        if value.method != "none":
            raise ValueError("perturbation: embedding-space adversarial training is for classifiers; a seq2seq "
                             "model's robustness is measured (evaluate's source noise), not trained")
        return value


class PairTokenizerConfig(_Strict):
    source: TokenizerConfig = Field(default_factory=lambda: TokenizerConfig(max_length=100))
    target: TokenizerConfig = Field(default_factory=lambda: TokenizerConfig(max_length=100))
    joint: bool = Field(False, description="One vocabulary for both sides (trained on both): needed for copying.")


class DecodeConfig(_Strict):
    """How a seq2seq model decodes for evaluation, the gate and serving."""

    beam_size: int = Field(5, ge=1, description="Beam size (1: greedy); with select, the beam the candidates use.")
    max_length: int = Field(80, gt=0)
    length_penalty: float = Field(1.0, ge=0, description="Beam score = log-probability / length**penalty.")
    select: bool = Field(True, description="Choose greedy or beam (and the length penalty) on the validation "
                                           "split; the test metrics, the gate and the served default use the choice.")
    length_penalties: list[float] = Field(default_factory=lambda: [0.6, 1.0, 1.4],
                                          description="With select: the beam's length penalties tried.")
    selection_max_pairs: int = Field(500, ge=1, description="With select: validation pairs decoded per candidate.")
    attention_samples: int = Field(4, ge=0, description="Test sentences drawn as attention heat maps.")


class Seq2SeqRegistryConfig(_Strict):
    model_name: str = "lowlm-seq2seq"
    metric: Literal["bleu", "chrf", "rougeL"] = "bleu"


class OptimizeVariant(_Strict):
    """One smaller or faster version of the trained model: pruned, quantized, or both (pruned first)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Its registry alias is optimized-<name>.")
    quantize: bool = Field(False, description="Dynamic int8: int8 weights on disk, the linear and recurrent layers "
                                              "run in int8 at inference (lowlm.optimize.quantize).")
    prune: float = Field(0.0, ge=0, lt=1, description="Share of the smallest-magnitude weights of the linear and "
                                                      "recurrent matrices set to zero; 0: no pruning.")
    prune_scope: Literal["global", "layer"] = Field("global", description="global: one threshold over all matrices; "
                                                                          "layer: each matrix loses the same share.")
    compress: bool = Field(False, description="Bag of n-grams only: fastText's compression (rows pruned by norm, "
                                              "product-quantized rows, the head retrained; lowlm.optimize.compress).")
    keep_ngrams: float = Field(1.0, gt=0, le=1, description="compress: share of n-gram rows kept (largest norms).")
    keep_words: float = Field(1.0, gt=0, le=1, description="compress: share of word rows kept (largest norms).")
    pq_dsub: int = Field(2, ge=1, description="compress: values per product-quantized sub-vector.")
    pq_bits: int = Field(8, ge=1, le=8, description="compress: bits per code (2**bits centroids per subspace).")
    recovery_epochs: int = Field(1, ge=0, description="Fine-tune epochs after pruning (the pruned weights stay zero), "
                                                      "or of the head after compression.")
    recovery_lr_scale: float = Field(0.1, gt=0, description="Recovery learning rate: the train stage's lr times this.")


class OptimizeConfig(_Strict):
    """After register: smaller and faster variants of a new champion, each measured (size on disk, pyfunc
    latency at batch 1 and 64, metric change on test) and, within ``tolerance``, registered as its own
    version under the alias ``optimized-<name>``, never through the champion gate."""

    enabled: bool = False
    variants: list[OptimizeVariant] = Field(default_factory=lambda: [
        OptimizeVariant(name="int8", quantize=True),
        OptimizeVariant(name="pruned-50", prune=0.5),
        OptimizeVariant(name="pruned-50-int8", prune=0.5, quantize=True)])
    tolerance: float = Field(1.0, ge=0, description="Largest loss of the test metric (accuracy or BLEU points, "
                                                    "0-100) a registered variant may have.")
    latency_rows: int = Field(100, ge=1, description="Test texts timed one at a time (batch 1), and in batches of 64.")
    repeats: int = Field(3, ge=1, description="Timing repeats; p50 and p95 over all timed calls.")


class CompareConfig(Runner):
    """Several registered classifiers evaluated on one preset's corpus side by side (``lowlm compare``): each
    model's evaluate stage is a task on the runner, then (``attack``) each under the preset's attack."""

    models: list[str] = Field(min_length=1, description="Registered classifiers: models:/NAME/VERSION or "
                                                        "models:/NAME@alias, each resolved and verified at the start.")
    attack: bool = Field(True, description="Also attack each model with the preset's attack (when it is enabled).")

