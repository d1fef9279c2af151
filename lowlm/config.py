"""Configuration as data: one pydantic model per stage, composed into one pipeline config.

Prefect renders these as a form in its UI; YAML presets under ``configs/`` load into the same
models (``PipelineConfig.from_yaml``).  Nothing here runs code: it only validates.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

CorpusFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "tab_lines", "colon_lines", "trec"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CorpusConfig(_Strict):
    """Where a labelled corpus lives and how to read it."""

    path: str = Field(description="File or folder. A folder may hold train/validation/test files.")
    format: CorpusFormat = Field("auto", description="File format; 'auto' goes by file extension.")
    text_column: str | list[str] = Field(
        "text", description="Text field; a list names alternatives tried in order (files may differ)."
    )
    label_column: str | list[str] = "label"
    encoding: str = Field("utf-8", description="Text encoding of line files, CSV and TSV (e.g. latin-1).")
    label_level: Literal["coarse", "fine"] = Field(
        "coarse", description="For 'trec' files (COARSE:fine text): which label to keep."
    )
    test_file: str | None = Field(None, description="Separate test file (overrides a folder's test split).")
    validation_file: str | None = None
    test_size: float = Field(0.2, gt=0, lt=1, description="Used when the files hold no test split.")
    validation_size: float = Field(0.1, gt=0, lt=1, description="Carved from train when no validation split.")
    seed: int = 13
    max_rows: int | None = Field(None, gt=0, description="Keep a seeded sample of at most this many train rows.")


class TokenizerConfig(_Strict):
    kind: Literal["word", "bpe", "char"] = "word"
    lowercase: bool = True
    nfkc: bool = True
    vocab_size: int = Field(30000, gt=10)
    min_frequency: int = Field(1, ge=1)
    max_length: int = Field(128, gt=0, description="Longer inputs are truncated at encode time.")


class AugmentConfig(_Strict):
    enabled: bool = True
    methods: list[Literal["random_swap", "random_delete", "synonym", "spelling", "char_keyboard"]] = Field(
        default_factory=lambda: ["random_swap", "synonym"]
    )
    copies: int = Field(1, ge=1, description="Augmented copies per source row and method.")
    fraction: float = Field(0.5, gt=0, le=1, description="Share of train rows to augment.")
    seed: int = 13


class AttackConfig(_Strict):
    enabled: bool = True
    methods: list[Literal["char_swap", "char_keyboard", "char_insert", "char_delete"]] = Field(
        default_factory=lambda: ["char_swap", "char_keyboard"]
    )
    max_examples: int = Field(200, gt=0, description="Correctly classified test rows to attack.")
    tries: int = Field(5, ge=1, description="Perturbations tried per example and method.")
    seed: int = 13


class ModelConfig(_Strict):
    kind: Literal["bag_of_ngrams", "rnn_attention"] = "rnn_attention"
    embedding_dim: int = Field(100, gt=0)
    # bag of n-grams
    ngrams: int = Field(2, ge=1, le=4)
    buckets: int = Field(1 << 20, ge=0, description="Hashed n-gram buckets (0 disables n-grams).")
    # recurrent encoder
    cell: Literal["gru", "lstm"] = "gru"
    hidden_dim: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=4)
    attention_dim: int = Field(128, gt=0)
    char_dim: int = Field(0, ge=0, description="Character-encoding size per word; 0 disables it.")
    dropout: float = Field(0.3, ge=0, lt=1)


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
    seed: int = 13
    threads: int | None = Field(None, ge=1, description="torch threads; None keeps torch's default.")
    device: str = Field("cpu", description="'cpu', 'cuda', 'cuda:1' or 'auto' (cuda when available).")
    progress: bool = True


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


class PipelineConfig(_Strict):
    """The whole classification pipeline: one form in the Prefect UI, one YAML preset on disk."""

    name: str = "classification"
    experiment: str = "lowlm-classification"
    corpus: CorpusConfig
    tokenizer: TokenizerConfig = Field(default_factory=TokenizerConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    attack: AttackConfig = Field(default_factory=AttackConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    fewshot: FewShotConfig = Field(default_factory=lambda: FewShotConfig(enabled=False))
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    work_dir: str = Field(".lowlm", description="Where stage outputs (splits, tokenizers, checkpoints) are kept.")

    @model_validator(mode="after")
    def _fewshot_needs_corpus(self) -> "PipelineConfig":
        if self.fewshot.enabled and self.fewshot.corpus is None:
            raise ValueError("fewshot.enabled is true but fewshot.corpus is not set")
        return self

    def digest(self) -> str:
        """Stable hash of the config, for tags and cache keys."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_pipeline_config(preset: str | Path, overrides: dict[str, object] | None = None) -> PipelineConfig:
    """A preset by name (``configs/NAME.yaml``) or a YAML path, with dotted ``overrides`` applied.

    >>> load_pipeline_config("sample", {"train.epochs": 2}).train.epochs   # doctest: +SKIP
    2
    """
    path = Path(preset)
    if not path.exists():
        candidates = [Path("configs") / f"{preset}.yaml", CONFIGS_DIR / f"{preset}.yaml"]
        path = next((c for c in candidates if c.exists()), None)
        if path is None:
            names = sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))
            raise FileNotFoundError(f"no config file {preset!r} and no preset of that name; presets: {names}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return PipelineConfig.model_validate(raw)
    except Exception as exc:
        raise ValueError(f"{path}: invalid pipeline config:\n{exc}") from None


def parse_override(item: str) -> tuple[str, object]:
    """``key=value`` with the value read as YAML: ``train.epochs=3`` -> ("train.epochs", 3)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ValueError(f"expected key=value, got {item!r}")
    return key.strip(), yaml.safe_load(value)


def set_dotted(data: dict, dotted: str, value) -> None:
    """Set ``data['a']['b'] = value`` for ``dotted='a.b'``, creating mappings on the way.

    >>> d = {}; set_dotted(d, "train.epochs", 3); d
    {'train': {'epochs': 3}}
    """
    keys = dotted.split(".")
    for key in keys[:-1]:
        data = data.setdefault(key, {})
        if not isinstance(data, dict):
            raise ValueError(f"cannot set {dotted}: {key} is not a mapping")
    data[keys[-1]] = value
