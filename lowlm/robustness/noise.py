"""Seq2seq robustness: how much BLEU a translator or summarizer loses when its sources carry noise.

No model is queried to choose the noise (a seq2seq attack that searches would decode thousands of
candidates per sentence): a seeded share of each source's non-stop words gets one DeepWordBug
character edit (``char``) or a WordNet synonym (``word``; words without one stay), and the model's
greedy output on the noisy sources is scored against the same references as the clean output.

>>> import random
>>> noisy_text("the cat sat on the mat", 0.5, "char", random.Random(0))[1]   # 3 of 6 words, none a stop word
3
"""

from __future__ import annotations

import random
from typing import Sequence

from lowlm.robustness.words import (char_edits, is_stopword, replace, same_case, word_spans, wordnet_candidates)


def noisy_text(text: str, fraction: float, kind: str, rng: random.Random) -> tuple[str, int]:
    """``text`` with a seeded ``fraction`` of its words (non-stop words only) changed: ``kind`` 'char' (one
    edit each) or 'word' (a random WordNet synonym). Returns the new text and how many words changed."""
    spans = [s for s in word_spans(text) if not is_stopword(text[s[0]:s[1]])]
    n = int(fraction * len(word_spans(text)) + 1e-9)
    changed = 0
    for span in sorted(rng.sample(spans, min(n, len(spans))), reverse=True):  # right to left: spans stay valid
        word = text[span[0]:span[1]]
        if kind == "char":
            options = char_edits(word, ["swap", "substitute", "delete", "insert"], 1, rng)
        else:
            options = [same_case(w, word) for w in wordnet_candidates(word, 30)]
        if options:
            text = replace(text, span, rng.choice(options))
            changed += 1
    return text, changed


def source_noise(translate, sources: Sequence[str], references: Sequence[str], kinds: Sequence[str],
                 fraction: float, seed: int, score) -> tuple[dict[str, float], list[dict]]:
    """Metrics ``{clean, <kind>, drop_<kind>, words_changed_<kind>}`` and a per-sentence table, for
    ``translate(texts) -> outputs`` and ``score(outputs, references) -> metric`` (BLEU, ROUGE-L...)."""
    clean = translate(list(sources))
    metrics = {"clean": score(clean, list(references))}
    rows = [{"source": s, "reference": r, "output": o} for s, r, o in zip(sources, references, clean)]
    for kind in kinds:
        rng = random.Random(f"{seed}-{kind}")
        noisy, counts = zip(*(noisy_text(s, fraction, kind, rng) for s in sources)) if sources else ((), ())
        outputs = translate(list(noisy))
        metrics[kind] = score(outputs, list(references))
        metrics[f"drop_{kind}"] = metrics["clean"] - metrics[kind]
        words = sum(len(word_spans(s)) for s in sources)
        metrics[f"words_changed_{kind}"] = sum(counts) / words if words else 0.0
        for row, src, out in zip(rows, noisy, outputs):
            row[f"source_{kind}"], row[f"output_{kind}"] = src, out
    return metrics, rows
