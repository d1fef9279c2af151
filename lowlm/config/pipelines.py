"""Pipeline configs: one per kind of job, declared by its ``task`` field, composed of the stage configs.

Each is one form in the Prefect UI (the flow's parameter) and one YAML preset on disk.
``PIPELINES`` maps a ``task`` to its config class: the one place a new kind of pipeline is declared.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lowlm.config.base import _Pipeline
from lowlm.config.data import CorpusConfig, PairCorpusConfig, QACorpusConfig, TextCorpusConfig
from lowlm.config.models import (ClassifierConfig, LanguageModelConfig, ReaderConfig, RNNAttentionConfig,
                                 Seq2SeqModelConfig)
from lowlm.config.attack import SourceNoiseConfig
from lowlm.config.augment import AugmentConfig, PairAugmentConfig
from lowlm.config.stages import (AttackConfig, CalibrationConfig, DecodeConfig, FewShotConfig, PairTokenizerConfig,
                                 LanguageModelRegistryConfig, LanguageModelTrainConfig, OptimizeConfig,
                                 PretrainedConfig, QARegistryConfig, ReaderTrainConfig,
                                 RegistryConfig, Seq2SeqRegistryConfig, Seq2SeqTrainConfig, TokenizerConfig,
                                 TrainConfig)


# The mean over SST-2, TREC-6 and BANKING77 of the median validation accuracy (seeds 0-2) was best at
# lr 0.05, 3 epochs, batch 128 (85.05%; benchmarks/results/bag_defaults.json), with the benchmark's
# plain schedule: no warm-up, no weight decay, no clipping. TrainConfig's own defaults (lr 2e-3,
# 10 epochs) suit the recurrent models and leave the bag underfitted.
BAG_TRAIN_DEFAULTS = {"lr": 0.05, "epochs": 3, "batch_size": 128, "warmup_ratio": 0.0, "weight_decay": 0.0,
                      "grad_clip": 0.0}


class PipelineConfig(_Pipeline):
    """The whole classification pipeline: one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["classification"] = Field("classification", description="The kind of pipeline (declared).")
    name: str = Field("classification", description="The flow run's MLflow parent run name.")
    experiment: str = Field("lowlm-classification", description="MLflow experiment the runs go to.")
    corpus: CorpusConfig = Field(description="The labelled corpus: where it is and how to read it.")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig, description="Tokenizer fitted on train.")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="New training rows: a chain of augmenters.")
    attack: AttackConfig = Field(default_factory=AttackConfig,
                                 description="The attack: adversarial rows for training, robustness in evaluation.")
    model: ClassifierConfig = Field(default_factory=RNNAttentionConfig,
                                    description="The classifier, by `kind`: rnn_attention or bag_of_ngrams.")
    pretrained: PretrainedConfig | None = Field(None, description="Start the encoder (and take the tokenizer) from a "
                                                                  "registered language model; None: from scratch.")
    train: TrainConfig = Field(default_factory=TrainConfig, description="The trainer's settings.")
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig,
                                           description="Temperature and rejection threshold, fitted on validation.")
    fewshot: FewShotConfig = Field(default_factory=lambda: FewShotConfig(enabled=False),
                                   description="Transfer to a second corpus with k examples per class.")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="Registered model and its gate.")
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig,
                                     description="Pruned and int8 variants of a new champion, registered beside it.")
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")

    @model_validator(mode="after")
    def _fewshot_needs_corpus(self) -> "PipelineConfig":
        if self.fewshot.enabled and self.fewshot.corpus is None:
            raise ValueError("fewshot.enabled is true but fewshot.corpus is not set")
        return self

    @model_validator(mode="after")
    def _pretrained_needs_a_recurrent_encoder(self) -> "PipelineConfig":
        if self.pretrained is not None and self.model.kind != "rnn_attention":
            raise ValueError(f"pretrained: a language model starts a recurrent encoder (model.kind rnn_attention), "
                             f"not model.kind {self.model.kind}")
        return self

    @model_validator(mode="after")
    def _robust_gate_needs_attack(self) -> "PipelineConfig":
        if self.registry.min_attacked_accuracy is not None and not self.attack.enabled:
            raise ValueError("registry.min_attacked_accuracy needs attack.enabled: true (the gate checks the "
                             "accuracy under attack that the robustness stage measures)")
        return self

    @model_validator(mode="after")
    def _ascc_needs_an_embedding_per_token(self) -> "PipelineConfig":
        if self.train.perturbation.method == "ascc" and self.model.kind == "bag_of_ngrams":
            raise ValueError("train.perturbation.method ascc combines each token's substitutes' embeddings, and a "
                             "bag of n-grams pools its tokens first: use fgm, pgd or freelb for model.kind "
                             "bag_of_ngrams")
        return self

    @model_validator(mode="after")
    def _distributed_plain_steps(self) -> "PipelineConfig":
        """What the train stage does not run under torchrun (yet): refreshed adversarial rows, gradual unfreezing."""
        if self.train.distributed is None:
            return self
        if self.attack.refresh.every:
            raise ValueError("train.distributed: adversarial rows re-generated during training (attack.refresh) are "
                             "not run under DDP; set attack.refresh.every: 0 or drop train.distributed")
        if self.pretrained is not None and self.pretrained.unfreeze == "gradual":
            raise ValueError("train.distributed: gradual unfreezing (pretrained.unfreeze: gradual) is not run under "
                             "DDP; set pretrained.unfreeze: all or drop train.distributed")
        return self

    @model_validator(mode="after")
    def _bag_of_ngrams_trains_with_its_own_defaults(self) -> "PipelineConfig":
        """A bag of n-grams learns with far larger steps than a recurrent model: the ``train`` settings a
        config leaves unset take ``BAG_TRAIN_DEFAULTS`` (chosen on validation across SST-2, TREC-6 and
        BANKING77: ``benchmarks/bag_defaults.py``); settings it gives are kept."""
        if self.model.kind == "bag_of_ngrams":
            for name, value in BAG_TRAIN_DEFAULTS.items():
                if name not in self.train.model_fields_set:
                    setattr(self.train, name, value)
        return self


