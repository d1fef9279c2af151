"""Pipeline configs: one per kind of job, declared by its ``task`` field, composed of the stage configs.

Each is one form in the Prefect UI (the flow's parameter) and one YAML preset on disk.
``PIPELINES`` maps a ``task`` to its config class: the one place a new kind of pipeline is declared.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lowlm.config.base import _Pipeline
from lowlm.config.data import CorpusConfig, PairCorpusConfig
from lowlm.config.models import ClassifierConfig, RNNAttentionConfig, Seq2SeqModelConfig
from lowlm.config.stages import (AttackConfig, AugmentConfig, DecodeConfig, FewShotConfig, PairAugmentConfig,
                                 PairTokenizerConfig, RegistryConfig, Seq2SeqRegistryConfig, Seq2SeqTrainConfig,
                                 TokenizerConfig, TrainConfig)


class PipelineConfig(_Pipeline):
    """The whole classification pipeline: one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["classification"] = "classification"
    name: str = "classification"
    experiment: str = "lowlm-classification"
    corpus: CorpusConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    model: ClassifierConfig = Field(default_factory=RNNAttentionConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    fewshot: FewShotConfig = Field(default_factory=lambda: FewShotConfig(enabled=False))
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")

    @model_validator(mode="after")
    def _fewshot_needs_corpus(self) -> "PipelineConfig":
        if self.fewshot.enabled and self.fewshot.corpus is None:
            raise ValueError("fewshot.enabled is true but fewshot.corpus is not set")
        return self


class Seq2SeqPipelineConfig(_Pipeline):
    """Translation or summarization: one form in the Prefect UI, one YAML preset on disk."""

    task: Literal["seq2seq"] = "seq2seq"
    name: str = "seq2seq"
    experiment: str = "lowlm-seq2seq"
    corpus: PairCorpusConfig
    tokenizer: PairTokenizerConfig = Field(default_factory=PairTokenizerConfig)
    augment: PairAugmentConfig = Field(default_factory=PairAugmentConfig)
    model: Seq2SeqModelConfig = Field(default_factory=Seq2SeqModelConfig)
    train: Seq2SeqTrainConfig = Field(default_factory=Seq2SeqTrainConfig)
    decode: DecodeConfig = Field(default_factory=DecodeConfig)
    registry: Seq2SeqRegistryConfig = Field(default_factory=Seq2SeqRegistryConfig)
    work_dir: str = ".lowlm"

    @model_validator(mode="after")
    def _copy_needs_joint_vocabulary(self) -> "Seq2SeqPipelineConfig":
        if (self.model.pointer or self.model.share_embeddings) and not self.tokenizer.joint:
            raise ValueError("model.pointer and model.share_embeddings need tokenizer.joint: true")
        return self


PIPELINES: dict[str, type[_Pipeline]] = {"classification": PipelineConfig, "seq2seq": Seq2SeqPipelineConfig}
