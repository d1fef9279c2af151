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


class _Pipeline(_Strict):
    def digest(self) -> str:
        """Stable hash of the whole config, for tags and cache keys."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


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


class PipelineConfig(_Pipeline):
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



CONFIGS_DIR = Path(__file__).resolve().parent.parent / "configs"


def load_pipeline_config(preset: str | Path, overrides: dict[str, object] | None = None,
                         model: type[BaseModel] | None = None):
    """A preset by name (``configs/NAME.yaml``) or a YAML path, with dotted ``overrides`` applied,
    validated as ``model`` (default ``PipelineConfig``).

    >>> load_pipeline_config("sample", {"train.epochs": 2}).train.epochs   # doctest: +SKIP
    2
    """
    path, raw = read_preset(preset)
    for key, value in (overrides or {}).items():
        set_dotted(raw, key, value)
    try:
        return (model or PipelineConfig).model_validate(raw)
    except Exception as exc:
        raise ValueError(f"{path}: invalid pipeline config:\n{exc}") from None


def read_preset(preset: str | Path) -> tuple[Path, dict]:
    """The YAML of a preset (``configs/NAME.yaml``, looked up in the working folder first) or a path."""
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
    return path, raw


def pipeline_kind(preset: str | Path) -> str:
    """``"seq2seq"`` for a preset of source -> target pairs (it has ``decode`` or source fields), else
    ``"classification"``."""
    _, raw = read_preset(preset)
    corpus = raw.get("corpus") or {}
    pairs = "decode" in raw or any(k in corpus for k in ("source_path", "source_field"))
    return "seq2seq" if pairs else "classification"


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


class PairCorpusConfig(_Strict):
    """Where a parallel corpus (source -> target pairs) lives and how to read, filter and split it.

    ``aligned``: two files, one sentence a line, line i of one translating line i of the other
    (gzipped or plain). ``tsv``: one pair a line, fields picked by column index. ``jsonl``: one JSON
    object a line, fields picked by key. Splits that no file gives are held out of train, seeded.
    """

    format: Literal["aligned", "tsv", "jsonl"]
    # aligned
    source_path: str | None = Field(None, description="aligned: source sentences, one a line (.gz or plain).")
    target_path: str | None = Field(None, description="aligned: target sentences, line for line.")
    validation_source: str | None = Field(None, description="aligned: validation source file (with validation_target).")
    validation_target: str | None = None
    test_source: str | None = Field(None, description="aligned: test source file (with test_target).")
    test_target: str | None = None
    # tsv / jsonl
    path: str | None = Field(None, description="tsv/jsonl: the file of pairs (.gz or plain).")
    validation_path: str | None = Field(None, description="tsv/jsonl: separate validation file, same layout.")
    test_path: str | None = Field(None, description="tsv/jsonl: separate test file, same layout.")
    source_field: int | str | None = Field(
        None, description="tsv: column index (default 0); jsonl: key of the source text (required)."
    )
    target_field: int | str | None = Field(
        None, description="tsv: column index (default 1); jsonl: key of the target text (required)."
    )
    encoding: str = "utf-8"
    # filtering
    max_source_tokens: int | None = Field(None, gt=0, description="Drop pairs whose source is longer; None keeps all.")
    max_target_tokens: int | None = Field(None, gt=0, description="Drop pairs whose target is longer; None keeps all.")
    source_unit: Literal["word", "char"] = Field("word", description="What a source token is for the length limits.")
    target_unit: Literal["word", "char"] = Field(
        "word", description="'char' counts non-space characters: for Chinese, Japanese and other unsegmented text."
    )
    min_tokens: int = Field(1, ge=1, description="Drop pairs with fewer tokens than this on either side.")
    dedupe: bool = Field(True, description="Drop repeats of a (source, target) pair already read in the same split.")
    # splitting
    group_by_source: bool = Field(
        True, description="Hold out whole groups of pairs sharing a source, so no held-out source is trained on."
    )
    test_size: float | int = Field(0.1, gt=0, description="When no test file: a fraction (<1) or a count (>=1).")
    validation_size: float | int = Field(0.1, gt=0, description="When no validation file: a fraction or a count.")
    seed: int = 13
    max_pairs: int | None = Field(None, gt=0, description="Keep a seeded sample of at most this many train pairs.")

    @model_validator(mode="after")
    def _check(self) -> "PairCorpusConfig":
        import codecs

        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ValueError(f"encoding: unknown text encoding {self.encoding!r}") from None
        if self.format == "aligned":
            used, unused = ("source_path", "target_path"), ("path", "validation_path", "test_path",
                                                            "source_field", "target_field")
            for split in ("validation", "test"):
                if (getattr(self, f"{split}_source") is None) != (getattr(self, f"{split}_target") is None):
                    raise ValueError(f"aligned: give both {split}_source and {split}_target, or neither")
        else:
            used, unused = ("path",), ("source_path", "target_path", "validation_source", "validation_target",
                                       "test_source", "test_target")
        missing = [name for name in used if getattr(self, name) is None]
        if missing:
            raise ValueError(f"format {self.format!r} needs {' and '.join(missing)}")
        extra = [name for name in unused if getattr(self, name) is not None]
        if extra:
            raise ValueError(f"format {self.format!r} does not use {', '.join(extra)}")
        if self.format == "tsv":
            self.source_field = 0 if self.source_field is None else self.source_field
            self.target_field = 1 if self.target_field is None else self.target_field
            for name in ("source_field", "target_field"):
                value = getattr(self, name)
                if not isinstance(value, int) or value < 0:
                    raise ValueError(f"tsv: {name} must be a column index (0, 1, ...), got {value!r}")
        elif self.format == "jsonl":
            for name in ("source_field", "target_field"):
                value = getattr(self, name)
                if not isinstance(value, str) or not value:
                    raise ValueError(f"jsonl: {name} must be the key of a text field, got {value!r}")
        if self.format != "aligned" and self.source_field == self.target_field:
            raise ValueError(f"source_field and target_field are both {self.source_field!r}")
        for name in ("test_size", "validation_size"):
            value = getattr(self, name)
            if value >= 1:
                if float(value) != int(value):
                    raise ValueError(f"{name}: a fraction must be below 1 and a count a whole number, got {value}")
                setattr(self, name, int(value))
        for name in ("max_source_tokens", "max_target_tokens"):
            limit = getattr(self, name)
            if limit is not None and limit < self.min_tokens:
                raise ValueError(f"{name} ({limit}) is below min_tokens ({self.min_tokens}): nothing could pass")
        return self


class Seq2SeqTrainConfig(TrainConfig):
    """Training settings for sequence-to-sequence models: the classifier's plus decoding and smoothing."""

    label_smoothing: float = Field(0.1, ge=0, lt=1)
    metric: Literal["bleu", "chrf", "rougeL", "loss"] = Field(
        "bleu", description="Validation metric for early stopping (greedy decoding; 'loss' is teacher-forced).")
    bleu_tokenize: str = Field("13a", description="sacreBLEU tokenizer: '13a', or 'zh' for Chinese targets.")
    validation_max_pairs: int = Field(1000, ge=1, description="Validation pairs decoded after each epoch.")
    max_length: int = Field(80, gt=0, description="Longest output when decoding.")


