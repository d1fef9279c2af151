"""Attacks and adversarial training, on a real trained model and the shipped corpus (augmentation: test_augment.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from pydantic import ValidationError

from lowlm.config import TrainConfig
from lowlm.config.attack import AttackConfig, CharAttackConfig, PerturbationConfig, RefreshConfig, WordAttackConfig
from lowlm.robustness.attack import SKIPPED, SUCCEEDED, Attacker, AttackRun, attack
from lowlm.robustness.words import STOPWORDS, EmbeddingNeighbours, is_stopword, word_spans, wordnet_candidates
from lowlm.text.batching import Batches
from lowlm.training.adversarial import AdversarialRefresh, EmbeddingPerturbation, SubstitutionTable
from lowlm.training.objectives import ClassificationObjective, train_classifier
from lowlm.training.trainer import Trainer


def words(text: str) -> list[str]:
    return [text[s:e] for s, e in word_spans(text)]


@pytest.fixture(scope="module")
def test_rows(trained_sample):
    test = trained_sample["corpus"].splits["test"]
    return list(test["text"]), [int(y) for y in test["label"]]


@pytest.mark.parametrize("sources", [["wordnet"], ["embedding"]])
def test_word_attack_flips_predictions_within_every_constraint(trained_sample, test_rows, sources):
    clf = trained_sample["classifier"]
    texts, labels = test_rows
    config = AttackConfig(method="word", word=WordAttackConfig(sources=sources), max_words_fraction=0.25)
    run = attack(clf, texts, labels, config)
    done = run.successful()
    assert done, run.summary()
    neighbours = EmbeddingNeighbours(clf.model, clf.tokenizer)
    predicted = clf.predict_proba([e.adversarial for e in done]).argmax(dim=1).tolist()
    for example, pred in zip(done, predicted):
        assert pred == example.after != example.label  # really flipped, as the model sees it now
        before, after = words(example.original), words(example.adversarial)
        assert len(before) == len(after)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == example.changed <= math.ceil(0.25 * len(before))  # the fraction of words
        for old, new in changed:
            assert not is_stopword(old)  # stop words kept
            allowed = wordnet_candidates(old, 30) if sources == ["wordnet"] else neighbours.nearest(old, 15)
            assert new.lower() in allowed, (old, new, sources)  # only from the allowed source
    s = run.summary()
    assert s["attacked_accuracy"] == pytest.approx(s["clean_accuracy"] - len(done) / len(texts))
    assert 0 < s["words_perturbed"] and s["queries"] >= 1


def test_char_attack_edits_only_the_words_it_chose(trained_sample, test_rows):
    clf = trained_sample["classifier"]
    texts, labels = test_rows
    run = attack(clf, texts, labels, AttackConfig(method="char", char=CharAttackConfig(operations=["swap", "delete"])))
    assert run.successful()
    for example in run.examples:
        before, after = words(example.original), words(example.adversarial)
        changed = [(a, b) for a, b in zip(before, after) if a != b]
        assert len(changed) == example.changed
        # the substitutions it reports (in the order it made them) are exactly the words that differ
        assert sorted((a.lower(), b) for a, b, _ in example.substitutions) == sorted((a.lower(), b.lower()) for a, b in changed)
        for old, new in changed:  # one swap of neighbouring letters, or one letter deleted
            assert sorted(new.lower()) == sorted(old.lower()) or len(new) == len(old) - 1


def test_char_candidates_are_the_distinct_inputs_one_edit_reaches(trained_sample, test_rows):
    clf = trained_sample["classifier"]
    tok = clf.tokenizer
    attacker = Attacker(clf, AttackConfig(method="char"))
    word = next(w for w in tok.tokens() if w.isalpha() and len(w) == 4 and not is_stopword(w))
    found = attacker._distinct_edits(word)
    encodings = [tuple(tok.encode(w)) for w in found]
    assert len(set(encodings)) == len(encodings) and tuple(tok.encode(word)) not in encodings
    assert (tok.encode("qzxv")[0],) in encodings  # [UNK] once, for every edit the vocabulary lacks
    vocabulary = set(tok.tokens())
    reachable = {w for w in vocabulary if w != word and len(w) in (3, 4, 5) and w.isalpha()
                 and _one_edit(word, w)}
    assert reachable <= set(found)  # every vocabulary word one edit away is tried
    assert len(found) <= 32
    texts, labels = test_rows
    run = attack(clf, texts, labels, AttackConfig(method="char"))
    assert run.summary()["success_rate"] >= attack(
        clf, texts, labels, AttackConfig(method="char", char=CharAttackConfig(positions="sampled"))).summary()[
        "success_rate"] - 0.05


def _one_edit(a: str, b: str) -> bool:
    """Whether one swap, deletion, substitution or insertion turns ``a`` into ``b``."""
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diff) == 1 or (len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]]
                                   and a[diff[1]] == b[diff[0]])
    short, long_ = sorted((a, b), key=len)
    return len(long_) == len(short) + 1 and any(long_[:i] + long_[i + 1:] == short for i in range(len(long_)))


def test_batched_attack_equals_one_query_at_a_time(trained_sample, test_rows):
    clf = trained_sample["classifier"]
    texts, labels = test_rows[0][:12], test_rows[1][:12]
    config = AttackConfig(method="word")
    batched = attack(clf, texts, labels, config).table()
    single = attack(clf, texts, labels, config, one_at_a_time=True).table()
    assert batched.equals(single)


def test_an_attack_in_shards_equals_one_attack_of_the_whole_sample(trained_sample, test_rows):
    """Example i is numbered and seeded i whichever shard holds it (``first``): the shards merged are the
    whole sample's run, the char attack's seeded edits included."""
    clf = trained_sample["classifier"]
    texts, labels = test_rows
    for config in (AttackConfig(method="word"), AttackConfig(method="char", char=CharAttackConfig(positions="sampled"))):
        whole = attack(clf, texts, labels, config)
        shards = [attack(clf, texts[at: at + 5], labels[at: at + 5], config, first=at) for at in range(0, len(texts), 5)]
        merged = AttackRun.merge([AttackRun.from_json(json.loads(json.dumps(s.to_json()))) for s in shards])
        assert len(shards) > 2 and merged.table().equals(whole.table())
        assert [e.index for e in merged.examples] == list(range(len(texts)))
        assert merged.summary()["succeeded"] == whole.summary()["succeeded"] > 0


def test_gradient_importance_attacks_too(trained_sample, test_rows):
    run = attack(trained_sample["classifier"], *test_rows, AttackConfig(importance="gradient"))
    assert run.successful()
    assert run.summary()["queries"] < attack(trained_sample["classifier"], *test_rows, AttackConfig()).summary()["queries"]


def test_texts_too_short_or_all_stop_words_are_skipped_and_counted(trained_sample):
    clf = trained_sample["classifier"]
    texts = ["refund", "!!", "is it not", "my card was declined at the shop again today"]
    probs = clf.predict_proba(texts).argmax(dim=1).tolist()  # attack each as the label the model gives it
    run = attack(clf, texts, probs, AttackConfig())
    assert [e.status for e in run.examples][:3] == [SKIPPED] * 3
    assert [e.reason for e in run.examples][:3] == ["too short", "too short", "only stop words"]
    assert run.summary()["skipped"] == 3 and run.summary()["attacked"] == 1


def test_attack_settings_outside_their_range_are_config_errors():
    for bad in ({"query_budget": 0}, {"max_words_fraction": 0}, {"max_words_fraction": 1.5}):
        with pytest.raises(ValidationError, match=next(iter(bad))):
            AttackConfig(**bad)
    with pytest.raises(ValidationError, match="sources"):
        WordAttackConfig(sources=[])
    assert "the" in STOPWORDS and "film" not in STOPWORDS
    from lowlm.config import load_pipeline_config

    with pytest.raises(ValueError, match="bag of n-grams pools"):
        load_pipeline_config("sample", {"model.kind": "bag_of_ngrams", "train.perturbation.method": "ascc"})
    assert load_pipeline_config("sample", {"train.perturbation.method": "ascc"}).train.perturbation.method == "ascc"


def test_an_fgm_step_raises_the_loss_on_the_perturbed_input(trained_sample):
    clf = trained_sample["classifier"]
    corpus = trained_sample["corpus"]
    train = corpus.splits["train"]
    batch = next(iter(Batches(clf.tokenizer.encode_batch(list(train["text"][:32])), list(train["label"][:32]), 32)))
    model = clf.model.eval()  # no dropout: the two passes differ by the perturbation alone
    perturb = EmbeddingPerturbation(PerturbationConfig(method="fgm", epsilon=0.5))
    trainer = Trainer(model, ClassificationObjective(len(corpus.labels)), TrainConfig(progress=False), [perturb])
    perturb.on_train_begin(trainer)
    try:
        clean = trainer.objective.loss(model, batch, trainer.device).value
        clean.backward()
        adversarial = perturb.fgm_loss(trainer, batch)
    finally:
        perturb.on_train_end(trainer, None)
        model.zero_grad(set_to_none=True)
    assert adversarial.item() > clean.item() + 1e-4
    assert trainer.objective.loss(model, batch, trainer.device).value.item() == pytest.approx(clean.item())  # unhooked


def test_substitution_table_holds_what_an_attack_may_put_in_each_place(trained_sample):
    tok = trained_sample["classifier"].tokenizer
    words_ = tok.tokens()
    weight = trained_sample["classifier"].model.embedding.weight
    table = SubstitutionTable(words_, weight, synonyms=30, neighbours=5)
    index = {w: i for i, w in enumerate(words_)}
    neighbours = EmbeddingNeighbours(trained_sample["classifier"].model, tok)
    checked = 0
    for i, w in enumerate(words_):
        row = [j for j in table.ids[i].tolist() if j >= 0]
        assert row[0] == i and len(set(row)) == len(row)
        if i <= 3 or not w.isalpha() or is_stopword(w):
            assert row == [i]  # specials and stop words stay
            continue
        synonyms = {index[s] for s in wordnet_candidates(w, 30) if s in index}
        near = {index[n] for n in neighbours.nearest(w, 5)}
        assert set(row) == {i, 1} | synonyms | near  # itself, [UNK], WordNet in the vocabulary, nearest embeddings
        checked += 1
    assert checked > 50


def test_an_ascc_step_raises_the_loss_within_the_substitutes(trained_sample):
    clf = trained_sample["classifier"]
    corpus = trained_sample["corpus"]
    train = corpus.splits["train"]
    batch = next(iter(Batches(clf.tokenizer.encode_batch(list(train["text"][:32])), list(train["label"][:32]), 32)))
    model = clf.model.eval()
    perturb = EmbeddingPerturbation(PerturbationConfig(method="ascc", alpha=3.0, steps=3), clf.tokenizer.tokens())
    trainer = Trainer(model, ClassificationObjective(len(corpus.labels)), TrainConfig(progress=False), [perturb])
    perturb.on_train_begin(trainer)
    try:
        clean = trainer.objective.loss(model, batch, trainer.device).value
        adversarial = perturb.ascc_loss(trainer, batch)
        weights = torch.softmax(perturb.logits, dim=-1)
    finally:
        perturb.on_train_end(trainer, None)
        perturb.logits = None
        model.zero_grad(set_to_none=True)
    assert adversarial.item() > clean.item() + 1e-3
    candidates = perturb.table.ids[batch.ids]
    assert float(weights[candidates < 0].max()) < 1e-6  # no weight outside a word's substitutes
    assert torch.allclose(weights.sum(-1), torch.ones(weights.shape[:-1]))
    stop = torch.tensor([is_stopword(clf.tokenizer.id_to_token(int(t)) or "") for t in batch.ids.flatten()])
    assert bool((weights[..., 0].flatten()[stop] > 1 - 1e-6).all())  # stop words keep themselves
    with pytest.raises(ValueError, match="vocabulary"):
        EmbeddingPerturbation(PerturbationConfig(method="ascc"))


@pytest.mark.parametrize("method", ["fgm", "pgd", "freelb", "ascc"])
def test_embedding_perturbation_trains(trained_sample, method):
    corpus, tok = trained_sample["corpus"], trained_sample["classifier"].tokenizer
    from lowlm.models.kinds import build_model

    model = build_model(trained_sample["classifier"].model.config, vocab_size=tok.vocab_size,
                        num_labels=len(corpus.labels), words=tok.tokens())
    enc = tok.encode_batch(list(corpus.splits["train"]["text"]))
    train = Batches(enc, list(corpus.splits["train"]["label"]), 16, shuffle=True, seed=1)
    val = Batches(tok.encode_batch(list(corpus.splits["validation"]["text"])), list(corpus.splits["validation"]["label"]))
    config = TrainConfig(epochs=3, lr=3e-3, progress=False, perturbation=PerturbationConfig(method=method, steps=2))
    result = train_classifier(model, train, val, len(corpus.labels), config, words=tok.tokens())
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert not model.embedding._forward_hooks  # the hook is gone after training


def test_refresh_trains_on_adversarial_rows_of_the_model_being_trained(trained_sample):
    corpus, clf = trained_sample["corpus"], trained_sample["classifier"]
    tok = clf.tokenizer
    from lowlm.models.kinds import build_model

    model = build_model(clf.model.config, vocab_size=tok.vocab_size, num_labels=len(corpus.labels), words=tok.tokens())
    texts, labels = list(corpus.splits["train"]["text"]), [int(y) for y in corpus.splits["train"]["label"]]
    train = Batches(tok.encode_batch(texts), labels, 16, shuffle=True, seed=1)
    config = AttackConfig(refresh=RefreshConfig(every=2, clean_epochs=2, sample_rows=60))
    heard = []
    refresh = AdversarialRefresh(texts, labels, tok, corpus.labels, config, log=lambda e, s, n: heard.append((e, n)))
    train_classifier(model, train, None, len(corpus.labels), TrainConfig(epochs=5, lr=3e-3, progress=False),
                     callbacks=[refresh])
    assert [e for e, _ in heard] == [3, 5]  # after two clean epochs, then every second epoch
    added = heard[-1][1]
    assert added > 0 and len(train.ids) == len(texts) + added
    found = refresh.last_examples
    assert train.extra_ids == tok.encode_batch([e.adversarial for e in found])
    assert train.labels[len(texts):].tolist() == [e.label for e in found]  # each keeps its source row's label
    assert all(e.adversarial != e.original for e in found)
