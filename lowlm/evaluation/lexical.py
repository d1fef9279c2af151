"""A lexical QA baseline with no training: the sliding-window baseline of Rajpurkar et al. (2016), with
candidate spans of up to ``max_tokens`` words instead of parse constituents.

For each candidate span inside one sentence (not starting or ending with a stop word or punctuation,
not made only of question words):

1. overlap: the question's unigrams plus bigrams that occur in the candidate's sentence outside the
   candidate (Rajpurkar et al.'s first filter; candidates with the highest overlap are kept);
2. sliding window (Richardson et al. 2013): the inverse-count weight log(1 + 1/C(w)) of the question's
   words within a window of the question's length on either side of the candidate, summed;
3. then the shorter span.

>>> lexical_answer("Denver beat Carolina in 2016. The game was played in Santa Clara.",
...                "Who beat Carolina in 2016?")
'Denver'
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

STOP_WORDS = frozenset("""a an the of in on at to for from by with and or but is are was were be been being it its
this that these those as which who whom whose what when where why how did do does done has have had not no
than then there their they them he she his her him i you your we our us me my""".split())
_TOKEN = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_SENTENCE_END = {".", "!", "?"}


def _tokens(text: str) -> list[tuple[str, int, int]]:
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _content(word: str) -> bool:
    return word not in STOP_WORDS and any(ch.isalnum() for ch in word)


def lexical_answer(context: str, question: str, max_tokens: int = 15) -> str:
    words = _tokens(context)
    if not words:
        return ""
    q_words = [w for w, _, _ in _tokens(question)]
    q_set = {w for w in q_words if _content(w)}
    q_bigrams = set(zip(q_words, q_words[1:]))
    counts = Counter(w for w, _, _ in words)
    weight = {w: math.log(1 + 1 / counts[w]) for w in counts}
    half = max(1, len(q_words))
    sentences, begin = [], 0
    for i, (w, _, _) in enumerate(words):
        if w in _SENTENCE_END:
            sentences.append((begin, i + 1))
            begin = i + 1
    if begin < len(words):
        sentences.append((begin, len(words)))
    best, best_key = None, None
    tokens = [w for w, _, _ in words]
    for s, e in sentences:
        sentence = tokens[s:e]
        uni = Counter(w for w in sentence if w in q_set)
        bi = Counter(b for b in zip(sentence, sentence[1:]) if b in q_bigrams)
        for i in range(s, e):
            if not _content(tokens[i]):
                continue
            inside_uni, inside_bi = Counter(), Counter()
            for j in range(i, min(e, i + max_tokens)):
                if tokens[j] in q_set:
                    inside_uni[tokens[j]] += 1
                if j > i and (tokens[j - 1], tokens[j]) in q_bigrams:
                    inside_bi[(tokens[j - 1], tokens[j])] += 1
                if not _content(tokens[j]) or all(t in q_set for t in tokens[i:j + 1] if _content(t)):
                    continue
                overlap = (sum(1 for w, n in uni.items() if n - inside_uni[w] > 0)
                           + sum(1 for b, n in bi.items() if n - inside_bi[b] > 0))
                window = tokens[max(0, i - half):i] + tokens[j + 1:j + 1 + half]
                sliding = sum(weight[w] for w in window if w in q_set)
                key = (overlap, sliding, -(j - i))
                if best_key is None or key > best_key:
                    best, best_key = (i, j), key
    if best is None:
        return ""
    return context[words[best[0]][1]:words[best[1]][2]]


def lexical_answers(contexts: Sequence[str], questions: Sequence[str], max_tokens: int = 15) -> list[str]:
    return [lexical_answer(c, q, max_tokens) for c, q in zip(contexts, questions)]
