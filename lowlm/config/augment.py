"""The augment stage's config: a chain of augmenters, each with its ratio, and how the work is sharded.

Each augmenter makes ``ratio`` new rows per source row on average (1.5: one for every row and a
second for a seeded half). Word and character noise come from nlpaug; ``eda`` is EDA's four
operations (Wei and Zou 2019) with EDA's per-operation rates; ``backtranslation`` runs lowlm
translators named by a registered model URI or by a preset the flow trains first.

>>> AugmentConfig.model_validate({"augmenters": [{"kind": "eda", "ratio": 3}]}).augmenters[0].alpha_sr
0.1
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field, model_validator

from lowlm.config.base import _Strict
from lowlm.config.runner import Runner

NOISE_KINDS = ("synonym", "random_swap", "random_delete", "random_insert", "spelling", "keyboard")


class NoiseAugmenter(_Strict):
    """One nlpaug operation: WordNet ``synonym`` replacement, ``random_swap`` / ``random_delete`` of words,
    ``random_insert`` (a WordNet synonym of a word of the text, at a random place: EDA's insertion),
    ``spelling`` mistakes (nlpaug's list of common misspellings), ``keyboard`` typos (neighbouring keys)."""

    kind: Literal["synonym", "random_swap", "random_delete", "random_insert", "spelling", "keyboard"]
    ratio: float = Field(1.0, gt=0, le=32, description="New rows per source row, on average.")
    p: float = Field(0.1, gt=0, le=1, description="Share of a text's words changed (keyboard: of its words, "
                                                  "and of each chosen word's characters).")


class EdaAugmenter(_Strict):
    """EDA: each new row gets one of synonym replacement, random insertion, random swap and random
    deletion, in turn; ``alpha_*`` is the share of the words that operation changes (EDA's default 0.1)."""

    kind: Literal["eda"] = "eda"
    ratio: float = Field(4.0, gt=0, le=32, description="New rows per source row (EDA's n_aug; 16 for <500 rows).")
    alpha_sr: float = Field(0.1, ge=0, le=1)
    alpha_ri: float = Field(0.1, ge=0, le=1)
    alpha_rs: float = Field(0.1, ge=0, le=1)
    alpha_rd: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="after")
    def _some_operation(self) -> "EdaAugmenter":
        if not any((self.alpha_sr, self.alpha_ri, self.alpha_rs, self.alpha_rd)):
            raise ValueError("eda: at least one of alpha_sr, alpha_ri, alpha_rs, alpha_rd must be above 0")
        return self


class ModelRef(_Strict):
    """A translator: ``uri`` of a registered model (``models:/NAME@alias`` or ``models:/NAME/VERSION``,
    resolved to one version when the flow starts), or a seq2seq ``preset`` the flow trains (and
    registers) first, as its own cached stage."""

    uri: str | None = Field(None, description="models:/NAME@alias or models:/NAME/VERSION")
    preset: str | None = Field(None, description="A seq2seq preset (name under configs/ or a YAML path).")
    overrides: dict[str, Any] = Field(default_factory=dict, description="With preset: dotted settings changed "
                                                                        "in it, as `--set` does (e.g. train.epochs).")

    @model_validator(mode="after")
    def _one(self) -> "ModelRef":
        if (self.uri is None) == (self.preset is None):
            raise ValueError("give exactly one of uri (a registered model) and preset (trained first)")
        if self.overrides and self.preset is None:
            raise ValueError("overrides change a preset: give them with preset, not with uri")
        if self.uri is not None and not self.uri.startswith("models:/"):
            raise ValueError(f"uri must be a registered model, models:/NAME@alias or models:/NAME/VERSION; "
                             f"got {self.uri!r}")
        return self

    @property
    def name(self) -> str:
        return self.uri or f"preset {self.preset}"


class GenerationConfig(_Strict):
    """How a back-translating model writes: ``beam`` search, ``greedy``, or ``sample`` (top-k, temperature)."""

    method: Literal["beam", "greedy", "sample"] = "beam"
    beam_size: int = Field(5, ge=1)
    top_k: int = Field(10, ge=0, description="sample: draw among the k likeliest tokens (0: all).")
    temperature: float = Field(1.0, gt=0)
    max_length: int = Field(80, gt=0)
    batch_size: int = Field(64, ge=1)


class BackTranslationAugmenter(_Strict):
    """Round-trip paraphrases of the text: ``models`` translate it in turn (e.g. en -> de, then de -> en),
    the last output is the new row. In a translation pipeline use ``backtranslation`` of the augment
    config instead (synthetic sources for target-side text)."""

    kind: Literal["backtranslation"] = "backtranslation"
    ratio: float = Field(1.0, gt=0, le=32, description="Paraphrases per source row, on average; above 1 only "
                                                        "sampling gives different ones (beam repeats are dropped).")
    models: list[ModelRef] = Field(min_length=1, description="Translators applied in order; the first reads the "
                                                             "corpus language, the last writes it.")
    generation: GenerationConfig = Field(default_factory=lambda: GenerationConfig(method="sample"))


class TaggedBackTranslation(BackTranslationAugmenter):
    """Back-translation for a translation pipeline's pairs (built from ``PairBackTranslation``): with
    ``tag``, outputs start with the [BT] token that pipeline's source tokenizer reserves."""

    tag: bool = False


AugmenterConfig = Annotated[Union[NoiseAugmenter, EdaAugmenter, BackTranslationAugmenter], Field(discriminator="kind")]


class _Sharding(Runner):
    shard_rows: int = Field(500, ge=1, description="Source rows per shard; shard i is seeded by seed and i, so the "
                                                    "rows do not depend on the runner or the workers.")
    seed: int = 13
    sample_rows: int = Field(50, ge=0, description="Original/augmented pairs logged as an MLflow table.")


class AugmentConfig(_Sharding):
    """New training rows from the training split; each keeps its source row's label."""

    enabled: bool = True
    augmenters: list[AugmenterConfig] = Field(
        default_factory=lambda: [NoiseAugmenter(kind="random_swap", ratio=0.5, p=0.15),
                                 NoiseAugmenter(kind="synonym", ratio=0.5, p=0.15)],
        description="Each makes its own rows from the original rows (a chain of augmenters, not a composition).")


class MonolingualConfig(_Strict):
    """Target-language text for back-translation: one sentence a line (.gz or plain)."""

    path: str
    encoding: str = "utf-8"
    max_sentences: int | None = Field(None, gt=0, description="Keep the first this many (after dropping repeats "
                                                              "and sentences the corpus already has as targets).")
    max_tokens: int | None = Field(None, gt=0, description="Drop longer sentences (words); None keeps all.")


class PairBackTranslation(_Strict):
    """Synthetic sources for monolingual target text (Sennrich et al. 2016), by a reverse model."""

    monolingual: MonolingualConfig
    reverse: ModelRef = Field(description="A translator from the pipeline's target language to its source language.")
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    tag: bool = Field(False, description="Start synthetic sources with the reserved [BT] token (tagged "
                                         "back-translation, Caswell et al. 2019).")


class PairAugmentConfig(_Sharding):
    """Source-side noise on training pairs (targets stay clean), and back-translated pairs."""

    enabled: bool = False
    augmenters: list[NoiseAugmenter] = Field(default_factory=lambda: [NoiseAugmenter(kind="keyboard", ratio=0.2)])
    backtranslation: PairBackTranslation | None = None
