"""SQuAD-format question answering data: read, check, split by article, save.

One row per question: ``article`` (1-based, across files), ``title``, ``paragraph`` (0-based within its
article), ``id``, ``context``, ``question``, ``answers`` (gold texts) and ``starts`` (their character
offsets in the context). What cannot be used is skipped and counted, never guessed:

- ``empty_context``: a paragraph whose context is blank (its questions go with it);
- ``empty_question``: a blank question;
- ``offset_mismatch``: an answer whose text is not the context's text at its ``answer_start``;
- ``no_answers``: a question left with no usable answer (none given, or all mismatched);
- ``duplicate_id``: a question id already read.

A file that is not in SQuAD's layout (no ``data`` list, a paragraph without ``context``, an answer
without ``answer_start``) is a ``CorpusError`` naming the file, article, paragraph and question.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lowlm.config.data import QACorpusConfig
from lowlm.data.textfiles import CorpusError

SPLITS = ("train", "validation", "test")
COLUMNS = ["article", "title", "paragraph", "id", "context", "question", "answers", "starts"]


@dataclass
class QAData:
    splits: dict[str, pd.DataFrame]
    skipped: Counter = field(default_factory=Counter)  # reason -> count, over every file
    sources: list[str] = field(default_factory=list)
    articles: dict[str, list[int]] = field(default_factory=dict)  # split -> article numbers

    def digest(self, split: str) -> str:
        return frame_digest(self.splits[split])

    def save(self, folder: str | Path) -> dict[str, str]:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for split, frame in self.splits.items():
            paths[split] = str(folder / f"{split}.parquet")
            frame.to_parquet(paths[split], index=False)
        return paths


def frame_digest(frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for row in frame[["id", "context", "question", "answers", "starts"]].itertuples(index=False):
        h.update(json.dumps([row.id, row.context, row.question, list(row.answers),
                             [int(s) for s in row.starts]], ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def qa_files(path: str | Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.glob("*.json") if p.is_file())
        if not files:
            raise CorpusError(f"{path}: a folder with no *.json files; expected SQuAD-format JSON files")
        return files
    if not path.is_file():
        raise CorpusError(f"QA corpus not found: {path}")
    return [path]


def qa_fingerprint(config: QACorpusConfig) -> str:
    """Hash of the files' names and bytes: a changed or added file changes it (and so re-runs ingestion)."""
    h = hashlib.sha256()
    for p in qa_files(config.path):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _articles(path: Path, encoding: str) -> list:
    try:
        doc = json.loads(path.read_text(encoding=encoding))
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{path}: byte offset {exc.start} is not {encoding} text; set corpus.encoding") from None
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise CorpusError(f"{path}: expected SQuAD's layout, an object whose 'data' is a list of articles")
    return doc["data"]


def _need(value, kind, where: str, what: str):
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise CorpusError(f"{where}: {what} must be {name}, got {type(value).__name__}")
    return value


def read_questions(config: QACorpusConfig) -> tuple[pd.DataFrame, Counter, list[str]]:
    """Every usable question of every file, in file order, with the counts of what was skipped."""
    rows, skipped, seen = [], Counter(), set()
    number = 0
    files = qa_files(config.path)
    for path in files:
        for a, article in enumerate(_articles(path, config.encoding)):
            number += 1
            where = f"{path}, article {a + 1}"
            _need(article, dict, where, "an article")
            title = str(article.get("title", f"article {number}"))
            for p, paragraph in enumerate(_need(article.get("paragraphs", []), list, where, "'paragraphs'")):
                at = f"{where} ({title!r}), paragraph {p + 1}"
                _need(paragraph, dict, at, "a paragraph")
                context = _need(paragraph.get("context"), str, at, "'context'")
                qas = _need(paragraph.get("qas", []), list, at, "'qas'")
                if not context.strip():
                    skipped["empty_context"] += 1
                    skipped["questions_of_empty_contexts"] += len(qas)
                    continue
                for q, qa in enumerate(qas):
                    _need(qa, dict, f"{at}, question {q + 1}", "a question")
                    qid = str(qa.get("id", f"{number}-{p}-{q}"))
                    here = f"{at}, question {qid!r}"
                    question = _need(qa.get("question"), str, here, "'question'")
                    if not question.strip():
                        skipped["empty_question"] += 1
                        continue
                    if qid in seen:
                        skipped["duplicate_id"] += 1
                        continue
                    answers, starts = [], []
                    for answer in _need(qa.get("answers", []), list, here, "'answers'"):
                        _need(answer, dict, here, "an answer")
                        text = _need(answer.get("text"), str, here, "an answer's 'text'")
                        start = answer.get("answer_start")
                        if not isinstance(start, int) or isinstance(start, bool):
                            raise CorpusError(f"{here}: answer {text!r} needs an integer 'answer_start', "
                                              f"got {start!r}")
                        if not text.strip() or context[start:start + len(text)] != text:
                            skipped["offset_mismatch"] += 1
                            continue
                        answers.append(text)
                        starts.append(start)
                    if not answers:
                        skipped["no_answers"] += 1
                        continue
                    seen.add(qid)
                    rows.append((number, title, p, qid, context, question, answers, starts))
    return pd.DataFrame(rows, columns=COLUMNS), skipped, [str(p) for p in files]


def _article_splits(config: QACorpusConfig, numbers: list[int]) -> dict[str, list[int]]:
    if config.train_articles is not None:
        out = {}
        for split in SPLITS:
            first, last = getattr(config, f"{split}_articles")
            last = numbers[-1] if last is None else last
            out[split] = [n for n in numbers if first <= n <= last]
            if not out[split]:
                raise CorpusError(f"{config.path}: {split}_articles [{first}, {last}] holds no article with usable "
                                  f"questions (the corpus has articles {numbers[0]}-{numbers[-1]})")
        return out
    order = list(numbers)
    random.Random(config.seed).shuffle(order)

    def count(size):
        return size if isinstance(size, int) else max(1, round(size * len(order)))

    n_test, n_val = count(config.test_size), count(config.validation_size)
    if n_test + n_val >= len(order):
        raise CorpusError(f"{config.path}: {len(order)} articles with questions cannot give {n_test} test and "
                          f"{n_val} validation articles and leave any to train on")
    return {"test": sorted(order[:n_test]), "validation": sorted(order[n_test:n_test + n_val]),
            "train": sorted(order[n_test + n_val:])}


def load_qa(config: QACorpusConfig) -> QAData:
    """The corpus split by article; ``skipped`` counts what was dropped (a file not in SQuAD's layout
    raises instead)."""
    frame, skipped, sources = read_questions(config)
    if frame.empty:
        raise CorpusError(f"{config.path}: no usable question (skipped: {dict(skipped) or 'none read'})")
    numbers = sorted(frame["article"].unique().tolist())
    articles = _article_splits(config, numbers)
    splits = {s: frame[frame["article"].isin(articles[s])].reset_index(drop=True) for s in SPLITS}
    return QAData(splits=splits, skipped=skipped, sources=sources, articles=articles)
