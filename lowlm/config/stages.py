"""One config per pipeline stage: tokenizers, training, few-shot, decoding, registry (augmentation:
``lowlm.config.augment``; attacks and adversarial training: ``lowlm.config.attack``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from lowlm.config.attack import AttackConfig, PerturbationConfig  # noqa: F401 (AttackConfig: re-exported)
from lowlm.config.base import _Strict
from lowlm.config.data import CorpusConfig


class TokenizerConfig(_Strict):
    kind: Literal["word", "bpe", "char"] = "word"
    lowercase: bool = True
    nfkc: bool = True
    vocab_size: int = Field(30000, gt=10)
    min_frequency: int = Field(1, ge=1)
    max_length: int = Field(128, gt=0, description="Longer inputs are truncated at encode time.")


class TrainConfig(_Strict):
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    schedule: Literal["linear", "cosine", "constant"] = "linear"
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


class FewShotConfig(_Strict):
    enabled: bool = True
    corpus: CorpusConfig | None = None
    k: int = Field(8, ge=1, description="Labelled examples per class used for fine-tuning.")
    epochs: int = Field(30, ge=1)
    lr: float = Field(1e-2, gt=0)
    seed: int = 13


class RegistryConfig(_Strict):
    model_name: str = "lowlm-classifier"
    metric: Literal["accuracy", "macro_f1"] = "accuracy"
    min_attacked_accuracy: float | None = Field(
        None, ge=0, le=1, description="A version whose accuracy under attack on validation (the robustness "
                                      "stage) is below this never becomes champion. None: no such requirement.")


class Seq2SeqTrainConfig(TrainConfig):
    """Training settings for sequence-to-sequence models: the classifier's plus decoding and smoothing."""

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
