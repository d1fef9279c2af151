"""Where corpora live and how to read them: labelled text and source -> target pairs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from lowlm.config.base import _Strict

CorpusFormat = Literal["auto", "csv", "tsv", "json", "jsonl", "parquet", "lines", "tab_lines", "colon_lines", "trec"]
Column = str | int
OUT_OF_SCOPE = "out_of_scope"  # the label of rows whose intent the model never trained on (out_of_scope_labels)


def _split_sizes(config) -> None:
    """``test_size`` / ``validation_size``: a fraction below 1, or a whole count (made an int)."""
    for name in ("test_size", "validation_size"):
        value = getattr(config, name)
        if value >= 1:
            if float(value) != int(value):
                raise ValueError(f"{name}: a fraction must be below 1 and a count a whole number, got {value}")
            setattr(config, name, int(value))


class CorpusConfig(_Strict):
    """Where a labelled corpus lives and how to read it.

    Layouts beyond "a header line naming a text and a label column": CSV/TSV without a header
    (``header: false``, columns by position or named by ``columns``), line files with any separator in
    either order (``format: lines`` with ``sep`` and ``columns``), JSON documents (records or pairs, one
    list or one per split), texts joined from several fields (``join_columns``), raw label values given
    names (``label_names``).
    """

    path: str = Field(description="File or folder. A folder may hold train/validation/test files.")
    format: CorpusFormat = Field(
        "auto", description="File format; 'auto' goes by file extension (.csv, .tsv, .json, .jsonl, .parquet, "
        ".txt: tab_lines, .label: trec). 'json': one JSON document, a list of records or [text, label] pairs, or "
        "an object whose keys are splits (train, validation/dev, test) each holding such a list; a .json file of "
        "JSON Lines needs format 'jsonl'. 'lines': one example a line, text and label split at `sep`, in the "
        "order `columns` gives.")
    text_column: Column | list[Column] = Field(
        "text", description="Text field: a name, or a position (0, 1, ...) in the file's columns; a list names "
        "alternatives tried in order (files may differ). Not used with join_columns."
    )
    label_column: Column | list[Column] = Field(
        "label", description="Label field: a name, or a position (0, 1, ...); a list names alternatives.")
    header: bool | None = Field(
        None, description="CSV/TSV: whether the first line names the columns. Default: yes, unless `columns` "
        "names them. false: every line is data, columns named by `columns` or by position ('0', '1', ...).")
    columns: list[str] | None = Field(
        None, description="Names for the columns by position: CSV/TSV without a header line (with header: true, "
        "they replace the header's names); [text, label] or [label, text] for 'lines'; the order of the items of "
        "[text, label] pairs in a JSON document (default [text, label]).")
    sep: str | None = Field(
        None, description="'lines': the separator between text and label (any string, e.g. '\\t', '@', ' ||| '; "
        "default a tab). Split at its first occurrence when the label comes first, at its last when it comes last, "
        "so the text may hold it.")
    join_columns: list[Column] | None = Field(
        None, description="Fields joined into the text, in order (e.g. [title, description]); empty parts are "
        "skipped. Instead of text_column, whose list means alternatives.")
    join: str = Field(" ", description="What join_columns are joined with.")
    drop_empty: bool = Field(
        False, description="Drop rows whose text is empty or missing (counted in Corpus.dropped['empty_text']); "
        "off: such a row is an error naming it.")
    label_names: dict[str | int | float, str | int] | None = Field(
        None, description="Raw label value -> name (e.g. {1: World, 2: Sports}); keys compare as labels do, so 1, "
        "'1' and 1.0 are one key. Applied to every file read, added data included; a value already one of the "
        "names is kept, any other value missing from the mapping is an error.")
    encoding: str = Field("utf-8", description="Text encoding of line files, CSV, TSV and JSON (e.g. latin-1).")
    language: str | None = Field(None, description="Language code of the texts (e.g. 'en'): round-trip "
                                                   "back-translation checks its translators against it.")
    label_level: Literal["coarse", "fine"] = Field(
        "coarse", description="For 'trec' files (COARSE:fine text): which label to keep."
    )
    test_file: str | None = Field(None, description="Separate test file (overrides a folder's test split).")
    validation_file: str | None = None
    test_size: float | int = Field(
        0.2, gt=0, description="When the files hold no test split: a fraction of the rows (<1) or a count (>=1).")
    validation_size: float | int = Field(
        0.1, gt=0, description="Carved from train when no validation split: a fraction (<1) or a count (>=1).")
    seed: int = 13
    max_rows: int | None = Field(None, gt=0, description="Keep a seeded sample of at most this many train rows.")
    out_of_scope_labels: list[str] = Field(
        default_factory=list, description="Label names (after label_names) of intents the model never trains on: "
        "their train rows are dropped, their validation and test rows are labelled 'out_of_scope' (splits carved "
        "from train take their share of them first), so calibration picks a rejection threshold and evaluation "
        "reports out-of-scope recall. Empty: every label is trained on.")
    allow_new_labels: bool = Field(
        False, description="Added data (retraining) may bring labels the corpus lacks; off: such files are refused.")

    @model_validator(mode="after")
    def _check(self) -> "CorpusConfig":
        from lowlm.data.layouts import (
            label_name,  # lowlm.data.layouts imports no config
        )

        _split_sizes(self)
        if self.label_names is not None:
            names: dict = {}
            for key, value in self.label_names.items():
                if label_name(key) in names:
                    raise ValueError(f"label_names: the keys {names[label_name(key)][0]!r} and {key!r} are one label")
                names[label_name(key)] = (key, str(value))
            self.label_names = {key: value for key, (_, value) in names.items()}
        if len(set(self.out_of_scope_labels)) != len(self.out_of_scope_labels):
            raise ValueError(f"out_of_scope_labels: a label is listed twice in {self.out_of_scope_labels}")
        if self.format == "lines" and self.columns is not None and sorted(self.columns) != ["label", "text"]:
            raise ValueError(f"lines: columns must be [text, label] or [label, text], got {self.columns}")
        if self.sep is not None and self.format != "lines":
            raise ValueError(f"sep is for format 'lines' (one example a line), not {self.format!r}")
        if self.sep == "":
            raise ValueError("sep: the separator cannot be empty")
        if self.join_columns is not None:
            if not self.join_columns:
                raise ValueError("join_columns: name at least one field")
            if "text_column" in self.model_fields_set:
                raise ValueError("give text_column (one field, or alternatives) or join_columns (fields joined), "
                                 "not both")
            if self.format in ("lines", "tab_lines", "colon_lines", "trec"):
                raise ValueError(f"join_columns is for files with columns, not format {self.format!r}")
        return self


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
    source_language: str | None = Field(None, description="Language code of the sources (e.g. 'de'): recorded in "
                                                          "the model, checked when another pipeline back-translates with it.")
    target_language: str | None = Field(None, description="Language code of the targets (e.g. 'en').")
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
        _split_sizes(self)
        for name in ("max_source_tokens", "max_target_tokens"):
            limit = getattr(self, name)
            if limit is not None and limit < self.min_tokens:
                raise ValueError(f"{name} ({limit}) is below min_tokens ({self.min_tokens}): nothing could pass")
        return self


class TextSourceConfig(_Strict):
    """Unlabelled text for a language model: a file and where its texts are, or a labelled corpus's train split.

    ``lines``: one text a line (.gz or plain). ``tsv``/``csv``: the ``field`` column (a header name, or a
    position with ``header: false``). ``jsonl``: the ``field`` key of each object. ``squad``: every
    paragraph's context in a SQuAD-format JSON file, of the articles ``articles`` names (1-based,
    inclusive). ``corpus``: the train split of a labelled corpus, split as its classification pipeline
    splits it (so its validation and test rows are never read)."""

    format: Literal["lines", "tsv", "csv", "jsonl", "squad", "corpus"]
    path: str | None = Field(None, description="The file (all formats but corpus).")
    field: str | int | None = Field(None, description="tsv/csv: the column (name or position); jsonl: the key.")
    header: bool = Field(True, description="tsv/csv: whether the first line names the columns.")
    articles: tuple[int, int] | None = Field(None, description="squad: first and last article (1-based) to read.")
    corpus: CorpusConfig | None = Field(None, description="corpus: the labelled corpus whose train texts are read.")
    encoding: str = "utf-8"
    max_texts: int | None = Field(None, gt=0, description="Keep the first this many texts of this source.")

    @model_validator(mode="after")
    def _check(self) -> "TextSourceConfig":
        if self.format == "corpus":
            if self.corpus is None or self.path is not None:
                raise ValueError("format 'corpus' takes corpus (a labelled corpus config), not path")
        elif self.path is None:
            raise ValueError(f"format {self.format!r} needs path")
        if self.format in ("tsv", "csv", "jsonl") and self.field is None:
            raise ValueError(f"format {self.format!r} needs field: the column or key that holds the text")
        if self.articles is not None and (self.format != "squad" or not 1 <= self.articles[0] <= self.articles[1]):
            raise ValueError(f"articles: a range [first, last] of 1-based article numbers, for format squad; "
                             f"got {self.articles} with format {self.format!r}")
        return self

    @property
    def name(self) -> str:
        return self.path if self.path is not None else f"train split of {self.corpus.path}"


class TextCorpusConfig(_Strict):
    """Unlabelled text from several sources, repeats dropped, texts of ``exclude`` dropped, then split
    (seeded) into train, validation (selects epochs) and test (held-out perplexity)."""

    sources: list[TextSourceConfig] = Field(min_length=1)
    exclude: list[TextSourceConfig] = Field(default_factory=list, description="Texts never trained on: any text "
                                            "read here (e.g. a benchmark's test split) is dropped from the sources.")
    min_words: int = Field(1, ge=1, description="Drop texts with fewer words.")
    validation_size: float | int = Field(0.02, gt=0, description="A fraction (<1) or a count (>=1) of the texts.")
    test_size: float | int = Field(0.02, gt=0, description="A fraction (<1) or a count (>=1) of the texts.")
    seed: int = 13

    @model_validator(mode="after")
    def _check(self) -> "TextCorpusConfig":
        _split_sizes(self)
        return self


class QACorpusConfig(_Strict):
    """Extractive question answering in SQuAD v1.1's JSON layout (``data`` -> ``paragraphs`` -> ``qas`` ->
    ``answers``), split by article so that no paragraph is in two splits.

    ``path``: one JSON file, or a folder whose ``*.json`` files are read in name order (articles numbered
    on across files): new data is a new file. Splits: the 1-based article ranges ``train_articles``,
    ``validation_articles`` and ``test_articles`` when given (all three; the last range may end at
    ``null``, the last article, so that a new file's articles go to that split and the others stay as
    they were), else a seeded shuffle of the articles cut by ``validation_size`` and ``test_size``
    (fractions below 1 or counts of articles)."""

    path: str = Field(description="A SQuAD-format JSON file, or a folder of them.")
    encoding: str = "utf-8"
    train_articles: tuple[int, int | None] | None = Field(
        None, description="First and last article (1-based) to train on; last null: through the last article.")
    validation_articles: tuple[int, int | None] | None = Field(None, description="Articles that select epochs "
                                                                                 "and settings.")
    test_articles: tuple[int, int | None] | None = Field(None, description="Articles reported on, once.")
    validation_size: float | int = Field(0.1, gt=0, description="Without ranges: a fraction (<1) or count of articles.")
    test_size: float | int = Field(0.2, gt=0, description="Without ranges: a fraction (<1) or count of articles.")
    seed: int = 13

    @model_validator(mode="after")
    def _check(self) -> "QACorpusConfig":
        _split_sizes(self)
        ranges = {n: getattr(self, f"{n}_articles") for n in ("train", "validation", "test")}
        given = [n for n, r in ranges.items() if r is not None]
        if given and len(given) != 3:
            raise ValueError(f"give train_articles, validation_articles and test_articles together, or none "
                             f"(got only {', '.join(f'{n}_articles' for n in given)})")
        if given:
            for name, (first, last) in ranges.items():
                if not 1 <= first <= (first if last is None else last):
                    raise ValueError(f"{name}_articles: [first, last] with 1 <= first <= last, got [{first}, {last}]")
            spans = sorted(ranges.values(), key=lambda r: r[0])
            for (a, b), (c, d) in zip(spans, spans[1:]):
                if b is None or c <= b:
                    raise ValueError(f"article ranges overlap: [{a}, {b}] and [{c}, {d}]; a paragraph must be in "
                                     f"one split only (only the last range may end at null)")
        return self
