"""Model configs, one class per kind of model, told apart by ``kind``; each is passed straight to the
model it builds (``lowlm.models.build_model``).

>>> ClassifierConfigAdapter.validate_python({"kind": "bag_of_ngrams", "ngrams": 3}).ngrams
3
>>> ClassifierConfigAdapter.validate_python({"hidden_dim": 64}).kind   # no kind: the default kind
'rnn_attention'
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter, model_validator

from lowlm.config.base import _Strict


class BagOfNgramsConfig(_Strict):
    """fastText's supervised model: mean of word and hashed word-n-gram embeddings -> linear layer."""

    kind: Literal["bag_of_ngrams"] = "bag_of_ngrams"
    embedding_dim: int = Field(100, gt=0)
    ngrams: int = Field(2, ge=1, le=4, description="Longest word n-gram (1: words only).")
    buckets: int = Field(1 << 20, ge=0, description="Hashed n-gram buckets (0 disables n-grams).")
    dropout: float = Field(0.0, ge=0, lt=1, description="On the averaged embedding (fastText has none).")


class RNNAttentionConfig(_Strict):
    """Word embeddings (+ optional character encoding) -> BiGRU/BiLSTM -> additive attention pool -> linear."""

    kind: Literal["rnn_attention"] = "rnn_attention"
    embedding_dim: int = Field(100, gt=0)
    cell: Literal["gru", "lstm"] = "gru"
    hidden_dim: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=4)
    attention_dim: int = Field(128, gt=0)
    char_dim: int = Field(0, ge=0, description="Character-encoding size per word; 0 disables it.")
    dropout: float = Field(0.3, ge=0, lt=1)


class TransformerConfig(_Strict):
    """A small Transformer encoder classifier (the article's "high-level" model): word embeddings + learned
    positions -> pre-norm self-attention layers -> additive attention pool -> linear. The comparison point
    for the low-level models in the same pipeline, tokenizer and trainer."""

    kind: Literal["transformer"] = "transformer"
    embedding_dim: int = Field(128, gt=0, description="Model width (divisible by heads).")
    heads: int = Field(4, ge=1)
    layers: int = Field(2, ge=1, le=12)
    ff_dim: int = Field(256, gt=0, description="Width of each layer's feed-forward block.")
    attention_dim: int = Field(128, gt=0, description="The pooling attention's width.")
    dropout: float = Field(0.1, ge=0, lt=1)
    max_positions: int = Field(512, gt=0, description="Longest input; the tokenizer's max_length must not exceed it.")

    @model_validator(mode="after")
    def _width_splits_into_heads(self) -> "TransformerConfig":
        if self.embedding_dim % self.heads:
            raise ValueError(f"embedding_dim {self.embedding_dim} is not divisible by heads {self.heads}")
        return self


class Seq2SeqModelConfig(_Strict):
    """BiGRU encoder, additive or multiplicative attention, GRU decoder with input feeding."""

    kind: Literal["seq2seq"] = "seq2seq"
    embedding_dim: int = Field(256, gt=0)
    hidden_dim: int = Field(256, gt=0)
    attention: Literal["additive", "multiplicative"] = "additive"
    attention_dim: int = Field(256, gt=0)
    dropout: float = Field(0.2, ge=0, lt=1)
    tie_embeddings: bool = False
    pointer: bool = Field(False, description="Pointer-generator: copy source tokens (needs tokenizer.joint).")
    share_embeddings: bool = Field(False, description="One embedding table for both sides (needs tokenizer.joint).")
    coverage: bool = Field(False, description="Coverage (See et al. 2017): the attention summed so far feeds the next "
                                              "attention, so the decoder stops repeating itself.")
    coverage_loss: float = Field(1.0, ge=0, description="Weight of the coverage penalty sum_i min(attention, coverage) "
                                                        "added to the training loss (with coverage: true).")


