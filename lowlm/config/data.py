"""Where corpora live and how to read them: labelled text and source -> target pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lowlm.config.base import _Strict

CorpusFormat = Literal["auto", "csv", "tsv", "jsonl", "parquet", "tab_lines", "colon_lines", "trec"]


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
    allow_new_labels: bool = Field(
        False, description="Added data (retraining) may bring labels the corpus lacks; off: such files are refused.")


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
