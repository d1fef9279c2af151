"""What an attack may change in a text, and what it may change it to.

Words are runs of letters found in the raw text (``word_spans``); a change replaces one span and
leaves every other character as it was, so the text stays the user's text. Candidates for a word
come from WordNet, from the attacked model's own embedding neighbours (``EmbeddingNeighbours``) or
from character edits (``char_edits``, DeepWordBug's four operations); stop words are never changed.

>>> text = "The film isn't bad at all."
>>> [text[s:e] for s, e in word_spans(text)]
['The', 'film', 'isn', 't', 'bad', 'at', 'all']
>>> replace(text, word_spans(text)[4], "awful")
"The film isn't awful at all."
>>> sorted(char_edits("bad", ["swap", "delete"], 3, random.Random(0)))
['abd', 'ad', 'ba', 'bd', 'bda']
"""

from __future__ import annotations

import functools
import random
import re
import string
from typing import Sequence

import torch

WORD = re.compile(r"[^\W\d_]+")

# NLTK's English stop words (the list TextFooler's recipe keeps unchanged is a superset of these)
STOPWORDS = frozenset("""
a about above after again against ain all am an and any are aren arent as at be because been before being below
between both but by can couldn couldnt d did didn didnt do does doesn doesnt doing don dont down during each few for
from further had hadn hadnt has hasn hasnt have haven havent having he her here hers herself him himself his how i if
in into is isn isnt it its itself just ll m ma me mightn mightnt more most mustn mustnt my myself needn neednt no nor
not now o of off on once only or other our ours ourselves out over own re s same shan shant she should shouldn
shouldnt so some such t than that the their theirs them themselves then there these they this those through to too
under until up ve very was wasn wasnt we were weren werent what when where which while who whom why will with won
wont wouldn wouldnt y you your yours yourself yourselves
""".split())


def word_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of every run of letters in ``text``."""
    return [m.span() for m in WORD.finditer(text)]


def replace(text: str, span: tuple[int, int], new: str) -> str:
    """``text`` with the characters of ``span`` replaced by ``new``."""
    return text[: span[0]] + new + text[span[1]:]


def delete(text: str, span: tuple[int, int]) -> str:
    """``text`` without the word at ``span`` (and one space beside it)."""
    start, end = span
    if end < len(text) and text[end] == " ":
        end += 1
    elif start > 0 and text[start - 1] == " ":
        start -= 1
    return text[:start] + text[end:]


def same_case(new: str, like: str) -> str:
    """``new`` in the case pattern of ``like`` (all caps, capitalised, or as it is)."""
    if like.isupper() and len(like) > 1:
        return new.upper()
    if like[:1].isupper():
        return new[:1].upper() + new[1:]
    return new


def is_stopword(word: str) -> bool:
    return word.lower() in STOPWORDS


def wordnet_candidates(word: str, limit: int) -> list[str]:
    """Single-word WordNet synonyms of ``word``, in WordNet's order (``check_wordnet`` first)."""
    return list(_single_word_synonyms(word.lower())[:limit])


@functools.lru_cache(maxsize=100_000)
def _single_word_synonyms(word: str) -> tuple[str, ...]:
    from lowlm.robustness.augment import wordnet_synonyms

    return tuple(w for w in wordnet_synonyms(word) if w.isalpha())


def char_edits(word: str, operations: Sequence[str], per_operation: int, rng: random.Random) -> list[str]:
    """DeepWordBug's edits of one word: up to ``per_operation`` seeded positions for each of swap
    (two neighbouring letters), substitute, delete and insert (one letter); never the word itself."""
    letters = string.ascii_lowercase
    out: dict[str, None] = {}
    n = len(word)
    for op in operations:
        if op == "swap":
            positions = [i for i in range(n - 1) if word[i] != word[i + 1]]
        elif op == "delete":
            positions = list(range(n)) if n > 1 else []
        else:  # substitute, insert
            positions = list(range(n + (op == "insert")))
        for i in rng.sample(positions, min(per_operation, len(positions))):
            if op == "swap":
                new = word[:i] + word[i + 1] + word[i] + word[i + 2:]
            elif op == "delete":
                new = word[:i] + word[i + 1:]
            elif op == "substitute":
                new = word[:i] + rng.choice(letters.replace(word[i].lower(), "")) + word[i + 1:]
            else:
                new = word[:i] + rng.choice(letters) + word[i:]
            if new != word:
                out[new] = None
    return list(out)


def all_char_edits(word: str, operations: Sequence[str]) -> list[str]:
    """Every single edit of ``word`` by ``operations`` (DeepWordBug's four), each once, in a fixed order:
    every neighbouring pair swapped, every letter deleted, every letter substituted by each other letter,
    each letter inserted at every place; never the word itself.

    >>> all_char_edits("ab", ["swap", "delete"])
    ['ba', 'b', 'a']
    """
    letters = string.ascii_lowercase
    n = len(word)
    out: dict[str, None] = {}
    for op in operations:
        if op == "swap":
            edits = (word[:i] + word[i + 1] + word[i] + word[i + 2:] for i in range(n - 1))
        elif op == "delete":
            edits = (word[:i] + word[i + 1:] for i in range(n)) if n > 1 else iter(())
        elif op == "substitute":
            edits = (word[:i] + c + word[i + 1:] for i in range(n) for c in letters if c != word[i].lower())
        else:
            edits = (word[:i] + c + word[i:] for i in range(n + 1) for c in letters)
        for new in edits:
            if new != word:
                out[new] = None
    return list(out)


class EmbeddingNeighbours:
    """The attacked model's word embeddings, normalised: nearest vocabulary words by cosine, and the
    similarity of two words (None when the model does not know one of them)."""

    def __init__(self, model: torch.nn.Module, tokenizer):
        vocab = tokenizer.vocab_size
        weight = model.embedding.weight.detach()[:vocab].float().cpu()  # a bag's n-gram rows come after the words
        self.unit = torch.nn.functional.normalize(weight, dim=1)
        self.tokenizer = tokenizer
        tokens = tokenizer.tokens()
        self.words = tokens
        self.usable = torch.tensor([t.isalpha() for t in tokens])  # specials ([UNK], ...) and punctuation out
        self._cache: dict[str, list[str]] = {}

    def id_of(self, word: str) -> int | None:
        ids = self.tokenizer.encode(word)
        return ids[0] if len(ids) == 1 and ids[0] > 3 else None  # 0-3: the special tokens

    def nearest(self, word: str, k: int) -> list[str]:
        key = word.lower()
        if key not in self._cache:
            i = self.id_of(key)
            if i is None:
                self._cache[key] = []
            else:
                sims = self.unit @ self.unit[i]
                sims[~self.usable] = -2.0
                sims[i] = -2.0
                top = torch.topk(sims, min(k, len(sims))).indices.tolist()
                self._cache[key] = [self.words[j] for j in top if sims[j] > -2.0]
        return self._cache[key][:k]

    def similarity(self, a: str, b: str) -> float | None:
        i, j = self.id_of(a.lower()), self.id_of(b.lower())
        if i is None or j is None:
            return None
        return float(self.unit[i] @ self.unit[j])


def coarse_tags(words: Sequence[str]) -> list[str]:
    """A coarse part of speech per word (noun, verb, adjective, adverb or other) from NLTK's tagger."""
    import nltk

    from lowlm.robustness.augment import NLTK_LOCK

    with NLTK_LOCK:
        tagged = nltk.pos_tag(list(words))
    return [_coarse(tag) for _, tag in tagged]


def _coarse(tag: str) -> str:
    return {"N": "n", "V": "v", "J": "a", "R": "r"}.get(tag[:1], tag)