class Seq2SeqPipelineConfig(_Pipeline):
    """Translation or summarization: one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["seq2seq"] = Field("seq2seq", description="The kind of pipeline (declared).")
    name: str = Field("seq2seq", description="The flow run's MLflow parent run name.")
    experiment: str = Field("lowlm-seq2seq", description="MLflow experiment the runs go to.")
    corpus: PairCorpusConfig = Field(description="The parallel corpus: source -> target pairs.")
    tokenizer: PairTokenizerConfig = Field(default_factory=PairTokenizerConfig,
                                           description="Source and target tokenizers (or one joint).")
    augment: PairAugmentConfig = Field(default_factory=PairAugmentConfig,
                                       description="Noise on training sources; back-translated pairs.")
    model: Seq2SeqModelConfig = Field(default_factory=Seq2SeqModelConfig, description="The encoder-decoder.")
    pretrained: PretrainedConfig | None = Field(None, description="Start the encoder (and take the source tokenizer) "
                                                                  "from a registered language model; None: from scratch.")
    train: Seq2SeqTrainConfig = Field(default_factory=Seq2SeqTrainConfig, description="The trainer's settings.")
    decode: DecodeConfig = Field(default_factory=DecodeConfig, description="Decoding for evaluation and serving.")
    robustness: SourceNoiseConfig = Field(default_factory=SourceNoiseConfig,
                                          description="The metric's drop under noise on test sources (evaluate).")
    registry: Seq2SeqRegistryConfig = Field(default_factory=Seq2SeqRegistryConfig,
                                            description="Registered model and its gate.")
    optimize: OptimizeConfig = Field(default_factory=OptimizeConfig,
                                     description="Pruned and int8 variants of a new champion, registered beside it.")
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")

    @model_validator(mode="after")
    def _copy_needs_joint_vocabulary(self) -> "Seq2SeqPipelineConfig":
        if (self.model.pointer or self.model.share_embeddings) and not self.tokenizer.joint:
            raise ValueError("model.pointer and model.share_embeddings need tokenizer.joint: true")
        return self

    @model_validator(mode="after")
    def _pretrained_encoder_trains_whole(self) -> "Seq2SeqPipelineConfig":
        """The seq2seq trainer fine-tunes a pretrained encoder with every weight at once: ``unfreeze``
        defaults to ``all`` here, and ``gradual`` (layer groups of a classifier) is an error."""
        if self.pretrained is None:
            return self
        if "unfreeze" not in self.pretrained.model_fields_set:
            self.pretrained = self.pretrained.model_copy(update={"unfreeze": "all"})
        elif self.pretrained.unfreeze != "all":
            raise ValueError("pretrained.unfreeze: gradual unfreezing is for classifiers; a seq2seq model trains "
                             "its pretrained encoder with every other weight (unfreeze: all)")
        bt = self.augment.backtranslation
        if self.augment.enabled and bt is not None and bt.tag:
            raise ValueError("pretrained: the language model's vocabulary has no id for the back-translation tag; "
                             "set augment.backtranslation.tag: false")
        return self


class LanguageModelPipelineConfig(_Pipeline):
    """Pretrain a language model on unlabelled text: one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["lm"] = Field("lm", description="The kind of pipeline (declared).")
    name: str = Field("lm", description="The flow run's MLflow parent run name.")
    experiment: str = Field("lowlm-lm", description="MLflow experiment the runs go to.")
    corpus: TextCorpusConfig = Field(description="Unlabelled text: sources, exclusions, held-out splits.")
    tokenizer: TokenizerConfig = Field(default_factory=lambda: TokenizerConfig(max_length=512),
                                       description="Tokenizer fitted on the train texts (the classifiers reuse it).")
    model: LanguageModelConfig = Field(default_factory=LanguageModelConfig, description="The language model.")
    train: LanguageModelTrainConfig = Field(default_factory=LanguageModelTrainConfig,
                                            description="The trainer's settings.")
    registry: LanguageModelRegistryConfig = Field(default_factory=LanguageModelRegistryConfig,
                                                  description="Registered model and its gate (lower perplexity wins).")
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")


