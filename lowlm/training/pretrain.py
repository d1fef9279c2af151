"""Language-model pretraining on the one trainer: texts -> token windows -> ``LanguageModelObjective``.

>>> from lowlm.config.models import LanguageModelConfig
>>> from lowlm.config.stages import LanguageModelTrainConfig
>>> texts = ["the cat sat on the mat", "the dog sat on the log"] * 20
>>> tok = Tokenizer.train(texts)
>>> cfg = LanguageModelTrainConfig(epochs=3, lr=1e-2, batch_size=8, progress=False, warmup_ratio=0)
>>> lm, result = pretrain(LanguageModelConfig(embedding_dim=16, hidden_dim=16), tok, texts, texts[:4], cfg)
>>> result.history[-1]["val_perplexity"] < tok.vocab_size
True
"""

from __future__ import annotations

from typing import Sequence

from lowlm.config.models import LanguageModelConfig
from lowlm.config.stages import LanguageModelTrainConfig
from lowlm.inference.language_model import LanguageModelBundle
from lowlm.models.kinds import build_model
from lowlm.text.batching import Batches
from lowlm.text.tokenizer import Tokenizer
from lowlm.training.objectives import LanguageModelObjective
from lowlm.training.trainer import Trainer, TrainResult, seed_everything


def windows(tokenizer: Tokenizer, texts: Sequence[str], window: int) -> list[list[int]]:
    """Every text's ids (not truncated), cut into consecutive pieces of at most ``window`` ids.

    >>> tok = Tokenizer.train(["a b c d e"]); [len(w) for w in windows(tok, ["a b c d e", "a"], 2)]
    [2, 2, 1, 1]
    """
    out = []
    for enc in tokenizer.backend.encode_batch(list(texts)):
        ids = enc.ids
        out.extend(ids[i:i + window] for i in range(0, len(ids), window) if ids[i:i + window])
    return out


def lm_batches(tokenizer: Tokenizer, texts: Sequence[str], config: LanguageModelTrainConfig,
               shuffle: bool = False, batch_size: int | None = None) -> Batches:
    return Batches(windows(tokenizer, texts, config.window), batch_size=batch_size or config.batch_size,
                   shuffle=shuffle, seed=config.seed)


def pretrain(model_config: LanguageModelConfig, tokenizer: Tokenizer, train_texts: Sequence[str],
             validation_texts: Sequence[str], config: LanguageModelTrainConfig, callbacks=(),
             resume=None, model=None) -> tuple[LanguageModelBundle, TrainResult]:
    """Train a language model (a new one, seeded, or ``model`` to go on from: ULMFiT's second stage on a
    target's own text) and return it as a bundle with the trainer's history (``val_perplexity`` per epoch)."""
    if model is None:
        seed_everything(config.seed)
        model = build_model(model_config, vocab_size=tokenizer.vocab_size)
    train = lm_batches(tokenizer, train_texts, config, shuffle=True)
    validation = lm_batches(tokenizer, validation_texts, config, batch_size=256)
    result = Trainer(model, LanguageModelObjective(config.sampled_softmax), config, callbacks).fit(train, validation, resume=resume)
    return LanguageModelBundle(model.eval(), tokenizer), result
