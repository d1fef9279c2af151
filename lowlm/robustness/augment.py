"""Training-data augmentation: a chain of augmenters, each making its own new rows from the originals.

Word and character noise are nlpaug's (WordNet synonyms, random swap/deletion, misspellings,
keyboard typos), plus EDA's random insertion (a WordNet synonym of one of the text's words, put at
a random place) as an nlpaug ``WordAugmenter``; ``eda`` gives each new row one of EDA's four
operations in turn; ``backtranslation`` paraphrases by a round trip through lowlm translators.

The work is cut into shards of rows. What each row gets is drawn from ``(seed, augmenter, row)``
alone, and each shard seeds the generators from ``(seed, shard)``, so a shard's rows are the same
whichever runner or process computes it, and in whatever order:

>>> texts = ["the film was great fun", "a dull and tired story"]
>>> rows = augment_shard(texts, [0, 1], [("random_swap", NoiseAugmenter(kind="random_swap", ratio=2))], seed=0, shard=0)
>>> [(r.row, r.augmenter) for r in rows]
[(0, 'random_swap'), (0, 'random_swap'), (1, 'random_swap'), (1, 'random_swap')]
>>> kept, dropped = keep_new(texts, rows)
>>> all(r.text not in texts for r in kept)
True

WordNet needs NLTK data on disk: ``NLTK_DATA`` names the folder (the project's Makefile and test
set-up point it at ``../shared/data/nltk_data``); nothing is downloaded.
"""

from __future__ import annotations

import random
import re
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from lowlm.config.augment import BackTranslationAugmenter, EdaAugmenter, NoiseAugmenter  # noqa: F401 (doctest)

# nlpaug draws from the generators its modules hold (``random`` and ``numpy.random``): one shard at a time
# points them at generators of its own (``shard_generators``)
_GLOBAL_RNG = threading.Lock()
# NLTK's corpus readers share one open zip file per corpus and are not safe across threads (two attack
# shards on the thread runner read WordNet at once): every read here holds this lock
NLTK_LOCK = threading.RLock()
WORDNET_RESOURCES = ("corpora/wordnet.zip", "taggers/averaged_perceptron_tagger_eng.zip")
EDA_OPERATIONS = ("synonym", "random_insert", "random_swap", "random_delete")


class WordNetMissing(RuntimeError):
    """NLTK's WordNet (or the POS tagger the synonym augmenter needs) is not on the NLTK data path."""


def check_wordnet() -> None:
    """Raise ``WordNetMissing``, saying how to provide the data, unless WordNet and the tagger are found."""
    import nltk

    for resource in WORDNET_RESOURCES:
        try:
            nltk.data.find(resource)
        except LookupError:
            raise WordNetMissing(
                f"NLTK resource {resource!r} not found (searched {', '.join(map(str, nltk.data.path))}); set "
                "NLTK_DATA to a folder holding corpora/wordnet.zip and taggers/averaged_perceptron_tagger_eng.zip "
                "(../shared/data/nltk_data here; elsewhere: python -m nltk.downloader -d DIR wordnet "
                "averaged_perceptron_tagger_eng)") from None


def wordnet_synonyms(word: str) -> list[str]:
    """WordNet synonyms of ``word`` (lemma names, underscores as spaces), without the word itself, in
    WordNet's order. ``check_wordnet`` first."""
    from nltk.corpus import wordnet

    seen: dict[str, None] = {}
    with NLTK_LOCK:
        lemmas = [lemma.name() for synset in wordnet.synsets(word) for lemma in synset.lemmas()]
    for lemma in lemmas:
        name = lemma.replace("_", " ").replace("-", " ").lower()
        if name != word.lower() and all(c.isalpha() or c == " " for c in name):
            seen[name] = None
    return list(seen)


class _NumpyWith:
    """numpy, with ``random`` replaced by one seeded ``RandomState`` (what nlpaug's modules see as ``np``)."""

    def __init__(self, generator: np.random.RandomState):
        self.random = generator

    def __getattr__(self, name):
        return getattr(np, name)


_SHARD = threading.local()  # the generator of the shard running now (SynonymInsertAug draws from it)


@contextmanager
def shard_generators(seed: int):
    """While a shard runs (holding ``_GLOBAL_RNG``), nlpaug's draws come from ``random.Random(seed)`` and
    ``numpy.random.RandomState(seed)``: the streams of ``random.seed(seed)`` and ``numpy.random.seed(seed)``,
    but private, so another thread of the process (a Dask worker's event loop, a Prefect client) that draws
    from the global generators in the meantime changes nothing."""
    import nlpaug.base_augmenter as base
    import nlpaug.model.base_model as model

    py, npy = random.Random(seed), np.random.RandomState(seed % 2**32)
    saved = base.random, base.np, model.np
    base.random, base.np, model.np = py, _NumpyWith(npy), _NumpyWith(npy)
    _SHARD.random = py
    try:
        yield
    finally:
        base.random, base.np, model.np = saved
        _SHARD.random = None