class QAPipelineConfig(_Pipeline):
    """Extractive question answering (SQuAD's task): one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["qa"] = Field("qa", description="The kind of pipeline (declared).")
    name: str = Field("qa", description="The flow run's MLflow parent run name.")
    experiment: str = Field("lowlm-qa", description="MLflow experiment the runs go to.")
    corpus: QACorpusConfig = Field(description="SQuAD-format questions, split by article.")
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig,
                                       description="Word tokenizer fitted on the train contexts and questions "
                                                   "(max_length is unused: model.window cuts contexts).")
    model: ReaderConfig = Field(default_factory=ReaderConfig, description="The reader.")
    train: ReaderTrainConfig = Field(default_factory=ReaderTrainConfig, description="The trainer's settings.")
    registry: QARegistryConfig = Field(default_factory=QARegistryConfig, description="Registered model and its gate.")
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")

    @model_validator(mode="after")
    def _word_tokens(self) -> "QAPipelineConfig":
        if self.tokenizer.kind == "char":
            raise ValueError("tokenizer.kind char: a reader's features and spans are per word; use word or bpe")
        return self


PIPELINES: dict[str, type[_Pipeline]] = {"classification": PipelineConfig, "seq2seq": Seq2SeqPipelineConfig,
                                         "lm": LanguageModelPipelineConfig, "qa": QAPipelineConfig}
