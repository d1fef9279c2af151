"""Adversarial robustness: the attack recipe (word- or character-level), where its examples go (the
generate stage before training, the trainer's refresh every N epochs), how robustness is evaluated,
and the embedding-space perturbations of adversarial training (FGM, PGD, FreeLB)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field, field_validator

from lowlm.config.base import _Strict
from lowlm.config.runner import Runner


def _not_empty(name: str, value: list, fields) -> list:
    """A list of choices must name at least one (the choices are its field's Literal values)."""
    if not value:
        choices = get_args(get_args(fields[name].annotation)[0])
        raise ValueError(f"{name}: name at least one of {', '.join(repr(c) for c in choices)}")
    return value


class WordAttackConfig(_Strict):
    """TextFooler/PWWS-style word substitution: words in order of importance, each replaced by the
    candidate that hurts the true class most, until the prediction flips or a limit is reached."""

    sources: list[Literal["wordnet", "embedding"]] = Field(
        default_factory=lambda: ["wordnet", "embedding"],
        description="Where candidates come from: WordNet synonyms, and the attacked model's own nearest word "
                    "embeddings (cosine).")
    synonyms: int = Field(30, ge=1, description="WordNet candidates per word, at most (WordNet's order).")
    neighbours: int = Field(15, ge=1, description="Embedding-neighbour candidates per word.")
    pos_agreement: bool = Field(False, description="Keep a candidate only when it takes the original word's "
                                                   "part of speech in the sentence (NLTK's tagger).")
    min_similarity: float | None = Field(
        None, ge=-1, le=1, description="Keep a candidate only when the cosine of its embedding and the original "
                                       "word's (in the attacked model) reaches this; words the model does not know "
                                       "are then dropped. None: no such constraint.")

    _some_source = field_validator("sources")(lambda cls, value: _not_empty("sources", value, cls.model_fields))


class CharAttackConfig(_Strict):
    """DeepWordBug-style character edits inside the most important words."""

    operations: list[Literal["swap", "substitute", "delete", "insert"]] = Field(
        default_factory=lambda: ["swap", "substitute", "delete", "insert"],
        description="Edits tried on a word: swap two neighbouring letters, substitute, delete or insert one.")
    positions: Literal["all", "sampled"] = Field(
        "all", description="all: every single edit of the word is considered, and of the edits the model reads "
                           "alike (every out-of-vocabulary result is one [UNK] to a word tokenizer) one stands for "
                           "all, so the candidates are the distinct inputs one edit reaches; sampled: "
                           "edits_per_operation seeded positions per operation (DeepWordBug's random positions).")
    edits_per_operation: int = Field(3, ge=1, description="sampled: seeded positions tried per operation and word.")
    max_candidates: int = Field(32, ge=1, description="all: distinct inputs tried per word, at most (a seeded "
                                                      "choice when one edit reaches more).")

    _some_operation = field_validator("operations")(
        lambda cls, value: _not_empty("operations", value, cls.model_fields))


class GenerateConfig(_Strict):
    """The adversarial stage before training: attack the registry's champion (or a probe model trained
    here when there is none) on a sample of the training rows; the examples that fooled it join training."""

    enabled: bool = Field(False, description="Add adversarial rows to the training split.")
    sample_rows: int = Field(2000, gt=0, description="Training rows attacked (a seeded sample of those with a word "
                                                     "the attack may change).")
    target: Literal["champion", "probe"] = Field(
        "champion", description="champion: the registered model's champion version when there is one, else a "
                                "probe; probe: always a quick model trained on the training split (cached).")
    probe_epochs: int = Field(3, ge=1, description="Epochs of the probe model (the pipeline's model and trainer "
                                                   "settings otherwise).")


class RefreshConfig(_Strict):
    """Adversarial examples re-generated against the model being trained (TextAttack's trainer)."""

    every: int = Field(0, ge=0, description="Re-generate every N epochs after the clean ones; 0: never.")
    clean_epochs: int = Field(1, ge=0, description="Epochs on clean (and augmented) rows before the first attack.")
    sample_rows: int = Field(2000, gt=0, description="Training rows attacked at each refresh (a new seeded sample of "
                                                     "those with a word the attack may change).")


class AttackConfig(Runner):
    """One attack, used by every stage that attacks: generate, the trainer's refresh, and evaluation.

    The generate and evaluate stages attack their rows in shards of ``shard_rows`` on the task runner
    (``runner``, ``workers``, ``address``); example i of a sample is seeded by ``seed`` and i, so the
    examples do not depend on the runner or the workers. The trainer's refresh runs inside the train task."""

    enabled: bool = Field(True, description="Evaluate robustness: attack the trained model on validation and test.")
    method: Literal["word", "char"] = Field("word", description="word: substitution; char: DeepWordBug edits.")
    word: WordAttackConfig = Field(default_factory=WordAttackConfig)
    char: CharAttackConfig = Field(default_factory=CharAttackConfig)
    importance: Literal["deletion", "gradient"] = Field(
        "deletion", description="Word importance: the true-class probability lost when the word is deleted (one "
                                "query per word), or gradient x input saliency (one query per text).")
    ranking: Literal["importance", "pwws"] = Field(
        "importance", description="The order words are changed in: by importance alone, or PWWS's (Ren et al. 2019) "
                            "softmax(importance) x the true-class probability the word's best single change "
                            "removes (every candidate scored once, in one batch).")
    max_words_fraction: float = Field(0.2, gt=0, le=1, description="Most words changed, as a share of the text's "
                                                                    "words, rounded up (TextAttack's MaxWordsPerturbed: "
                                                                    "1 of 5 words, 2 of 6); a one-word text is "
                                                                    "skipped.")
    keep_stopwords: bool = Field(True, description="Never change stop words.")
    query_budget: int = Field(2000, gt=0, description="Model queries (texts scored) per attacked example.")
    max_examples: int = Field(200, gt=0, description="Rows attacked in evaluation, per split (validation, test).")
    batch_size: int = Field(512, gt=0, description="Texts scored per forward pass.")
    shard_rows: int = Field(250, ge=1, description="Rows attacked per shard (a task on the runner); the searches of "
                                                   "one shard share its forward passes.")
    seed: int = 13
    generate: GenerateConfig = Field(default_factory=GenerateConfig)
    refresh: RefreshConfig = Field(default_factory=RefreshConfig)


class PerturbationConfig(_Strict):
    """Embedding-space adversarial training at every step: FGM (Miyato et al. 2017), PGD (Madry et al.),
    or FreeLB (Zhu et al. 2020); the perturbation is normalised per example over its embeddings."""

    method: Literal["none", "fgm", "pgd", "freelb", "ascc"] = Field(
        "none", description="fgm, pgd, freelb: an L2 ball around the embeddings; ascc (Dong et al. 2021): each "
                            "word's embedding replaced by the worst convex combination of the embeddings of the "
                            "words an attack may put there (itself, [UNK], WordNet synonyms in the vocabulary, "
                            "its nearest embeddings, recomputed every epoch); stop words stay.")
    epsilon: float = Field(1.0, gt=0, description="fgm/pgd/freelb: L2 radius of the perturbation, per example.")
    alpha: float = Field(0.3, gt=0, description="PGD/FreeLB step size; ascc: the step on each word's combination "
                                                "logits (the gradient normalised per word).")
    steps: int = Field(3, ge=1, description="PGD/FreeLB/ascc ascent steps.")
    weight: float = Field(1.0, gt=0, description="FGM/PGD/ascc: weight of the adversarial loss beside the clean one.")
    synonyms: int = Field(30, ge=0, description="ascc: WordNet synonyms per word, at most (those in the vocabulary).")
    neighbours: int = Field(15, ge=0, description="ascc: nearest embeddings per word.")


class SourceNoiseConfig(_Strict):
    """Seq2seq robustness, measured by evaluate: BLEU on noisy test sources beside the clean BLEU."""

    enabled: bool = True
    kinds: list[Literal["char", "word"]] = Field(default_factory=lambda: ["char", "word"],
                                                 description="char: one edit per chosen word; word: a WordNet synonym.")
    fraction: float = Field(0.2, gt=0, le=1, description="Share of each source's words changed (non-stop words).")
    max_pairs: int = Field(200, gt=0, description="Test pairs decoded (greedy), clean and noisy.")
    seed: int = 13
