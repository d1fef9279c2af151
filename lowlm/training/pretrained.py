"""Start a model's encoder from a pretrained language model: the same tokenizer, weights mapped by name.

The LM's embedding goes to the model's word embedding and its forward (backward) RNN to the forward
(reverse) direction of the model's bidirectional RNN, layer by layer. A classifier that adds
character features to each word (``char_dim``) has a wider RNN input: the LM fills the word columns and
the character columns keep their fresh weights. Anything else that does not fit (another tokenizer, cell,
size) is a ``PretrainedMismatch`` naming both sides.

>>> from lowlm.config.models import LanguageModelConfig, RNNAttentionConfig
>>> from lowlm.models.classifier import RNNAttentionClassifier
>>> tok = Tokenizer.train(["a b c"])
>>> lm = LanguageModelBundle(LanguageModel(LanguageModelConfig(embedding_dim=8, hidden_dim=6), tok.vocab_size), tok)
>>> net = RNNAttentionClassifier(RNNAttentionConfig(embedding_dim=8, hidden_dim=6), tok.vocab_size, 2)
>>> copied = load_encoder(net, lm, tok); bool((net.embedding.weight == lm.model.embedding.weight).all())
True
"""

from __future__ import annotations

import torch
from torch import nn

from lowlm.inference.language_model import LanguageModelBundle
from lowlm.models.language_model import LanguageModel, encoder_weights
from lowlm.text.tokenizer import Tokenizer

# model class name -> (its word embedding, its bidirectional RNN)
ENCODER_NAMES = {"RNNAttentionClassifier": ("embedding", "rnn"), "Seq2Seq": ("src_embedding", "encoder")}


class PretrainedMismatch(ValueError):
    """A language model that does not fit the model it should start."""


def _describe_lm(lm: LanguageModel) -> str:
    c = lm.config
    return (f"language model (cell {c.cell}, embedding_dim {c.embedding_dim}, hidden_dim {c.hidden_dim}, layers "
            f"{c.layers}, directions {c.directions}, vocabulary {lm.dims['vocab_size']})")


def _describe(model: nn.Module) -> str:
    c = model.config
    fields = ", ".join(f"{k} {getattr(c, k)}" for k in ("cell", "embedding_dim", "hidden_dim", "layers", "char_dim")
                       if hasattr(c, k))
    return f"{type(model).__name__} ({c.kind}: {fields})"


def load_encoder(model: nn.Module, lm: LanguageModelBundle, tokenizer: Tokenizer) -> list[str]:
    """Copy ``lm``'s encoder into ``model`` in place; returns the names of the tensors copied.

    ``tokenizer`` is the one ``model`` reads with: it must be the LM's (same vocabulary, ids in order)."""
    kind = type(model).__name__
    if kind not in ENCODER_NAMES:
        raise PretrainedMismatch(f"a language model starts a recurrent encoder ({', '.join(ENCODER_NAMES)}), not "
                                 f"{_describe(model) if hasattr(model, 'config') else kind}")
    if tokenizer.tokens() != lm.tokenizer.tokens():
        raise PretrainedMismatch(
            f"the {_describe_lm(lm.model)} reads with another tokenizer than the {_describe(model)}: vocabularies "
            f"of {lm.tokenizer.vocab_size} and {tokenizer.vocab_size} tokens differ; use the LM's tokenizer")
    cell = getattr(model.config, "cell", "gru")
    if cell != lm.model.config.cell:
        raise PretrainedMismatch(f"the {_describe_lm(lm.model)} does not fit the {_describe(model)}: cell "
                                 f"{lm.model.config.cell} vs {cell}")
    embedding, rnn = ENCODER_NAMES[kind]
    state = model.state_dict()
    copied = []
    with torch.no_grad():
        for name, source in encoder_weights(lm.model, embedding, rnn).items():
            if name not in state:
                continue  # a deeper LM than the model: its extra layers have no place
            target = state[name]
            widened = (name.startswith(f"{rnn}.weight_ih_l0") and target.shape[0] == source.shape[0]
                       and target.shape[1] > source.shape[1])
            if target.shape != source.shape and not widened:
                raise PretrainedMismatch(
                    f"the {_describe_lm(lm.model)} does not fit the {_describe(model)}: {name} is "
                    f"{tuple(source.shape)} in the language model, {tuple(target.shape)} in the model")
            if widened:  # word columns from the LM, character-feature columns as they are
                target[:, : source.shape[1]].copy_(source)
            else:
                target.copy_(source)
            copied.append(name)
    return copied
