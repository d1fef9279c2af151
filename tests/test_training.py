"""The one trainer: learning, early stopping, callbacks, extra losses and perturbations, parameter
groups, unfreezing, and resuming from a checkpoint, on the shipped sample corpus."""

from __future__ import annotations

import pytest
import torch

from lowlm.config import BagOfNgramsConfig, RNNAttentionConfig, TrainConfig
from lowlm.evaluation.metrics import majority_baseline
from lowlm.models.kinds import build_model
from lowlm.text.batching import Batches
from lowlm.training.objectives import ClassificationObjective, classification_metrics, train_classifier
from lowlm.training.trainer import Callback, Checkpoint, EpochMetrics, Trainer, lr_lambda, seed_everything


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
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "lr", "rows_per_second"} <= set(result.history[0])
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    corpus, clf = trained_sample["corpus"], trained_sample["classifier"]
    val = corpus.splits["validation"]
    batches = Batches(clf.tokenizer.encode_batch(list(val["text"])), list(val["label"]), batch_size=64)
    assert classification_metrics(clf.model, batches, len(corpus.labels))["accuracy"] == result.best_metric


@pytest.fixture(scope="module")
def data(trained_sample):
    corpus, tok = trained_sample["corpus"], trained_sample["classifier"].tokenizer
    enc = {s: tok.encode_batch(list(corpus.splits[s]["text"])) for s in ("train", "validation")}
    return {"tok": tok, "labels": len(corpus.labels),
            "train": lambda: Batches(enc["train"], corpus.splits["train"]["label"], batch_size=32, shuffle=True,
                                     seed=3),
            "val": Batches(enc["validation"], corpus.splits["validation"]["label"], batch_size=64)}


def small_rnn(data, seed=0):
    seed_everything(seed)
    config = RNNAttentionConfig(embedding_dim=16, hidden_dim=16, attention_dim=16)
    return build_model(config, vocab_size=data["tok"].vocab_size, num_labels=data["labels"])


def test_early_stopping_and_epoch_callback(data):
    model = build_model(BagOfNgramsConfig(embedding_dim=16), vocab_size=data["tok"].vocab_size,
                        num_labels=data["labels"])
    train = data["train"]()
    model.index_ngrams((b.ids, b.lengths) for b in train)
    seen = []
    # lr ~0 makes no progress, so patience 2 must stop after epoch 3
    result = train_classifier(model, train, data["val"], data["labels"],
                              TrainConfig(epochs=20, lr=1e-12, patience=2, progress=False),
                              callbacks=[EpochMetrics(lambda epoch, metrics: seen.append(epoch))])
    assert result.stopped_early and seen == [1, 2, 3]


class Recorder(Callback):
    def __init__(self):
        self.events = []

    def on_train_begin(self, trainer):
        self.events.append("begin")

    def on_epoch_begin(self, trainer, epoch):
        self.events.append(f"epoch{epoch}")

    def on_backward(self, trainer, batch):
        if "backward" not in self.events:
            self.events.append("backward")

    def on_epoch_end(self, trainer, epoch, metrics):
        self.events.append(f"end{epoch}")

    def on_train_end(self, trainer, result):
        self.events.append("done")


def test_callback_events_come_in_loop_order(data):
    recorder = Recorder()
    Trainer(small_rnn(data), ClassificationObjective(data["labels"]), TrainConfig(epochs=2, progress=False),
            callbacks=[recorder]).fit(data["train"](), data["val"])
    assert recorder.events == ["begin", "epoch1", "backward", "end1", "epoch2", "end2", "done"]


class HeadPenalty(Callback):
    """An extra loss term: a huge L2 penalty on the head's weights drives them to zero."""

    def on_loss(self, trainer, batch, loss):
        return loss + 100.0 * trainer.model.head.weight.pow(2).sum()


class ZeroEmbeddingGradient(Callback):
    """A perturbation after backward: here the crudest one, discarding the embedding's gradient."""

    def on_backward(self, trainer, batch):
        trainer.model.embedding.weight.grad = None


def test_extra_loss_terms_and_gradient_perturbations_need_no_loop_edits(data):
    cfg = TrainConfig(epochs=2, lr=1e-2, weight_decay=0.0, progress=False)
    plain, penalised = small_rnn(data), small_rnn(data)
    before = penalised.embedding.weight.detach().clone()
    Trainer(plain, ClassificationObjective(data["labels"]), cfg).fit(data["train"](), data["val"])
    Trainer(penalised, ClassificationObjective(data["labels"]), cfg,
            callbacks=[HeadPenalty(), ZeroEmbeddingGradient()]).fit(data["train"](), data["val"])
    assert penalised.head.weight.abs().mean() < 0.2 * plain.head.weight.abs().mean()
    assert torch.equal(penalised.embedding.weight, before)  # no gradient ever reached it
    assert not torch.equal(plain.embedding.weight, before)


