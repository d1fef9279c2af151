"""Adversarial examples by character noise (nlpaug), scored against a trained classifier.

For each correctly classified input, try a few seeded perturbations per method; the attack
succeeds on that input when some perturbation changes the predicted label. The success rate is
the share of attacked inputs that flipped: a robustness number (lower is better for the model).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lowlm.inference.classifier import TextClassifier

CHAR_METHODS = {
    "char_swap": ("RandomCharAug", {"action": "swap"}),
    "char_insert": ("RandomCharAug", {"action": "insert"}),
    "char_delete": ("RandomCharAug", {"action": "delete"}),
    "char_keyboard": ("KeyboardAug", {}),
}


def make_char_attacker(method: str):
    import nlpaug.augmenter.char as nac

    if method not in CHAR_METHODS:
        raise ValueError(f"unknown attack method {method!r}; expected one of {sorted(CHAR_METHODS)}")
    cls_name, kwargs = CHAR_METHODS[method]
    return getattr(nac, cls_name)(aug_char_p=0.2, aug_word_p=0.3, **kwargs)


@dataclass
class AttackResult:
    attacked: int = 0
    succeeded: int = 0
    per_method: dict[str, dict] = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)  # successful adversarial examples

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.attacked if self.attacked else 0.0


def char_noise_attack(classifier: TextClassifier, texts: Sequence[str], labels: Sequence[int],
                      methods: Sequence[str], max_examples: int = 200, tries: int = 5,
                      seed: int = 13) -> AttackResult:
    """Attack up to ``max_examples`` correctly classified ``texts`` (``labels`` are label indices)."""
    attackers = {method: make_char_attacker(method) for method in methods}  # imports may draw random numbers
    random.seed(seed)  # nlpaug draws from the global generators
    np.random.seed(seed)
    probs = classifier.predict_proba(list(texts))
    correct = [i for i in range(len(texts)) if int(probs[i].argmax()) == labels[i]]
    rng = random.Random(seed)
    rng.shuffle(correct)
    targets = correct[:max_examples]
    result = AttackResult(attacked=len(targets))
    flipped: set[int] = set()
    for method, attacker in attackers.items():
        sources = [texts[i] for i in targets]
        candidates: list[tuple[int, str]] = []
        for _ in range(tries):
            for i, new in zip(targets, attacker.augment(sources) if sources else []):
                candidates.append((i, new[0] if isinstance(new, list) else new))
        preds = classifier.predict_proba([c for _, c in candidates]).argmax(dim=1).tolist() if candidates else []
        method_flipped: set[int] = set()
        for (i, new), pred in zip(candidates, preds):
            if pred != labels[i] and i not in method_flipped:
                method_flipped.add(i)
                result.examples.append({"method": method, "original": texts[i], "adversarial": new,
                                        "label": classifier.labels[labels[i]],
                                        "predicted": classifier.labels[pred]})
        flipped |= method_flipped
        result.per_method[method] = {"succeeded": len(method_flipped),
                                     "success_rate": len(method_flipped) / len(targets) if targets else 0.0}
    result.succeeded = len(flipped)
    return result