def _synonym_insert_class():
    from nlpaug.augmenter.word import WordAugmenter
    from nlpaug.util import Action

    class SynonymInsertAug(WordAugmenter):
        """EDA's random insertion: ``n = max(1, p * words)`` times, a random synonym of a random word of
        the text goes in at a random position."""

        def __init__(self, aug_p: float = 0.1, name: str = "SynonymInsert_Aug"):
            super().__init__(action=Action.INSERT, name=name, aug_p=aug_p, aug_min=1, aug_max=None)

        def insert(self, data):
            if not data or not data.strip():
                return data
            words = self.tokenizer(data)
            n = max(1, int(self.aug_p * len(words)))
            for _ in range(n):
                for _ in range(10):  # EDA tries ten words for one that has a synonym
                    draw = getattr(_SHARD, "random", None) or random
                    synonyms = wordnet_synonyms(draw.choice(words))
                    if synonyms:
                        words.insert(draw.randint(0, len(words)), draw.choice(synonyms))
                        break
            return self.reverse_tokenizer(words)

    return SynonymInsertAug


def noise_op(kind: str, p: float):
    """The nlpaug augmenter for one noise ``kind`` changing a share ``p`` of the words."""
    import nlpaug.augmenter.char as nac
    import nlpaug.augmenter.word as naw

    if kind in ("synonym", "random_insert"):
        check_wordnet()
    if kind == "synonym":
        return naw.SynonymAug(aug_src="wordnet", aug_p=p, aug_min=1)
    if kind == "random_insert":
        return _synonym_insert_class()(aug_p=p)
    if kind == "random_swap":
        return naw.RandomWordAug(action="swap", aug_p=p, aug_min=1)
    if kind == "random_delete":
        return naw.RandomWordAug(action="delete", aug_p=p, aug_min=1)
    if kind == "spelling":
        return _ordered_spelling(naw.SpellingAug(aug_p=p, aug_min=1))
    if kind == "keyboard":
        return nac.KeyboardAug(aug_char_p=p, aug_word_p=p, include_numeric=False, include_special_char=False)
    raise ValueError(f"unknown augmenter kind {kind!r}")


def _ordered_spelling(augmenter):
    """nlpaug keeps each word's misspellings as ``list(set(...))``, in an order that Python's string
    hashing (``PYTHONHASHSEED``) changes from process to process, so seeded draws would differ between
    processes. Its dictionary is loaded once per process: sort it once."""
    model = augmenter.model
    if not getattr(model, "_lowlm_sorted", False):
        for word, candidates in model.dict.items():
            model.dict[word] = sorted(candidates)
        model._lowlm_sorted = True
    return augmenter


@dataclass(frozen=True)
class NewRow:
    row: int  # the source row's position in the split
    augmenter: str
    text: str


def copies(ratio: float, seed: int, augmenter: str, row: int) -> int:
    """New rows ``row`` gets from an augmenter of ``ratio``: its whole part, plus one with the fraction's
    probability, drawn from (seed, augmenter, row) alone.

    >>> [copies(1.5, 0, "eda", r) for r in range(6)]
    [2, 1, 1, 1, 2, 1]
    """
    whole = int(ratio)
    extra = ratio - whole
    return whole + (1 if extra and random.Random(f"{seed}:{augmenter}:{row}").random() < extra else 0)


def _run_nlpaug(augmenter, texts: list[str]) -> list[str]:
    if not texts:
        return []
    out = augmenter.augment(texts)
    if len(out) != len(texts):  # nlpaug gave up on the list (e.g. a warning): one at a time
        out = [(augmenter.augment(t) or [t])[0] for t in texts]
    return [o[0] if isinstance(o, list) else o for o in out]


Translators = Callable[[str, BackTranslationAugmenter], list]  # (name, config) -> lowlm Translators, in order


