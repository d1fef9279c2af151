"""The champion/challenger rule, as a pure function: the registry calls that apply it live in ``tasks.register``.

>>> decide(0.81, None).alias, decide(0.81, 0.80).alias, decide(0.80, 0.80).alias
('champion', 'champion', 'challenger')
"""

from __future__ import annotations

from dataclasses import dataclass

CHAMPION, CHALLENGER = "champion", "challenger"


@dataclass(frozen=True)
class Verdict:
    alias: str
    promote: bool


def decide(new_score: float, champion_score: float | None) -> Verdict:
    """A new version becomes champion only when there is none, or when it beats the champion's score
    on the same evaluation data (higher is better; a tie keeps the champion)."""
    promote = champion_score is None or new_score > champion_score
    return Verdict(CHAMPION if promote else CHALLENGER, promote)
