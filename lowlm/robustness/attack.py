"""Adversarial attacks on any trained lowlm classifier, and the field's robustness numbers.

One search, two transformations (as TextAttack builds its recipes): greedy word swap in ranked order.
Importance is the true-class probability lost when a word is deleted (one query per word) or
gradient x input saliency (one query per text); the ranking is importance alone (TextFooler,
DeepWordBug), or PWWS's softmax(importance) x the probability the word's best single change removes
(every candidate of every word scored once, in one batch). Then the words in that order (stop words
kept, at most ``ceil(max_words_fraction * words)`` of them changed, TextAttack's MaxWordsPerturbed) are each replaced by the candidate that lowers
the true class most, until the prediction flips or the query budget runs out; the last change
allowed is made only where it flips the prediction. Candidates: WordNet synonyms and the model's own
embedding neighbours (TextFooler/PWWS style), or DeepWordBug's character edits inside the word (every
single edit, one per distinct input the model reads: to a word tokenizer, [UNK] or another word of its
vocabulary; or DeepWordBug's seeded positions). A text scored once for an example is never scored (or
counted) again.

Each example's search is written top to bottom as a generator that yields the texts it wants scored;
``attack`` runs many of them in lockstep and scores everything they ask for in one batched forward
pass per round. ``one_at_a_time=True`` scores each text alone: the slow way, kept to measure.

>>> run = attack(classifier, texts, labels, AttackConfig(method="word"))   # doctest: +SKIP
>>> run.summary()["success_rate"], run.table().head()                      # doctest: +SKIP
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import asdict, dataclass, field
from typing import Generator, Sequence

import pandas as pd
import torch

from lowlm.config.attack import AttackConfig
from lowlm.inference.classifier import TextClassifier
from lowlm.text.batching import pad
from lowlm.robustness.words import (EmbeddingNeighbours, all_char_edits, char_edits, coarse_tags, delete,
                                    is_stopword, replace, same_case, word_spans, wordnet_candidates)

SUCCEEDED, FAILED, SKIPPED, MISCLASSIFIED = "succeeded", "failed", "skipped", "misclassified"


@dataclass
class Example:
    """One attacked row: what went in, what came out, and what it cost."""

    index: int
    original: str
    label: int
    before: int  # prediction on the original
    adversarial: str = ""
    after: int = -1  # prediction on the adversarial text
    status: str = FAILED
    queries: int = 0
    words: int = 0  # words in the original
    changed: int = 0
    substitutions: list[tuple[str, str, str]] = field(default_factory=list)  # (original word, new word, source)
    reason: str = ""

    @property
    def words_perturbed(self) -> float:
        return self.changed / self.words if self.words else 0.0


@dataclass
class AttackRun:
    examples: list[Example]
    labels: list[str]
    seconds: float = 0.0

    def summary(self) -> dict[str, float]:
        """TextAttack's numbers: success rate over the attacked rows the model got right (rows with nothing
        to change under the constraints are skipped and counted apart); words perturbed over the successful
        attacks; queries over the attacked rows; accuracies over every row."""
        ex = self.examples
        total = len(ex)
        succeeded = [e for e in ex if e.status == SUCCEEDED]
        attacked = [e for e in ex if e.status in (SUCCEEDED, FAILED)]
        correct = sum(e.status != MISCLASSIFIED for e in ex)
        return {
            "examples": total,
            "clean_accuracy": correct / total if total else 0.0,
            "attacked_accuracy": (correct - len(succeeded)) / total if total else 0.0,
            "success_rate": len(succeeded) / len(attacked) if attacked else 0.0,
            "words_perturbed": sum(e.words_perturbed for e in succeeded) / len(succeeded) if succeeded else 0.0,
            "queries": sum(e.queries for e in attacked) / len(attacked) if attacked else 0.0,
            "attacked": len(attacked),
            "succeeded": len(succeeded),
            "skipped": sum(e.status == SKIPPED for e in ex),
            "examples_per_second": total / self.seconds if self.seconds else 0.0,
        }

    def table(self) -> pd.DataFrame:
        """One row per example: original, adversarial, label, prediction before and after, and the costs."""
        names = self.labels
        return pd.DataFrame([{
            "original": e.original, "adversarial": e.adversarial, "label": names[e.label],
            "predicted_before": names[e.before], "predicted_after": names[e.after] if e.after >= 0 else None,
            "status": e.status, "queries": e.queries, "words_changed": e.changed,
            "words_perturbed": round(e.words_perturbed, 4),
            "substitutions": "; ".join(f"{a}->{b} ({s})" for a, b, s in e.substitutions), "reason": e.reason,
        } for e in self.examples])

    def successful(self) -> list[Example]:
        return [e for e in self.examples if e.status == SUCCEEDED]

    def to_json(self) -> dict:
        """The run as JSON-able data (a shard's output file); ``from_json`` reads it back."""
        return {"labels": self.labels, "seconds": self.seconds, "examples": [asdict(e) for e in self.examples]}

    @classmethod
    def from_json(cls, data: dict) -> "AttackRun":
        examples = [Example(**{**e, "substitutions": [tuple(s) for s in e["substitutions"]]}) for e in data["examples"]]
        return cls(examples, list(data["labels"]), float(data["seconds"]))

    @classmethod
    def merge(cls, runs: Sequence["AttackRun"]) -> "AttackRun":
        """The shards of one sample as one run: examples in shard order, seconds summed (worker time, not
        wall time: the shards may have run at once)."""
        return cls([e for r in runs for e in r.examples], list(runs[0].labels) if runs else [],
                   sum(r.seconds for r in runs))


# -- what a search asks for ------------------------------------------------------------------------
@dataclass
class Score:
    """Class probabilities of these texts (each one query)."""

    texts: list[str]


@dataclass
class Saliency:
    """Gradient x input importance of each word of ``text`` for ``label`` (one query)."""

    text: str
    label: int


Search = Generator[object, object, Example]


def _ask(texts: list[str], seen: dict[str, torch.Tensor]) -> Generator[Score, torch.Tensor, list[torch.Tensor]]:
    """The probabilities of ``texts``, asking the driver only for those this example has not scored yet."""
    new = [t for t in dict.fromkeys(texts) if t not in seen]
    if new:
        probs = yield Score(new)
        seen.update(zip(new, probs))
    return [seen[t] for t in texts]


def _within(texts: list[str], seen: dict, budget: int) -> list[str]:
    """The first ``texts`` that fit in ``budget`` queries (texts already scored cost nothing)."""
    out, cost = [], 0
    for t in texts:
        if t not in seen:
            if cost >= budget:
                break
            cost += 1
        out.append(t)
    return out


class Attacker:
    """An attack recipe (``AttackConfig``) bound to one classifier."""

    def __init__(self, classifier: TextClassifier, config: AttackConfig):
        self.classifier, self.config = classifier, config
        word = config.word
        self.neighbours = None
        self._edits: dict[str, list[str]] = {}  # word -> its distinct single edits (char, positions "all")
        if config.method == "word":
            if "wordnet" in word.sources:
                from lowlm.robustness.augment import check_wordnet

                check_wordnet()
            if "embedding" in word.sources or word.min_similarity is not None:
                self.neighbours = EmbeddingNeighbours(classifier.model, classifier.tokenizer)

    # -- one example, top to bottom --------------------------------------------------------------------
    def search(self, index: int, text: str, label: int) -> Search:
        cfg = self.config
        seen: dict[str, torch.Tensor] = {}  # every text scored for this example: asking again is free
        (probs,) = yield from _ask([text], seen)
        example = Example(index, text, label, before=int(probs.argmax()), queries=1)
        if example.before != label:
            example.status, example.adversarial, example.after = MISCLASSIFIED, text, example.before
            return example
        spans = word_spans(text)
        example.words = len(spans)
        most = words_allowed(len(spans), cfg.max_words_fraction)
        positions = [i for i, (s, e) in enumerate(spans) if not (cfg.keep_stopwords and is_stopword(text[s:e]))]
        if most == 0 or not positions:
            example.status, example.adversarial, example.after = SKIPPED, text, example.before
            example.reason = "too short" if most == 0 else "only stop words"
            return example
        extra = 0  # queries that are not texts scored (a saliency pass)

        def left() -> int:
            return cfg.query_budget - len(seen) - extra

        true_prob = float(probs[label])
        if cfg.importance == "gradient":
            importance = yield Saliency(text, label)
            extra = 1
        else:
            dropped = yield from _ask(_within([delete(text, spans[i]) for i in positions], seen, left()), seen)
            importance = {i: true_prob - float(p[label]) for i, p in zip(positions, dropped)}
        rng = random.Random(f"{cfg.seed}-{index}")
        options = {i: self._allowed(text, spans, i, rng) for i in positions}  # (new word, source) per position
        order = sorted(positions, key=lambda i: -importance.get(i, float("-inf")))
        if cfg.ranking == "pwws":  # PWWS: importance (softmax over the words) x the best single swap's gain
            swaps = {i: [replace(text, spans[i], same_case(new, text[slice(*spans[i])])) for new, _ in options[i]]
                     for i in positions}
            yield from _ask(_within([t for i in order for t in swaps[i]], seen, left()), seen)
            gain = {i: max((true_prob - float(seen[t][label]) for t in swaps[i] if t in seen), default=0.0)
                    for i in positions}
            weights = torch.softmax(torch.tensor([importance.get(i, 0.0) for i in positions]), dim=0).tolist()
            score = {i: w * gain[i] for i, w in zip(positions, weights)}
            order = sorted(positions, key=lambda i: -score[i])
        current = text
        for i in order:
            if example.changed >= most or left() <= 0:
                break
            span = word_spans(current)[i]  # replacements may change lengths; the word order stays
            word = current[span[0]:span[1]]
            texts = _within([replace(current, span, same_case(new, word)) for new, _ in options[i]], seen, left())
            if not texts:
                continue
            scored = yield from _ask(texts, seen)
            best = min(range(len(texts)), key=lambda j: float(scored[j][label]))
            flipped = [j for j in range(len(texts)) if int(scored[j].argmax()) != label]
            if flipped:
                best = min(flipped, key=lambda j: float(scored[j][label]))
            if not flipped and (float(scored[best][label]) >= true_prob or example.changed == most - 1):
                continue  # nothing here helps (and the last change allowed must flip it): leave the word
            current, true_prob = texts[best], float(scored[best][label])
            example.changed += 1
            example.substitutions.append((word, *options[i][best]))
            if flipped:
                example.status, example.adversarial, example.after = SUCCEEDED, current, int(scored[best].argmax())
                break
        example.queries = len(seen) + extra
        if example.status != SUCCEEDED:
            example.adversarial, example.after = current, label
            example.reason = "query budget spent" if left() <= 0 else "no candidate flipped it"
        return example

    def _allowed(self, text: str, spans, i: int, rng: random.Random) -> list[tuple[str, str]]:
        """The candidates for the word at position ``i``, every constraint applied."""
        word = text[slice(*spans[i])]
        candidates = self._candidates(word, rng)
        if self.config.method == "word" and self.config.word.pos_agreement and candidates:
            words = [text[s:e] for s, e in spans]
            tag = coarse_tags(words)[i]
            candidates = [(new, source) for new, source in candidates
                          if coarse_tags(words[:i] + [new] + words[i + 1:])[i] == tag]
        return candidates

    def _candidates(self, word: str, rng: random.Random) -> list[tuple[str, str]]:
        """(new word, source) pairs for ``word``, the constraints applied."""
        cfg = self.config
        if cfg.method == "char":
            if cfg.char.positions == "all":
                return [(w, "char") for w in self._distinct_edits(word.lower())]
            edits = char_edits(word.lower(), cfg.char.operations, cfg.char.edits_per_operation, rng)
            return [(w, "char") for w in edits]
        w, seen, out = cfg.word, {word.lower()}, []
        pools = {"wordnet": lambda: wordnet_candidates(word, w.synonyms),
                 "embedding": lambda: self.neighbours.nearest(word, w.neighbours)}
        for source in w.sources:
            for new in pools[source]():
                if new not in seen:
                    seen.add(new)
                    out.append((new, source))
        if w.min_similarity is not None:
            out = [(new, s) for new, s in out
                   if (sim := self.neighbours.similarity(word, new)) is not None and sim >= w.min_similarity]
        return out

    def _distinct_edits(self, word: str) -> list[str]:
        """Single edits of ``word`` that the model reads differently from each other and from the word: of the
        edits with one encoding, the first in a seeded shuffle stands for all (the shuffle, seeded by the word,
        makes the choice the same in every example); at most ``max_candidates``."""
        if word not in self._edits:
            cfg = self.config
            edits = all_char_edits(word, cfg.char.operations)
            random.Random(f"{cfg.seed}-{word}").shuffle(edits)
            tok = self.classifier.tokenizer
            seen, out = {tuple(tok.encode(word))}, []
            for new, ids in zip(edits, tok.encode_batch(edits)):
                key = tuple(ids)
                if key not in seen:
                    seen.add(key)
                    out.append(new)
                    if len(out) == cfg.char.max_candidates:
                        break
            self._edits[word] = out
        return self._edits[word]

    # -- answering what the searches ask ---------------------------------------------------------------
    def score(self, texts: list[str]) -> torch.Tensor:
        return self.classifier.predict_proba(texts, batch_size=self.config.batch_size)

    def saliency(self, asks: list[Saliency]) -> list[dict[int, float]]:
        """Per word (by position among ``word_spans``): summed |gradient x input| of its tokens' embeddings."""
        tok, model = self.classifier.tokenizer, self.classifier.model
        encodings = tok.backend.encode_batch([a.text for a in asks])
        ids = [e.ids[: tok.max_length] or [1] for e in encodings]
        batch, lengths = pad(ids)
        token_sal = token_saliency(model, batch, lengths, torch.tensor([a.label for a in asks]))
        out = []
        for a, enc, sal in zip(asks, encodings, token_sal):
            spans = word_spans(a.text)
            scores = {i: 0.0 for i in range(len(spans))}
            for t, (s, e) in enumerate(enc.offsets[: tok.max_length]):
                for i, (ws, we) in enumerate(spans):
                    if s < we and ws < e:
                        scores[i] += float(sal[t])
            out.append(scores)
        return out


def token_saliency(model: torch.nn.Module, ids: torch.Tensor, lengths: torch.Tensor,
                   labels: torch.Tensor) -> torch.Tensor:
    """(B, T) |gradient x input| of each token's word embedding for the loss of ``labels``; no
    parameter gradients are touched. Works for per-token embeddings and for a bag's pooled one."""
    captured = {}

    def hook(module, inputs, output):
        captured["out"] = output

    was_training = model.training
    model.eval()
    handle = model.embedding.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            logits = model(ids, lengths)
            loss = torch.nn.functional.cross_entropy(logits, labels, reduction="sum")
            out = captured["out"]
            (grad,) = torch.autograd.grad(loss, out)
    finally:
        handle.remove()
        model.train(was_training)
    if out.dim() == 3:  # (B, T, D): one embedding per token
        return (grad * out).sum(-1).abs().detach()
    rows = model.embedding.weight.detach()[ids]  # (B, T, D); a bag pools them into (B, D)
    return (rows * grad.unsqueeze(1)).sum(-1).abs()


def attack(classifier: TextClassifier, texts: Sequence[str], labels: Sequence[int], config: AttackConfig,
           one_at_a_time: bool = False, lockstep: int = 256, first: int = 0) -> AttackRun:
    """Attack every text (``labels``: label indices); ``lockstep`` searches share each forward pass.

    Example i is numbered (and its edits seeded) ``first + i``: a shard of a larger sample that passes its
    offset gets the examples the whole sample would."""
    attacker = Attacker(classifier, config)
    start = time.perf_counter()
    searches = [attacker.search(first + i, t, y) for i, (t, y) in enumerate(zip(texts, labels))]
    width = 1 if one_at_a_time else lockstep
    results: list[Example | None] = [None] * len(searches)
    pending = list(range(len(searches)))  # positions in ``searches``; their examples are numbered first + i
    active: dict[int, object] = {}
    while pending or active:
        while pending and len(active) < width:
            i = pending.pop(0)
            active[i] = next(searches[i])
        answers = _answer(attacker, active, one_at_a_time)
        for i, answer in answers.items():
            try:
                active[i] = searches[i].send(answer)
            except StopIteration as done:
                results[i] = done.value
                del active[i]
    return AttackRun([r for r in results if r is not None], list(classifier.labels), time.perf_counter() - start)


def _answer(attacker: Attacker, asks: dict[int, object], one_at_a_time: bool) -> dict[int, object]:
    """Score every pending ask: all texts of all searches in one call (split in ``batch_size`` passes)."""
    scores = {i: a for i, a in asks.items() if isinstance(a, Score)}
    salient = {i: a for i, a in asks.items() if isinstance(a, Saliency)}
    out: dict[int, object] = {}
    if scores:
        flat = [t for a in scores.values() for t in a.texts]
        if one_at_a_time:
            probs = torch.cat([attacker.score([t]) for t in flat]) if flat else torch.empty(0)
        else:
            probs = attacker.score(flat) if flat else torch.empty(0)
        at = 0
        for i, a in scores.items():
            out[i] = probs[at: at + len(a.texts)]
            at += len(a.texts)
    if salient:
        keys = list(salient)
        for i, value in zip(keys, attacker.saliency([salient[i] for i in keys])):
            out[i] = value
    return out


def words_allowed(words: int, fraction: float) -> int:
    """The most words an attack may change in a text of ``words`` words: TextAttack's MaxWordsPerturbed,
    ``ceil(fraction * words)`` (two of a 6-word text at 20%); none of a one-word text, which a change
    would replace entirely.

    >>> words_allowed(2, 0.2), words_allowed(5, 0.2), words_allowed(6, 0.2), words_allowed(1, 0.2)
    (1, 1, 2, 0)
    """
    return math.ceil(fraction * words - 1e-9) if words >= 2 else 0


def attackable(text: str, config: AttackConfig) -> bool:
    """Whether ``text`` has a word the attack may change: enough words for ``max_words_fraction`` to allow
    one change, and one that is not a stop word (others are skipped by the search, and counted)."""
    spans = word_spans(text)
    if words_allowed(len(spans), config.max_words_fraction) == 0:
        return False
    return not config.keep_stopwords or any(not is_stopword(text[s:e]) for s, e in spans)


def sample_rows(n: int, k: int, seed: int) -> list[int]:
    """A seeded sample of ``k`` of ``n`` row positions, in order (all of them when ``k >= n``)."""
    if k >= n:
        return list(range(n))
    return sorted(random.Random(seed).sample(range(n), k))

