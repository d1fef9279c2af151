"""Word-level, BPE and character-level tokenizers, all built on the ``tokenizers`` library.

One class, ``Tokenizer``, with train / encode / decode / save / load, whatever the kind:

>>> tok = Tokenizer.train(["the cat sat", "the dog sat"], kind="word")
>>> tok.decode(tok.encode("the cat sat"))
'the cat sat'
>>> Tokenizer.from_json(tok.to_json()).encode("the dog") == tok.encode("the dog")
True

Ids 0-3 are always ``[PAD]``, ``[UNK]``, ``[BOS]`` and ``[EOS]`` (the last two mark target
sequences for the sequence-to-sequence models). ``reserved`` tokens (``[BT]``, which starts
back-translated sources) follow them: each stays one token whatever the kind, never lowercased. Saved as the library's own JSON; nothing pickled.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Iterable, Literal, Sequence

from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers import Tokenizer as _HFTokenizer

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = [PAD, UNK, BOS, EOS]
BT_TAG = "[BT]"  # marks back-translated sources (tagged back-translation, Caswell et al. 2019): a reserved token
Kind = Literal["word", "bpe", "char"]


def _normalizer(lowercase: bool, nfkc: bool):
    steps = ([normalizers.NFKC()] if nfkc else []) + ([normalizers.Lowercase()] if lowercase else [])
    return normalizers.Sequence(steps) if steps else None


def _build(kind: Kind, lowercase: bool, nfkc: bool):
    if kind == "word":
        tok = _HFTokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
        tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)  # joins words with single spaces
    elif kind == "bpe":
        tok = _HFTokenizer(models.BPE(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    elif kind == "char":
        # Every character is a token, spaces included, so decoding restores the text exactly:
        # suits Chinese and other unsegmented scripts, and character embeddings.
        tok = _HFTokenizer(models.WordLevel(unk_token=UNK))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        tok.decoder = decoders.Fuse()
    else:
        raise ValueError(f"tokenizer kind must be word, bpe or char, got {kind!r}")
    norm = _normalizer(lowercase, nfkc)
    if norm is not None:
        tok.normalizer = norm
    return tok


_NO_SPACE_BEFORE = re.compile(r" ([.,!?;:%)\]}]|'s\b|'re\b|'ve\b|'ll\b|'d\b|'m\b|n't\b)")
_NO_SPACE_AFTER = re.compile(r"([(\[{$]) ")


def detokenize(text: str) -> str:
    """Undo the word tokenizer's punctuation split, so users and metrics see plain text.

    >>> detokenize("two dogs , one cat ( black ) . it ' s fine")
    "two dogs, one cat (black). it's fine"
    """
    text = re.sub(r"(\w) ' (s|re|ve|ll|d|m|t)\b", r"\1'\2", text)
    text = _NO_SPACE_BEFORE.sub(r"\1", text)
    return _NO_SPACE_AFTER.sub(r"\1", text)


UNK_WARNING_RATE = 0.10  # above this share of unknown validation tokens, the tokenize stage warns


def unknown_rate_warning(rate: float, kind: Kind, setting: str = "tokenizer.kind",
                         threshold: float = UNK_WARNING_RATE) -> str | None:
    """What to tell the user when more than ``threshold`` of the validation tokens are ``[UNK]``; else None.

    ``rate`` is ``Tokenizer.stats(validation_texts)["unk_rate"]``; ``setting`` names the config field
    to change. A word vocabulary fails on text without spaces (each unseen run of Chinese characters
    is one unknown "word"); a char or BPE one only on characters the training split lacks.

    >>> unknown_rate_warning(0.05, "word") is None
    True
    >>> unknown_rate_warning(0.224, "word")
    '22.4% of validation tokens are unknown to the word tokenizer; set tokenizer.kind: char (or bpe) for text without spaces (Chinese, Japanese) or with many rare words'
    """
    if rate <= threshold:
        return None
    head = f"{rate:.1%} of validation tokens are unknown to the {kind} tokenizer; "
    if kind == "word":
        return head + (f"set {setting}: char (or bpe) for text without spaces (Chinese, Japanese) "
                       "or with many rare words")
    prefix = setting.rsplit(".", 1)[0]
    return head + (f"the training split lacks characters the validation text uses: lower {prefix}.min_frequency "
                   f"or raise {prefix}.vocab_size, or train on more text")


class Tokenizer:
    """A trained vocabulary plus the rules to split text into its ids."""

    def __init__(self, backend: _HFTokenizer, kind: Kind, max_length: int = 128):
        self.backend = backend
        self.kind = kind
        self.max_length = max_length

    # -- training ---------------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        texts: Iterable[str],
        kind: Kind = "word",
        vocab_size: int = 30000,
        min_frequency: int = 1,
        lowercase: bool = True,
        nfkc: bool = True,
        max_length: int = 128,
        reserved: Sequence[str] = (),
    ) -> "Tokenizer":
        backend = _build(kind, lowercase, nfkc)
        specials = SPECIALS + [t for t in reserved if t not in SPECIALS]
        if kind == "bpe":
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
            )
        else:
            trainer = trainers.WordLevelTrainer(
                vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
            )
        backend.train_from_iterator(list(texts), trainer=trainer)
        return cls(backend, kind, max_length)

    # -- encoding ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.backend.encode(text).ids[: self.max_length]

    def encode_target_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """``[BOS] ids [EOS]`` per text (ids truncated to ``max_length``), for decoder targets."""
        return [[BOS_ID, *ids, EOS_ID] for ids in self.encode_batch(texts)]

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode many texts at once (the Rust backend runs them in parallel)."""
        return [enc.ids[: self.max_length] for enc in self.backend.encode_batch(list(texts))]

    def encode_spans(self, texts: Sequence[str]) -> list[tuple[list[int], list[str], list[tuple[int, int]]]]:
        """Per text, untruncated: ids, the normalised tokens and each token's character offsets in the
        original text (extractive QA maps answers through them).

        >>> tok = Tokenizer.train(["The cat sat."], kind="word")
        >>> ids, tokens, offsets = tok.encode_spans(["The cat sat."])[0]; tokens, offsets[1]
        (['the', 'cat', 'sat', '.'], (4, 7))
        """
        return [(enc.ids, enc.tokens, enc.offsets) for enc in self.backend.encode_batch(list(texts))]

    def stats(self, texts: Sequence[str]) -> dict[str, float]:
        """How this vocabulary fits ``texts``: size, mean and longest length (before truncation),
        share of unknown tokens, and how many texts ``max_length`` cuts.

        >>> tok = Tokenizer.train(["a b c", "a b"], kind="word")
        >>> s = tok.stats(["a b z"]); s["unk_rate"], s["mean_tokens"], s["truncated"]
        (0.3333333333333333, 3.0, 0)
        """
        full = [enc.ids for enc in self.backend.encode_batch(list(texts))]
        kept = [ids[: self.max_length] for ids in full]
        tokens = max(1, sum(len(ids) for ids in kept))
        return {"vocab_size": self.vocab_size, "mean_tokens": sum(len(ids) for ids in full) / max(1, len(full)),
                "max_tokens": max((len(ids) for ids in full), default=0),
                "unk_rate": sum(ids.count(UNK_ID) for ids in kept) / tokens,
                "truncated": sum(len(ids) > self.max_length for ids in full)}

    def decode(self, ids: Sequence[int]) -> str:
        text = self.backend.decode(list(ids), skip_special_tokens=True)
        return detokenize(text) if self.kind == "word" else text

    def id_to_token(self, i: int) -> str | None:
        return self.backend.id_to_token(i)

    def tokens(self) -> list[str]:
        """All vocabulary entries ordered by id."""
        vocab = self.backend.get_vocab()
        return [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]

    # -- persistence ------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(
            {"lowlm": {"kind": self.kind, "max_length": self.max_length}, "backend": json.loads(self.backend.to_str())}
        )

    @classmethod
    def from_json(cls, blob: str) -> "Tokenizer":
        data = json.loads(blob)
        meta = data["lowlm"]
        return cls(_HFTokenizer.from_str(json.dumps(data["backend"])), meta["kind"], meta["max_length"])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Tokenizer":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
