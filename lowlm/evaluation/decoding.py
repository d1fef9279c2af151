"""Choosing how a seq2seq model decodes, on the validation split: greedy or beam, and the beam's length penalty.

Beam search is not always better than greedy decoding for a small model (a short-output bias, or a
model too weak for the beam to help), and the length penalty that suits one corpus does not suit
another. ``choose_decoding`` decodes the first validation sources with each candidate and keeps the
best by the pipeline's metric (ties: the cheaper candidate, greedy first, then the smaller beam,
then the penalty closest to 1). The test split is then decoded once, with the chosen one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from lowlm.evaluation.metrics import score_texts


@dataclass(frozen=True)
class Decoding:
    beam_size: int
    length_penalty: float = 1.0

    @property
    def name(self) -> str:
        return "greedy" if self.beam_size == 1 else f"beam {self.beam_size}, length penalty {self.length_penalty:g}"


def candidates(beam_size: int, length_penalties: Sequence[float]) -> list[Decoding]:
    """Greedy, then beam ``beam_size`` with each length penalty (a beam of 1 is greedy alone).

    >>> [c.name for c in candidates(4, [0.6, 1.0])]
    ['greedy', 'beam 4, length penalty 0.6', 'beam 4, length penalty 1']
    """
    out = [Decoding(1)]
    if beam_size > 1:
        out += [Decoding(beam_size, float(lp)) for lp in dict.fromkeys(length_penalties)]
    return out


def _cost(d: Decoding) -> tuple:
    return (d.beam_size, abs(d.length_penalty - 1.0))


def choose_decoding(translate, sources: Sequence[str], references: Sequence[str], options: Sequence[Decoding],
                    metric: str = "bleu", bleu_tokenize: str = "13a", max_length: int = 80
                    ) -> tuple[Decoding, list[dict]]:
    """The best of ``options`` on (validation) ``sources``/``references`` by ``metric``; returns it and
    one row per option (``decoding``, ``beam_size``, ``length_penalty``, the score). ``translate`` is
    ``Translator.translate``.

    >>> fake = lambda texts, beam_size, max_length, length_penalty=1.0: [t if beam_size > 1 else "x" for t in texts]
    >>> best, rows = choose_decoding(fake, ["a b c d"], ["a b c d"], candidates(3, [1.0]))
    >>> best.name, [round(r["bleu"]) for r in rows]
    ('beam 3, length penalty 1', [0, 100])
    """
    rows = []
    for option in options:
        outputs = translate(list(sources), beam_size=option.beam_size, max_length=max_length,
                            length_penalty=option.length_penalty)
        score = score_texts(metric, outputs, list(references), bleu_tokenize)
        rows.append({"decoding": option.name, "beam_size": option.beam_size, "length_penalty": option.length_penalty,
                     metric: score})
    best = max(zip(options, rows), key=lambda pair: (pair[1][metric], tuple(-c for c in _cost(pair[0]))))[0]
    return best, rows