def test_parameter_groups_have_their_own_learning_rates(data):
    model = small_rnn(data)
    embedding, rest = [model.embedding.weight], [p for n, p in model.named_parameters() if n != "embedding.weight"]
    before, head_before = model.embedding.weight.detach().clone(), model.head.weight.detach().clone()
    groups = [{"params": embedding, "lr": 0.0, "weight_decay": 0.0}, {"params": rest, "lr": 5e-3}]
    Trainer(model, ClassificationObjective(data["labels"]), TrainConfig(epochs=1, progress=False),
            param_groups=groups).fit(data["train"](), data["val"])
    assert torch.equal(model.embedding.weight, before)
    assert not torch.equal(model.head.weight, head_before)


class UnfreezeAt(Callback):
    """Gradual unfreezing: the encoder stays frozen until ``epoch``."""

    def __init__(self, epoch: int):
        self.epoch, self.snapshots = epoch, {}

    def on_train_begin(self, trainer):
        trainer.model.rnn.requires_grad_(False)

    def on_epoch_begin(self, trainer, epoch):
        if epoch == self.epoch:
            trainer.model.rnn.requires_grad_(True)
        self.snapshots[epoch] = [p.detach().clone() for p in trainer.model.rnn.parameters()]


def test_frozen_layers_unfreeze_on_schedule_without_a_new_optimizer(data):
    model, unfreeze = small_rnn(data), UnfreezeAt(epoch=2)
    Trainer(model, ClassificationObjective(data["labels"]), TrainConfig(epochs=2, progress=False, patience=0),
            callbacks=[unfreeze]).fit(data["train"](), data["val"])
    after_epoch_1, after_epoch_2 = unfreeze.snapshots[2], list(model.rnn.parameters())
    assert all(torch.equal(a, b) for a, b in zip(unfreeze.snapshots[1], after_epoch_1))  # frozen in epoch 1
    assert not all(torch.equal(a, b.detach()) for a, b in zip(after_epoch_1, after_epoch_2))  # trained in epoch 2


def test_trainable_restricts_training_for_the_run(data):
    model = small_rnn(data)
    before, head_before = model.embedding.weight.clone(), model.head.weight.clone()
    Trainer(model, ClassificationObjective(data["labels"]), TrainConfig(epochs=1, progress=False),
            trainable=model.head.parameters()).fit(data["train"](), data["val"])
    assert torch.equal(before, model.embedding.weight)
    assert not torch.equal(head_before, model.head.weight)
    assert model.embedding.weight.requires_grad  # unfrozen again afterwards


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_run(data, tmp_path):
    # dropout, shuffling, schedule, AdamW moments and early stopping all carry over
    cfg = TrainConfig(epochs=4, lr=5e-3, progress=False, patience=0)
    whole = small_rnn(data)
    full = Trainer(whole, ClassificationObjective(data["labels"]), cfg).fit(data["train"](), data["val"])

    path = tmp_path / "checkpoint.pt"

    class Killed(Exception):
        pass

    class KillAfterSecondEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            if epoch == 2:
                raise Killed

    with pytest.raises(Killed):
        Trainer(small_rnn(data), ClassificationObjective(data["labels"]), cfg,
                callbacks=[Checkpoint(path), KillAfterSecondEpoch()]).fit(data["train"](), data["val"])
    resumed_model = small_rnn(data, seed=99)  # other initial weights: the checkpoint must replace them
    resumed = Trainer(resumed_model, ClassificationObjective(data["labels"]), cfg).fit(
        data["train"](), data["val"], resume=path)
    assert len(resumed.history) == 4
    assert [h["train_loss"] for h in resumed.history] == pytest.approx([h["train_loss"] for h in full.history])
    for (name, a), b in zip(whole.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_checkpoint_callback_writes_a_loadable_file(data, tmp_path):
    path = tmp_path / "ckpt" / "last.pt"
    Trainer(small_rnn(data), ClassificationObjective(data["labels"]), TrainConfig(epochs=1, progress=False),
            callbacks=[Checkpoint(path)]).fit(data["train"](), data["val"])
    state = torch.load(path, weights_only=True)
    assert state["epoch"] == 1 and state["step"] > 0 and len(state["optimizers"]) == 1


def test_schedules():
    cosine = lr_lambda("cosine", 100, 0)
    assert cosine(0) == 1.0 and abs(cosine(50) - 0.5) < 1e-9 and cosine(100) < 1e-9
    assert lr_lambda("constant", 100, 10)(90) == 1.0
