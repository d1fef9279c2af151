"""Monolingual text for back-translation: one sentence a line, in the pipeline's target language.

Empty lines, repeats, sentences the parallel corpus already has as targets (any split: nothing
held out comes back as a synthetic training pair) and sentences over ``max_tokens`` words are
dropped and counted; ``max_sentences`` keeps the first that many of the rest.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "en.txt"; _ = p.write_text("a dog\\n\\na dog\\na cat\\nthe end\\n")
>>> text = load_monolingual(MonolingualConfig(path=str(p)), exclude={"the end"})
>>> text.sentences, text.dropped
(['a dog', 'a cat'], {'empty': 1, 'repeat': 1, 'in_corpus': 1, 'too_long': 0, 'over_max_sentences': 0})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from lowlm.config.augment import MonolingualConfig
from lowlm.data.pairs import PairCorpusError, read_lines
from lowlm.data.textfiles import CorpusError


@dataclass
class Monolingual:
    sentences: list[str]
    source: str
    dropped: dict[str, int] = field(default_factory=dict)


def load_monolingual(cfg: MonolingualConfig, exclude: Iterable[str] = ()) -> Monolingual:
    """Read ``cfg.path``; a missing, unreadable or (after dropping) empty file raises ``PairCorpusError``
    naming it."""
    path = Path(cfg.path)
    if not path.is_file():
        raise PairCorpusError(f"augment.backtranslation.monolingual.path: {path} does not exist or is not a file")
    exclude = set(exclude)
    dropped = dict.fromkeys(("empty", "repeat", "in_corpus", "too_long", "over_max_sentences"), 0)
    seen: dict[str, None] = {}
    try:
        for _, line in read_lines(path, cfg.encoding):
            text = line.strip()
            if not text:
                dropped["empty"] += 1
            elif text in seen:
                dropped["repeat"] += 1
            elif text in exclude:
                dropped["in_corpus"] += 1
            elif cfg.max_tokens and len(text.split()) > cfg.max_tokens:
                dropped["too_long"] += 1
            elif cfg.max_sentences and len(seen) >= cfg.max_sentences:
                dropped["over_max_sentences"] += 1
            else:
                seen[text] = None
    except CorpusError as exc:
        raise PairCorpusError(f"augment.backtranslation.monolingual: {exc}") from None
    if not seen:
        raise PairCorpusError(f"{path}: no monolingual sentences left to back-translate "
                              f"({', '.join(f'{n} {k}' for k, n in dropped.items() if n) or 'the file is empty'})")
    return Monolingual(list(seen), str(path), dropped)
