"""Configuration as data: pydantic models, one per stage and per kind of model, composed into one
pipeline config per ``task``. Prefect renders them as forms; YAML presets load into the same models.
Nothing here runs code: it only validates.

    base       strict models and the config digest
    data       corpora (labelled text, pairs, unlabelled text, SQuAD-format questions)
    models     one config per model kind, discriminated on ``kind``
    augment    the augmenter chain (noise, EDA, back-translation) and its sharding
    attack     the attack recipe, adversarial rows (generate, refresh), FGM/PGD/FreeLB, seq2seq source noise
    stages     tokenizers, training, few-shot, decoding, registry
    pipelines  the pipeline configs, declared by ``task``; ``PIPELINES`` maps task -> config
    presets    YAML presets and ``--set`` overrides
"""

from lowlm.config.base import _Pipeline, _Strict
from lowlm.config.data import CorpusConfig, CorpusFormat, PairCorpusConfig
from lowlm.config.models import (BagOfNgramsConfig, ClassifierConfig, ClassifierConfigAdapter, ModelConfig,
                                 RNNAttentionConfig, Seq2SeqModelConfig, TransformerConfig)
from lowlm.config.pipelines import (PIPELINES, LanguageModelPipelineConfig, PipelineConfig, QAPipelineConfig,
                                    Seq2SeqPipelineConfig)
from lowlm.config.presets import (CONFIGS_DIR, declared_task, get_dotted, load_pipeline_config, parse_override,
                                  pipeline_task, read_preset, set_dotted)
from lowlm.config.augment import AugmentConfig, ModelRef, PairAugmentConfig
from lowlm.config.stages import (AttackConfig, DecodeConfig, FewShotConfig, PairTokenizerConfig, RegistryConfig, Seq2SeqRegistryConfig, Seq2SeqTrainConfig,
                                 TokenizerConfig, TrainConfig)

__all__ = [
    "AttackConfig", "AugmentConfig", "BagOfNgramsConfig", "CONFIGS_DIR", "ClassifierConfig", "ClassifierConfigAdapter",
    "CorpusConfig", "CorpusFormat", "LanguageModelPipelineConfig", "DecodeConfig", "FewShotConfig", "ModelConfig", "ModelRef", "PIPELINES", "PairAugmentConfig",
    "PairCorpusConfig", "PairTokenizerConfig", "PipelineConfig", "QAPipelineConfig", "RNNAttentionConfig", "RegistryConfig",
    "Seq2SeqModelConfig", "Seq2SeqPipelineConfig", "Seq2SeqRegistryConfig", "Seq2SeqTrainConfig", "TokenizerConfig",
    "TrainConfig", "TransformerConfig", "_Pipeline", "_Strict", "declared_task", "get_dotted", "load_pipeline_config", "parse_override",
    "pipeline_task", "read_preset", "set_dotted",
]
