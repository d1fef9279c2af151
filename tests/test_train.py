"""The training loop on the shipped sample corpus: learns, restores its best epoch, reports per epoch."""

from __future__ import annotations

import torch

from lowlm.batching import Batches
from lowlm.config import TrainConfig
from lowlm.metrics import majority_baseline
from lowlm.models import build_classifier
from lowlm.train import evaluate, fit, lr_lambda


def test_short_training_beats_majority(trained_sample):
    corpus, clf = trained_sample["corpus"], trained_sample["classifier"]
    test = corpus.splits["test"]
    pred = clf.predict_proba(list(test["text"])).argmax(dim=1).tolist()
    accuracy = sum(p == y for p, y in zip(pred, test["label"])) / len(pred)
    majority = majority_baseline(list(corpus.splits["train"]["label"]), list(test["label"]))
    assert accuracy > majority + 0.3, (accuracy, majority)


def test_best_epoch_is_restored_and_history_is_complete(trained_sample):
    result = trained_sample["result"]
    assert 1 <= result.best_epoch <= len(result.history)
    assert result.best_metric == max(h["val_accuracy"] for h in result.history)
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr"} <= set(result.history[0])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    corpus, clf = trained_sample["corpus"], trained_sample["classifier"]
    val = corpus.splits["validation"]
    batches = Batches(clf.tokenizer.encode_batch(list(val["text"])), list(val["label"]), batch_size=64)
    assert evaluate(clf.model, batches, len(corpus.labels))["accuracy"] == result.best_metric


def test_early_stopping_and_callback(trained_sample):
    corpus, tok = trained_sample["corpus"], trained_sample["classifier"].tokenizer
    enc = {s: tok.encode_batch(list(corpus.splits[s]["text"])) for s in ("train", "validation")}
    train = Batches(enc["train"], corpus.splits["train"]["label"], batch_size=32, shuffle=True)
    val = Batches(enc["validation"], corpus.splits["validation"]["label"], batch_size=64)
    model = build_classifier("bag_of_ngrams", tok.vocab_size, len(corpus.labels), embedding_dim=16)
    model.index_ngrams((b.ids, b.lengths) for b in train)
    seen = []
    # lr 0 makes no progress, so patience 2 must stop after epoch 3
    result = fit(model, train, val, len(corpus.labels), TrainConfig(epochs=20, lr=1e-12, patience=2, progress=False),
                 on_epoch=lambda epoch, metrics: seen.append(epoch))
    assert result.stopped_early and seen == [1, 2, 3]


def test_frozen_parameters_do_not_move(trained_sample):
    corpus, tok = trained_sample["corpus"], trained_sample["classifier"].tokenizer
    enc = tok.encode_batch(list(corpus.splits["train"]["text"]))
    train = Batches(enc, corpus.splits["train"]["label"], batch_size=32, shuffle=True)
    model = build_classifier("rnn_attention", tok.vocab_size, len(corpus.labels), hidden_dim=16, embedding_dim=16)
    before = model.embedding.weight.clone()
    head_before = model.head.weight.clone()
    fit(model, train, train, len(corpus.labels), TrainConfig(epochs=1, progress=False),
        parameters=list(model.head.parameters()))
    assert torch.equal(before, model.embedding.weight)
    assert not torch.equal(head_before, model.head.weight)
    assert model.embedding.weight.requires_grad  # unfrozen again afterwards


def test_schedules():
    cosine = lr_lambda("cosine", 100, 0)
    assert cosine(0) == 1.0 and abs(cosine(50) - 0.5) < 1e-9 and cosine(100) < 1e-9
    assert lr_lambda("constant", 100, 10)(90) == 1.0
