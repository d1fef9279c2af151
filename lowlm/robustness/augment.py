"""Training-data augmentation with nlpaug: word swaps and deletions, WordNet synonyms, spelling and
keyboard noise. Each augmented row keeps its source row's label.

WordNet needs NLTK data on disk: set ``NLTK_DATA`` (the project's Makefile points it at
``../shared/data/nltk_data``); nothing is downloaded.

>>> rows = augment_texts(["the film was great fun"], [1], ["random_swap"], copies=1, seed=0)
>>> len(rows), rows[0][1]
(1, 1)
"""

from __future__ import annotations

import random
from typing import Sequence

import numpy as np
import pandas as pd


def make_augmenter(method: str):
    """An nlpaug augmenter by our short name."""
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    if method == "random_swap":
        return naw.RandomWordAug(action="swap", aug_p=0.15)
    if method == "random_delete":
        return naw.RandomWordAug(action="delete", aug_p=0.1)
    if method == "synonym":
        _check_wordnet()
        return naw.SynonymAug(aug_src="wordnet", aug_p=0.15)
    if method == "spelling":
        return naw.SpellingAug(aug_p=0.1)
    if method == "char_keyboard":
        return nac.KeyboardAug(aug_char_p=0.1, aug_word_p=0.1)
    raise ValueError(f"unknown augmentation method {method!r}")


def _check_wordnet() -> None:
    import nltk

    for resource in ("corpora/wordnet.zip", "taggers/averaged_perceptron_tagger_eng.zip"):
        try:
            nltk.data.find(resource)
        except LookupError:
            raise RuntimeError(
                f"NLTK resource {resource!r} not found (searched {nltk.data.path}); "
                "set NLTK_DATA to a folder holding WordNet and the POS tagger, e.g. ../shared/data/nltk_data"
            ) from None


def augment_texts(texts: Sequence[str], labels: Sequence[int], methods: Sequence[str], copies: int = 1,
                  fraction: float = 1.0, seed: int = 13) -> list[tuple[str, int, str]]:
    """New ``(text, label, method)`` rows from a seeded ``fraction`` of the inputs.

    Outputs identical to their source (nothing to change in a one-word text) are dropped.
    """
    augmenters = {method: make_augmenter(method) for method in methods}  # imports may draw random numbers
    random.seed(seed)  # nlpaug draws from the global generators
    np.random.seed(seed)
    rng = random.Random(seed)
    chosen = [i for i in range(len(texts)) if rng.random() < fraction]
    out: list[tuple[str, int, str]] = []
    for method, augmenter in augmenters.items():
        sources = [texts[i] for i in chosen]
        for _ in range(copies):
            results = augmenter.augment(sources) if sources else []
            for i, new in zip(chosen, results):
                new = new[0] if isinstance(new, list) else new
                if new and new.strip() and new != texts[i]:
                    out.append((new, labels[i], method))
    return out


def augment_rows(frame: pd.DataFrame, column: str, methods: Sequence[str], copies: int = 1,
                 fraction: float = 1.0, seed: int = 13) -> pd.DataFrame:
    """New rows ready to save: each a copy of a source row (its label, its target, every other column)
    with ``column`` replaced by an augmented text, plus ``method`` and ``source_row`` (the source's position).

    >>> rows = augment_rows(pd.DataFrame({"text": ["the film was great fun"], "label": ["pos"]}), "text",
    ...                     ["random_swap"], seed=0)
    >>> list(rows.columns), rows["label"].tolist(), rows["source_row"].tolist()
    (['text', 'label', 'method', 'source_row'], ['pos'], [0])
    """
    rows = augment_texts(frame[column].tolist(), list(range(len(frame))), methods, copies, fraction, seed)
    positions = [r[1] for r in rows]
    out = frame.iloc[positions].reset_index(drop=True).copy()
    out[column] = [r[0] for r in rows]
    out["method"] = [r[2] for r in rows]
    out["source_row"] = positions
    return out