class LanguageModelConfig(_Strict):
    """A GRU/LSTM next-token language model (ULMFiT / AWD-LSTM style) whose encoder starts the classifiers'.

    Sizes match ``RNNAttentionConfig``'s defaults, so its weights map by name into the default BiGRU
    classifier (embedding, and the RNN's layers; the backward model fills the reverse direction)."""

    kind: Literal["language_model"] = "language_model"
    embedding_dim: int = Field(100, gt=0)
    cell: Literal["gru", "lstm"] = "gru"
    hidden_dim: int = Field(128, gt=0)
    layers: int = Field(1, ge=1, le=4)
    directions: Literal[1, 2] = Field(2, description="2: a forward and a backward model (sharing the embedding), "
                                                     "which start both directions of a bidirectional encoder.")
    tie_weights: bool = Field(True, description="The output layer is the input embedding (through a projection "
                                                "when hidden_dim differs from embedding_dim).")
    dropout_embedding: float = Field(0.1, ge=0, lt=1, description="Whole words dropped from the embedding matrix.")
    dropout_input: float = Field(0.25, ge=0, lt=1, description="Locked (one mask per sequence) on the RNN input.")
    dropout_hidden: float = Field(0.2, ge=0, lt=1, description="Between RNN layers (layers > 1).")
    dropout_weight: float = Field(0.3, ge=0, lt=1, description="DropConnect on the hidden-to-hidden weights.")
    dropout_output: float = Field(0.3, ge=0, lt=1, description="Locked, on the RNN output before the softmax.")


class ReaderConfig(_Strict):
    """Extractive QA: word embeddings (+ optional characters) and DrQA's token features -> BiGRU/BiLSTM
    encoders for context and question -> BiDAF attention both ways (or DrQA's aligned question
    embedding) -> modelling layer -> start and end pointers; the best span with start <= end and at most
    ``max_answer_tokens`` tokens is the answer. Contexts longer than ``window`` tokens are read as
    windows ``stride`` apart."""

    kind: Literal["reader"] = "reader"
    embedding_dim: int = Field(100, gt=0)
    cell: Literal["gru", "lstm"] = "gru"
    hidden_dim: int = Field(96, gt=0)
    layers: int = Field(1, ge=1, le=3, description="Layers of each encoder.")
    attention: Literal["bidaf", "aligned"] = Field(
        "bidaf", description="bidaf: context-to-question and question-to-context attention, then a modelling "
                             "BiRNN; aligned: DrQA's attention-weighted question embedding at the context's input "
                             "and bilinear pointers over a pooled question vector.")
    features: bool = Field(True, description="DrQA's per-token features: exact match with the question (as "
                                             "written, lower-cased) and paragraph frequency.")
    char_dim: int = Field(0, ge=0, description="Character-encoding size per word; 0 disables it.")
    dropout: float = Field(0.2, ge=0, lt=1)
    window: int = Field(400, ge=8, description="Longest context read at once, in tokens.")
    stride: int = Field(128, gt=0, description="Tokens between the starts of a long context's windows.")
    max_question_tokens: int = Field(64, gt=0)
    max_answer_tokens: int = Field(15, gt=0, description="Longest answer span decoded (SQuAD: 15).")

    @model_validator(mode="after")
    def _stride_fits(self) -> "ReaderConfig":
        if self.stride > self.window:
            raise ValueError(f"stride {self.stride} is longer than window {self.window}: tokens would be skipped")
        return self


DEFAULT_CLASSIFIER = "rnn_attention"


def _classifier_kind(value) -> str:
    kind = value.get("kind", DEFAULT_CLASSIFIER) if isinstance(value, dict) else getattr(value, "kind", None)
    return kind


ClassifierConfig = Annotated[
    Union[Annotated[BagOfNgramsConfig, Tag("bag_of_ngrams")], Annotated[RNNAttentionConfig, Tag("rnn_attention")],
          Annotated[TransformerConfig, Tag("transformer")]],
    Discriminator(_classifier_kind),
]
ClassifierConfigAdapter = TypeAdapter(ClassifierConfig)
ModelConfig = Annotated[Union[BagOfNgramsConfig, RNNAttentionConfig, TransformerConfig, Seq2SeqModelConfig,
                              LanguageModelConfig, ReaderConfig],
                        Field(discriminator="kind")]