def augment_shard(texts: Sequence[str], rows: Sequence[int], augmenters: Sequence[tuple[str, object]], seed: int,
                  shard: int, translators: Translators | None = None) -> list[NewRow]:
    """New rows for one shard: ``texts`` with their positions ``rows`` in the split; ``augmenters`` as
    ``(name, config)``. Outputs may still equal their source: ``keep_new`` drops those."""
    out: list[NewRow] = []
    for index, (name, cfg) in enumerate(augmenters):
        jobs = [(r, t, c) for r, t in zip(rows, texts) for c in range(copies(cfg.ratio, seed, name, r))]
        if not jobs:
            continue
        shard_seed = (seed * 1_000_003 + shard) * 101 + index
        if isinstance(cfg, BackTranslationAugmenter):
            from lowlm.robustness.backtranslation import BackTranslationAug, Generation

            g = cfg.generation
            aug = BackTranslationAug(translators(name, cfg), Generation(g.method, g.beam_size, g.top_k,
                                                                        g.temperature, g.max_length, g.batch_size),
                                     tag=getattr(cfg, "tag", False), seed=shard_seed)
            results = aug.augment([t for _, t, _ in jobs])
            out += [NewRow(r, name, new) for (r, _, _), new in zip(jobs, results)]
            continue
        if isinstance(cfg, EdaAugmenter):
            alphas = dict(zip(EDA_OPERATIONS, (cfg.alpha_sr, cfg.alpha_ri, cfg.alpha_rs, cfg.alpha_rd)))
            ops = [op for op in EDA_OPERATIONS if alphas[op] > 0]
            # row r's c-th new row gets operation (start_r + c) mod 4: every operation in turn, as EDA
            chosen = [ops[(random.Random(f"{seed}:{name}:op:{r}").randrange(len(ops)) + c) % len(ops)]
                      for r, _, c in jobs]
            plan = [(op, alphas[op]) for op in ops]
        else:
            chosen = [cfg.kind] * len(jobs)
            plan = [(cfg.kind, cfg.p)]
        results: dict[int, str] = {}
        with _GLOBAL_RNG:
            for op_index, (op, p) in enumerate(plan):
                augmenter = noise_op(op, p)  # built before seeding: building may draw random numbers
                picked = [i for i, o in enumerate(chosen) if o == op]
                with shard_generators(shard_seed * 7 + op_index):
                    for i, new in zip(picked, _run_nlpaug(augmenter, [jobs[i][1] for i in picked])):
                        results[i] = new
        out += [NewRow(r, name, results[i]) for i, (r, _, _) in enumerate(jobs)]
    return out


_WORDS = re.compile(r"\w+|[^\w\s]")


def _norm(text: str) -> str:
    """Lowercased word and punctuation tokens: nlpaug re-spaces punctuation, which changes nothing."""
    return " ".join(_WORDS.findall(text.replace("[BT]", " ").lower()))


def keep_new(originals: Sequence[str], rows: Sequence[NewRow]) -> tuple[list[NewRow], Counter]:
    """The rows worth adding, in order; and how many were dropped, by reason: ``empty``, ``unchanged``
    (equal to its source), ``original`` (equal to another original text), ``repeat`` (an earlier new row).
    Texts compare as lowercased tokens (``"wit ,"`` is ``"wit,"``); a ``[BT]`` tag does not count."""

    known = {_norm(t) for t in originals}
    seen: set[str] = set()
    kept, dropped = [], Counter()
    for row in rows:
        text = _norm(row.text or "")
        if not text:
            dropped["empty"] += 1
        elif text == _norm(originals[row.row]):
            dropped["unchanged"] += 1
        elif text in known:
            dropped["original"] += 1
        elif text in seen:
            dropped["repeat"] += 1
        else:
            seen.add(text)
            kept.append(row)
    return kept, dropped


def augmenter_names(augmenters: Sequence) -> list[str]:
    """One name per augmenter config: its kind, numbered when a kind repeats (``synonym``, ``synonym-2``)."""
    counts: Counter = Counter()
    names = []
    for cfg in augmenters:
        counts[cfg.kind] += 1
        names.append(cfg.kind if counts[cfg.kind] == 1 else f"{cfg.kind}-{counts[cfg.kind]}")
    return names


def shards(n_rows: int, shard_rows: int) -> list[range]:
    """Row ranges of at most ``shard_rows`` each.

    >>> shards(5, 2)
    [range(0, 2), range(2, 4), range(4, 5)]
    """
    return [range(start, min(start + shard_rows, n_rows)) for start in range(0, n_rows, shard_rows)]


def augment_texts(texts: Sequence[str], augmenters: Sequence, seed: int = 13, shard_rows: int = 500,
                  translators: Translators | None = None) -> tuple[list[NewRow], Counter]:
    """The whole chain in this process, shard by shard (what the stage maps over a task runner)."""
    named = list(zip(augmenter_names(augmenters), augmenters))
    rows: list[NewRow] = []
    for i, part in enumerate(shards(len(texts), shard_rows)):
        rows += augment_shard([texts[r] for r in part], list(part), named, seed, i, translators)
    return keep_new(texts, rows)


def augment_frame(frame, column: str, augmenters: Sequence, seed: int = 13, shard_rows: int = 500,
                  translators: Translators | None = None):
    """The kept new rows of a DataFrame, ready to append: each a copy of its source row (label and every
    other column) with ``column`` replaced, plus ``augmenter`` and ``source_row`` (the source's position)."""
    kept, _ = augment_texts(frame[column].tolist(), augmenters, seed, shard_rows, translators)
    out = frame.iloc[[r.row for r in kept]].reset_index(drop=True).copy()
    out[column] = [r.text for r in kept]
    out["augmenter"] = [r.augmenter for r in kept]
    out["source_row"] = [r.row for r in kept]
    return out
