"""The champion/challenger rule, as pure functions: the registry calls that apply it live in ``tasks.register``
(and the champion it replaces becomes challenger there, ``tasks.champion``).

>>> decide(0.81, None).alias, decide(0.81, 0.80).alias, decide(0.80, 0.80).alias
('champion', 'champion', 'challenger')
>>> rematch(0.80, 3, 0.80, 2).alias, rematch(0.80, 2, 0.80, 3).alias, rematch(0.81, 3, 0.80, 2).alias
('challenger', 'champion', 'champion')
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


def rematch(new_score: float, new_version: int, other_score: float, other_version: int) -> Verdict:
    """Two new versions that both took the alias at once (a store without a lock): the higher score wins
    and a tie goes to the lower version number, as a gate run one after the other would have kept it.
    Both sides apply it to the same numbers, so both reach the same outcome."""
    promote = new_score > other_score or (new_score == other_score and new_version < other_version)
    return Verdict(CHAMPION if promote else CHALLENGER, promote)
