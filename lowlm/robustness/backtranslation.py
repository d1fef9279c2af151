"""Back-translation with lowlm's own translators, as an nlpaug augmenter.

Two uses, one class:

- **Synthetic sources for a translation model** (Sennrich et al. 2016): a reverse model (target ->
  source language) turns target-side monolingual text into synthetic sources; each synthetic pair is
  ``(back-translation, original)``. With ``tag`` the synthetic sources start with the reserved
  ``[BT]`` token, so the forward model can tell them from real ones (Caswell et al. 2019).
- **Paraphrases of labelled text** (round trip, en -> X -> en): two translators in a row.

Generation is beam search, greedy, or sampling (top-k / temperature; Edunov et al. 2018 find
sampling better with much synthetic data, beam better with little). Sampling draws from a
generator seeded by ``seed``, so the same inputs give the same outputs.

nlpaug hands a list to ``substitute`` in one call when the augmenter's class is named
``BackTranslationAug`` (its hub-backed class of that name does the same), so a list is translated in
batches, never sentence by sentence:

>>> aug = BackTranslationAug([reverse_model], beam_size=5)          # doctest: +SKIP
>>> aug.augment(["a dog runs in the snow ."])                        # doctest: +SKIP
['ein hund läuft im schnee .']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from nlpaug.augmenter.word import WordAugmenter
from nlpaug.util import Action

from lowlm.inference.translator import Translator
from lowlm.text.tokenizer import BT_TAG


class LanguageMismatch(ValueError):
    """Translators that do not chain from the text's language to the language wanted."""


@dataclass(frozen=True)
class Generation:
    """How each translator of the chain generates: ``beam`` (``beam_size``), ``greedy`` or ``sample``."""

    method: str = "beam"
    beam_size: int = 5
    top_k: int = 10
    temperature: float = 1.0
    max_length: int = 80
    batch_size: int = 64
    length_penalty: float = 1.0

    def __post_init__(self):
        if self.method not in ("beam", "greedy", "sample"):
            raise ValueError(f"generation method must be beam, greedy or sample, got {self.method!r}")

    def kwargs(self, seed: int) -> dict:
        if self.method == "sample":
            return {"sample": True, "top_k": self.top_k, "temperature": self.temperature, "seed": seed,
                    "max_length": self.max_length, "batch_size": self.batch_size}
        return {"beam_size": self.beam_size if self.method == "beam" else 1, "max_length": self.max_length,
                "batch_size": self.batch_size, "length_penalty": self.length_penalty}


def check_chain(languages: Sequence[tuple[str | None, str | None]], start: str | None, end: str | None,
                names: Sequence[str]) -> None:
    """Raise ``LanguageMismatch`` unless the translators' (source, target) pairs chain from ``start`` to
    ``end``. A language nobody declared (None) matches anything.

    >>> check_chain([("en", "de"), ("de", "en")], "en", "en", ["a", "b"])
    >>> try:
    ...     check_chain([("de", "en")], "en", "de", ["models:/r@champion"])
    ... except LanguageMismatch as e:
    ...     print(e)
    models:/r@champion translates de -> en, but the pipeline needs en -> de
    """
    def same(a, b):
        return a is None or b is None or a == b

    chain = [start] + [None] * len(languages)
    for i, ((src, tgt), name) in enumerate(zip(languages, names)):
        want_src = chain[i]
        want_tgt = end if i == len(languages) - 1 else None
        if not same(src, want_src) or not same(tgt, want_tgt):
            raise LanguageMismatch(f"{name} translates {src or '?'} -> {tgt or '?'}, but the pipeline needs "
                                   f"{want_src or 'any'} -> {want_tgt or 'any'}")
        chain[i + 1] = tgt


class BackTranslationAug(WordAugmenter):
    """Translate each text through ``translators`` in order; the last output is the augmented text.

    ``tag`` prefixes outputs with ``[BT]`` (tagged back-translation). ``seed`` seeds sampling; a
    caller that shards its work gives each shard its own seed.
    """

    def __init__(self, translators: Sequence[Translator], generation: Generation | None = None, tag: bool = False,
                 seed: int = 0, name: str = "BackTranslationAug", verbose: int = 0):
        super().__init__(action=Action.SUBSTITUTE, name=name, aug_p=None, aug_min=None, aug_max=None,
                         tokenizer=None, device="cpu", verbose=verbose, include_detail=False)
        if not translators:
            raise ValueError("back-translation needs at least one translator")
        self.translators = list(translators)
        self.generation = generation or Generation()
        self.tag = tag
        self.seed = seed

    def substitute(self, data):
        texts = [data] if isinstance(data, str) else list(data)
        out = self.translate(texts)
        return out[0] if isinstance(data, str) else out

    def translate(self, texts: Sequence[str]) -> list[str]:
        """The chain's output per text, in order (empty inputs stay empty)."""
        keep = [i for i, t in enumerate(texts) if t and t.strip()]
        current = [texts[i] for i in keep]
        for step, translator in enumerate(self.translators):
            if not current:
                break
            current = translator.translate(current, **self.generation.kwargs(self.seed * 1009 + step))
        out = [""] * len(texts)
        for i, text in zip(keep, current):
            out[i] = f"{BT_TAG} {text}" if self.tag and text else text
        return out

    @classmethod
    def clean(cls, data):
        return data if isinstance(data, str) else list(data)

    def _validate_augment(self, data):
        return []  # every input is fine: empty ones come back empty