class PairTokenizerConfig(_Strict):
    source: TokenizerConfig = Field(default_factory=lambda: TokenizerConfig(max_length=100))
    target: TokenizerConfig = Field(default_factory=lambda: TokenizerConfig(max_length=100))
    joint: bool = Field(False, description="One vocabulary for both sides (trained on both): needed for copying.")


class PairAugmentConfig(_Strict):
    """Noise on the source side of training pairs (targets stay clean): robustness to typos."""

    enabled: bool = False
    methods: list[Literal["random_swap", "random_delete", "spelling", "char_keyboard"]] = Field(
        default_factory=lambda: ["char_keyboard"])
    copies: int = Field(1, ge=1)
    fraction: float = Field(0.2, gt=0, le=1)
    seed: int = 13


class Seq2SeqModelConfig(_Strict):
    embedding_dim: int = Field(256, gt=0)
    hidden_dim: int = Field(256, gt=0)
    attention: Literal["additive", "multiplicative"] = "additive"
    attention_dim: int = Field(256, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    tie_embeddings: bool = False
    pointer: bool = Field(False, description="Pointer-generator: copy source tokens (needs tokenizer.joint).")
    share_embeddings: bool = Field(False, description="One embedding table for both sides (needs tokenizer.joint).")


class DecodeConfig(_Strict):
    beam_size: int = Field(5, ge=1)
    max_length: int = Field(80, gt=0)
    length_penalty: float = Field(1.0, ge=0)
    attention_samples: int = Field(4, ge=0, description="Test sentences drawn as attention heat maps.")


class Seq2SeqRegistryConfig(_Strict):
    model_name: str = "lowlm-seq2seq"
    metric: Literal["bleu", "chrf", "rougeL"] = "bleu"


class Seq2SeqPipelineConfig(_Pipeline):
    """Translation or summarization: one form in the Prefect UI, one YAML preset on disk."""

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
